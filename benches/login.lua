-- wrk: logs in over and over (every request runs a full Argon2id check on
-- the server). $LOGIN_COOKIE and $LOGIN_CSRF are a session cookie and its
-- CSRF token from the login page; $LOGIN_USER / $LOGIN_PASSWORD the account.
local function urlencode(s)
  return (s:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", string.byte(c)) end))
end

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Cookie"] = os.getenv("LOGIN_COOKIE")
wrk.body = "username=" .. urlencode(os.getenv("LOGIN_USER"))
  .. "&password=" .. urlencode(os.getenv("LOGIN_PASSWORD"))
  .. "&csrf_token=" .. urlencode(os.getenv("LOGIN_CSRF"))

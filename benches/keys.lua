-- wrk: GET the path given on the command line with a different key each
-- request, round-robin over the keys in $KEYS_FILE (one a line). Requests
-- are formatted once, up front, so the client spends per request what it
-- spends on a fixed request. Each wrk thread starts at its own offset.
local path = nil
local requests = {}
local i = 0

function setup(thread)
  thread:set("offset", math.random(1000))
end

function init(args)
  for line in io.lines(os.getenv("KEYS_FILE")) do
    requests[#requests + 1] = wrk.format("GET", path, { ["Authorization"] = "Bearer " .. line })
  end
  assert(#requests > 0, "no keys in " .. os.getenv("KEYS_FILE"))
  i = (offset or 0) % #requests
end

function request()
  i = i % #requests + 1
  return requests[i]
end

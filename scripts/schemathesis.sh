#!/usr/bin/env bash
# Checks the running server against its own OpenAPI document
# (GET /api/v1/openapi.json) with schemathesis: no 500, no answer that
# disagrees with the schema. Starts the debug binary on a free loopback
# port with a fresh data directory, creates a user and a key with every
# scope through the portal, then fuzzes every JSON route with that key.
#
#   bash scripts/schemathesis.sh            # scripts/test.sh calls it
#
# schemathesis comes from PyPI into a virtualenv under target/ (made once).
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=4.32.5
VENV=target/schemathesis-venv
if [ ! -x "$VENV/bin/st" ] || ! "$VENV/bin/st" --version 2>/dev/null | grep -q "$VERSION"; then
  echo "== installing schemathesis $VERSION into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$VERSION"
fi

cargo build --locked --quiet --bin keyward
WORK=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
BASE="http://127.0.0.1:$PORT"
env -u DATABASE_URL KEYWARD_DATA_DIR="$WORK/data" KEYWARD_BIND="127.0.0.1:$PORT" RUST_LOG=warn \
  target/debug/keyward >"$WORK/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null; [ -n "${KEEP:-}" ] || rm -rf "$WORK"' EXIT
for _ in $(seq 200); do curl -sf -o /dev/null "$BASE/healthz" && break; sleep 0.05; done

csrf() { sed -n 's/.*name="csrf_token" value="\([^"]*\)".*/\1/p' | head -n1; }
# A user with a key of every scope but keys:write, for every route but
# DELETE /api/v1/keys/{id}; and another user whose only key may delete.
# (schemathesis learns key ids from GET /api/v1/keys: with keys:write, the
# key would delete itself mid-run and every later answer would be 401.)
new_key() { # username, scopes...
  local jar="$WORK/jar-$1" user=$1; shift
  local token
  token=$(curl -sf -c "$jar" -b "$jar" "$BASE/register" | csrf)
  curl -sf -o /dev/null -c "$jar" -b "$jar" "$BASE/register" \
    --data-urlencode "username=$user" --data-urlencode "email=$user@example.com" \
    --data-urlencode "password=a long enough passphrase" \
    --data-urlencode "password_confirm=a long enough passphrase" --data-urlencode "csrf_token=$token"
  token=$(curl -sf -c "$jar" -b "$jar" "$BASE/keys/new" | csrf)
  local args=(--data-urlencode name=schemathesis --data-urlencode "csrf_token=$token")
  for s in "$@"; do args+=(--data-urlencode "scopes=$s"); done
  curl -sf -c "$jar" -b "$jar" "$BASE/keys" "${args[@]}" | sed -n 's/.*<code id="new-key">\([^<]*\)<.*/\1/p'
}
READER=$(new_key reader keys:read read write)
DELETER=$(new_key deleter keys:write)
[ -n "$READER" ] && [ -n "$DELETER" ] || { echo "could not create the keys"; cat "$WORK/server.log"; exit 1; }

run() { # key, filters...
  local key=$1; shift
  # ignored_auth is left out: /api/v1/ping and /healthz take no key by design.
  "$VENV/bin/st" run "$BASE/api/v1/openapi.json" \
    --header "Authorization: Bearer $key" \
    --checks all --exclude-checks ignored_auth \
    --phases examples,coverage,fuzzing \
    --max-examples 60 --workers 1 --seed 1 \
    --suppress-health-check all \
    --request-timeout 10 "$@"
}
echo "== schemathesis against $BASE/api/v1/openapi.json"
run "$READER" --exclude-path-regex '^/api/v1/keys/' "$@"
run "$DELETER" --include-path-regex '^/api/v1/keys/' "$@"

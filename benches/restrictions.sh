#!/usr/bin/env bash
# What per-key restrictions cost on the hot path (docs/keys.md). In one
# run, each row between two runs of (a) /api/v1/ping, as benches/load.sh:
#   (b) a hot key without restrictions
#   (f) a hot key with a 3-entry allowlist (127.0.0.1 among them)
#   (g) a hot key with a rate limit too high to trip (1,000,000/min)
#   (h) a hot key driven far over its limit (1/min: almost every call 429)
# and the database lookups during (h) (expected 0).
#
#   bash benches/restrictions.sh          # BIN=… to use a built binary
#
# wrk (Debian) on the same 2 cores: 2 threads, 64 connections, 10 s a run.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
if [ -z "${BIN:-}" ]; then
  cargo build --release --locked --bin keyward
  BIN=$ROOT/target/release/keyward
fi
command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)"; exit 1; }
WORK=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
BASE=http://127.0.0.1:$PORT
(
  cd "$WORK"
  exec env -u DATABASE_URL KEYWARD_DATA_DIR="$WORK/data" KEYWARD_BIND="127.0.0.1:$PORT" RUST_LOG=warn \
    KEYWARD_METRICS_TOKEN=bench "$BIN" >"$WORK/server.log" 2>&1
) &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 200); do curl -sf -o /dev/null "$BASE/api/v1/ping" && break; sleep 0.05; done

JAR=$WORK/jar
csrf() { grep -o 'name="csrf_token" value="[^"]*"' | head -1 | sed 's/.*value="//; s/"$//'; }
token=$(curl -sf -c "$JAR" -b "$JAR" "$BASE/register" | csrf)
curl -sf -o /dev/null -c "$JAR" -b "$JAR" "$BASE/register" --data-urlencode username=bench \
  --data-urlencode email=bench@example.com --data-urlencode "password=a long bench passphrase" \
  --data-urlencode "password_confirm=a long bench passphrase" --data-urlencode "csrf_token=$token"
key() { # name, allowed_ips, rate
  local t
  t=$(curl -sf -c "$JAR" -b "$JAR" "$BASE/keys/new" | csrf)
  curl -sf -c "$JAR" -b "$JAR" "$BASE/keys" --data-urlencode "name=$1" --data-urlencode scopes=read \
    --data-urlencode "allowed_ips=$2" --data-urlencode "rate_limit_per_minute=$3" --data-urlencode "csrf_token=$t" |
    grep -o '<code id="new-key">[^<]*' | sed 's/.*>//'
}
PLAIN=$(key plain "" "")
FENCED=$(key fenced "10.0.0.0/8, 127.0.0.1, 2001:db8::/32" "")
LOOSE=$(key loose "" 1000000)
TIGHT=$(key tight "" 1)

rps() { awk '/Requests\/sec/ { print $2 }'; }
ping_run() { wrk -t2 -c64 -d10s "$BASE/api/v1/ping" | rps; }
key_run() { wrk -t2 -c64 -d10s -H "Authorization: Bearer $1" "$BASE/api/v1/whoami" | rps; }
lookups() { curl -sf -H 'Authorization: Bearer bench' "$BASE/metrics" | awk '$1 == "keyward_key_db_lookups_total" { print $2 }'; }
ratio() { python3 -c "print(f'{$1 / (($2 + $3) / 2):.2f}')"; }

for k in "$PLAIN" "$FENCED" "$LOOSE" "$TIGHT"; do curl -s -o /dev/null -H "Authorization: Bearer $k" "$BASE/api/v1/whoami"; done
printf '%-34s %10s %10s %10s %6s\n' row "(a) before" rps "(a) after" ratio
for row in "b plain:$PLAIN" "f allowlist(3):$FENCED" "g limit 1e6/min:$LOOSE" "h over limit 1/min:$TIGHT"; do
  name=${row%%:*}; k=${row#*:}
  before=$(ping_run)
  l0=$(lookups)
  got=$(key_run "$k")
  l1=$(lookups)
  after=$(ping_run)
  printf '%-34s %10s %10s %10s %6s   db lookups during: %s\n' "($name)" "$before" "$got" "$after" \
    "$(ratio "$got" "$before" "$after")" "$((l1 - l0))"
done
echo "RSS (VmHWM): $(awk '/^VmHWM/ { printf "%.1f MiB", $2 / 1024 }' "/proc/$SERVER/status")"

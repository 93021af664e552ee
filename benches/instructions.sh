#!/usr/bin/env bash
# The guard's cost in instructions per request (results in BENCHMARKS.md,
# "Instructions per request"). Throughput on a shared host drifts by ±15 %
# a minute; instruction counts under callgrind repeat for the same binary
# and the same requests, so this is what steers work on the request path.
#
# Starts the release binary under `valgrind --tool=callgrind` (all threads
# counted together) on 127.0.0.1 with a fresh SQLite database, one user and
# ROUND_ROBIN keys written by benches/tools/seed_keys.rs, and for each row
# sends WARM requests, zeroes the counters, sends N requests, and dumps:
#   ping      GET /api/v1/ping, no key                       (ab -k -c4)
#   hot       GET /api/v1/whoami, one valid key               (ab -k -c4)
#   rr        GET /api/v1/whoami, ROUND_ROBIN valid keys in turn
#             (a small Python client, CONC connections; every key visited
#             once before the warm-up)
#   checksum  GET /api/v1/whoami, a key with a bad checksum   (ab -k -c4)
#   unknown   GET /api/v1/whoami, a well-formed key that does not exist
#   verify    GET /auth/verify?scope=read, the hot key        (ab -k -c4)
# and the same as `ping` against benches/tools/bare_actix.rs, the smallest
# actix-web app, for reference ("bare"). Every request carries the same
# headers, `Authorization: Bearer <a key>` included (ping and bare ignore
# it): the rows differ only in what the server does with them.
#
# Besides the total, each row gives the instructions spent in SHA-256:
# valgrind hides the SHA extensions, so on the real CPU that part is about
# ten times cheaper. "without SHA" is the total less that part.
#
# Background threads (the change-feed poll, the last-used flush) run during
# a row too. Their cost is measured in an idle window before the rows and
# taken off each row in proportion to its length; it is printed.
#
#   bash benches/instructions.sh                   # N=20000 WARM=2000
#   CHECK=1 bash benches/instructions.sh          # what CI runs
#   TOP=10 bash benches/instructions.sh            # + the top 10 functions of `hot`
#   BIN=… SEEDER=… BARE=… bash benches/instructions.sh     # skip the build
#
# CHECK=1 runs at the N, WARM and ROUND_ROBIN written in
# benches/instructions.baseline, and fails when the hot key's figure
# exceeds the one recorded there by more than 5 %. A change that costs instructions updates that file in the same
# commit, and says why.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

CHECK=${CHECK:-0}
BASELINE_FILE=$ROOT/benches/instructions.baseline
# The check runs at the sizes the baseline was recorded at.
from_baseline() { awk -v k="$1" '$1 == k { print $2 }' "$BASELINE_FILE"; }
if [[ $CHECK == 1 ]]; then
  [[ -f $BASELINE_FILE ]] || { echo "no $BASELINE_FILE"; exit 1; }
  N=$(from_baseline n) WARM=$(from_baseline warm) ROUND_ROBIN=$(from_baseline round_robin)
fi
N=${N:-20000}
WARM=${WARM:-2000}
CONC=${CONC:-4}
ROUND_ROBIN=${ROUND_ROBIN:-10000}
TOP=${TOP:-0}
TOLERANCE=${TOLERANCE:-0.05}

for tool in valgrind callgrind_control callgrind_annotate ab curl python3; do
  command -v "$tool" >/dev/null || { echo "needs $tool (apt-get install valgrind apache2-utils curl)"; exit 1; }
done

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
WORK=$(mktemp -d /tmp/keyward-instr.XXXXXX)
PID=""
cleanup() {
  [[ -n "$PID" ]] && kill -TERM "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
  if [[ -z "${KEEP:-}" ]]; then rm -rf "$WORK"; else echo "kept $WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ -z "${BIN:-}" || -z "${SEEDER:-}" || -z "${BARE:-}" ]]; then
  echo "== build"
  cargo build --release --locked --features bench-tools --bin keyward --bin seed_keys --bin bare_actix 2>&1 | tail -1
  dir=${CARGO_TARGET_DIR:-$ROOT/target}/release
  BIN=${BIN:-$dir/keyward}
  SEEDER=${SEEDER:-$dir/seed_keys}
  BARE=${BARE:-$dir/bare_actix}
fi
echo "binary:  $BIN"
echo "commit:  $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- src Cargo.toml 2>/dev/null || echo ' (+ local changes)')"
echo "$(valgrind --version); N=$N WARM=$WARM, $CONC connections; cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"

# ---- the data: a user and ROUND_ROBIN keys, written before the server starts
export KEYWARD_DATA_DIR=$WORK/data
mkdir -p "$KEYWARD_DATA_DIR"
unset DATABASE_URL
echo "instructions bench passphrase" | "$BIN" user create bench --email bench@example.com >/dev/null
"$SEEDER" "$KEYWARD_DATA_DIR/keyward.db" bench "$ROUND_ROBIN" "$WORK/keys.txt" "$ROUND_ROBIN" "$WORK/unknown.txt" 1 >/dev/null
HOT=$(head -1 "$WORK/keys.txt")
UNKNOWN=$(head -1 "$WORK/unknown.txt")
# The last character is the checksum's: change it.
last=${HOT: -1}
[[ $last == A ]] && other=B || other=A
BAD_CHECKSUM=${HOT%?}$other

# ---- the server under callgrind ---------------------------------------------
# start NAME PROGRAM ARGS…: runs it under callgrind, waits until URL answers.
start() {
  local name=$1
  shift
  valgrind --tool=callgrind --callgrind-out-file="$WORK/$name.%p.out" "$@" >"$WORK/$name.log" 2>&1 &
  PID=$!
}
wait_up() {
  for _ in $(seq 600); do
    curl -sf -o /dev/null "$1" && return 0
    sleep 0.1
  done
  cat "$WORK"/*.log
  exit 1
}
# The totals of the newest dump of the running server.
dump() {
  callgrind_control -d "$PID" >/dev/null 2>&1
  ls -t "$WORK"/*".$PID.out".* | sed -n 1p
}
total_of() { awk '/^(summary|totals):/ { print $2; exit }' "$1"; }
# Inclusive instructions in SHA-256's block function.
sha_of() {
  callgrind_annotate --inclusive=yes --threshold=100 "$1" 2>/dev/null |
    awk '/sha2::sha256::(soft::)?compress|sha256_digest_block|sha2::sha256::compress256/ {
           gsub(",", "", $1); if ($1 + 0 > best) best = $1 + 0 } END { print best + 0 }'
}

declare -A IR SHA COUNT SECS
IDLE_RATE=0
# row NAME CLIENT…: WARM requests, zero, the measured requests, dump.
# CLIENT is `ab URL [HEADER]` or `keys KEYS_FILE URL`.
send() {
  local n=$1 kind=$2
  shift 2
  if [[ $kind == ab ]]; then
    local url=$1 header=${2:-}
    local args=(-q -k -c "$CONC" -n "$n")
    [[ -n $header ]] && args+=(-H "$header")
    ab "${args[@]}" "$url" >"$WORK/client.txt" 2>&1
    local done
    done=$(awk '/^Complete requests:/ { print $3 }' "$WORK/client.txt")
    [[ $done == "$n" ]] || { cat "$WORK/client.txt"; exit 1; }
    echo "$done"
  else
    # N requests over CONC keep-alive connections, each with the next key
    # of the file in turn (wrk counts seconds, not requests).
    local keys=$1 url=$2
    python3 - "$keys" "$url" "$n" "$CONC" <<'PY'
import http.client, sys, threading, urllib.parse
keys_file, url, n, conc = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
keys = open(keys_file).read().split()
u = urllib.parse.urlsplit(url)
lock = threading.Lock()
state = {"next": 0, "done": 0, "bad": 0}
def worker():
    c = http.client.HTTPConnection(u.hostname, u.port)
    while True:
        with lock:
            i = state["next"]
            if i >= n:
                return
            state["next"] = i + 1
        c.request("GET", u.path, headers={"Authorization": "Bearer " + keys[i % len(keys)]})
        r = c.getresponse()
        r.read()
        with lock:
            state["done"] += 1
            state["bad"] += r.status != 200
threads = [threading.Thread(target=worker) for _ in range(conc)]
for t in threads: t.start()
for t in threads: t.join()
if state["bad"]:
    sys.exit(f"{state['bad']} answers were not 200")
print(state["done"])
PY
  fi
}
row() {
  local name=$1
  shift
  send "$WARM" "$@" >/dev/null
  callgrind_control -z "$PID" >/dev/null 2>&1
  local t0 t1
  t0=$(date +%s.%N)
  COUNT[$name]=$(send "$N" "$@")
  t1=$(date +%s.%N)
  local f
  f=$(dump)
  SECS[$name]=$(python3 -c "print($t1 - $t0)")
  IR[$name]=$(total_of "$f")
  SHA[$name]=$(sha_of "$f")
  if [[ $name == hot && $TOP -gt 0 ]]; then cp "$f" "$WORK/hot.callgrind"; fi
  printf '  %-9s %8s requests in %6.1f s\n' "$name" "${COUNT[$name]}" "${SECS[$name]}"
}

echo "== bare actix-web"
port=$(free_port)
start bare "$BARE" "127.0.0.1:$port"
wait_up "http://127.0.0.1:$port/ping"
row bare ab "http://127.0.0.1:$port/ping" "Authorization: Bearer $HOT"
kill -TERM "$PID"
wait "$PID" 2>/dev/null || true
PID=""

echo "== Keyward"
port=$(free_port)
BASE="http://127.0.0.1:$port"
# A key stays cached long enough for a pass over every key under valgrind,
# and uses are written once an hour rather than every 2 s: the write is not
# part of a request (it is one statement per key in use per flush, whatever
# the request rate), and under valgrind its share per request would be
# tens of times what it is at full speed. Logging at warn: refusals are
# logged at most 50 a second per thread, again a cost per second.
# Housekeeping (expiry reminders, a pass over every key) runs at start-up
# and then hourly rather than every minute: one pass costs ~20 million
# instructions under valgrind, and it is not part of a request either.
KEYWARD_BIND=127.0.0.1:$port KEYWARD_METRICS_TOKEN=instructions RUST_LOG=warn KEYWARD_KEY_CACHE_SECONDS=3600 \
  KEYWARD_LAST_USED_FLUSH_SECONDS=3600 KEYWARD_REMINDER_SECONDS=3600 \
  start keyward "$BIN"
wait_up "$BASE/api/v1/ping"
metric() { curl -sf -H 'Authorization: Bearer instructions' "$BASE/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }
# The idle cost: what the background threads spend per second, measured
# once the start-up housekeeping pass is over (it ran inside this window
# before, and was then taken off every row as if it ran all the time:
# ~1,600 instructions per request too few on a row of 8 s).
sleep 3
# Ten seconds: the heartbeat writes every 10 s, so the window holds one
# beat whatever its phase, as a row holds one per 10 s of its length.
callgrind_control -z "$PID" >/dev/null 2>&1
t0=$(date +%s.%N)
sleep 10
f=$(dump)
t1=$(date +%s.%N)
IDLE_RATE=$(python3 -c "print($(total_of "$f") / ($t1 - $t0))")
echo "  idle: $(python3 -c "print(round($IDLE_RATE))") instructions/s (taken off each row in proportion to its length)"

row ping ab "$BASE/api/v1/ping" "Authorization: Bearer $HOT"
row hot ab "$BASE/api/v1/whoami" "Authorization: Bearer $HOT"
# Every key once before the warm-up proper, so none is looked up while
# measured.
send "$ROUND_ROBIN" keys "$WORK/keys.txt" "$BASE/api/v1/whoami" >/dev/null
before=$(metric keyward_key_db_lookups_total)
row rr keys "$WORK/keys.txt" "$BASE/api/v1/whoami"
echo "    database lookups while measuring rr: $(($(metric keyward_key_db_lookups_total) - before))"
row checksum ab "$BASE/api/v1/whoami" "Authorization: Bearer $BAD_CHECKSUM"
row unknown ab "$BASE/api/v1/whoami" "Authorization: Bearer $UNKNOWN"
row verify ab "$BASE/auth/verify?scope=read" "Authorization: Bearer $HOT"

per() { # per NAME [WITHOUT_SHA]
  python3 - "${IR[$1]}" "${SHA[$1]}" "${COUNT[$1]}" "${SECS[$1]}" "$IDLE_RATE" "${2:-0}" <<'PY'
import sys
ir, sha, n, secs, idle, no_sha = map(float, sys.argv[1:])
v = (ir - idle * secs - (sha if no_sha else 0)) / n
print(round(v))
PY
}
echo
echo "== instructions per request (callgrind, all threads, N=$N after $WARM)"
printf '| %-9s | %12s | %12s | %12s | %10s | %10s |\n' row "instr/req" "SHA-256" "without SHA" "vs bare" "vs ping"
BARE_IR=$(per bare)
PING_IR=$(per ping)
for r in bare ping hot rr checksum unknown verify; do
  total=$(per "$r")
  sha=$(python3 -c "print(round(${SHA[$r]} / ${COUNT[$r]}))")
  nosha=$(per "$r" 1)
  printf '| %-9s | %12s | %12s | %12s | %10s | %+10d |\n' "$r" "$total" "$sha" "$nosha" \
    "$(python3 -c "print(f'{$total / $BARE_IR:.2f}')")" "$((nosha - PING_IR))"
done
echo "(\"vs ping\": instructions above /api/v1/ping, SHA-256 not counted)"
HOT_IR=$(per hot)

if [[ $TOP -gt 0 && -f $WORK/hot.callgrind ]]; then
  echo
  echo "== top $TOP functions of the hot key (exclusive instructions per request)"
  # (Lines at over 90 % are the threads' entry points, inclusive.)
  callgrind_annotate --inclusive=no --threshold=100 "$WORK/hot.callgrind" 2>/dev/null |
    awk -v top="$TOP" -v n="${COUNT[hot]}" '
      /^ *[0-9,]+ +\( *[0-9.]+%\)/ {
        ir = $1; gsub(",", "", ir); pct = $0; sub(/^[^(]*\( */, "", pct); sub(/%.*/, "", pct)
        if (pct + 0 > 90) next
        line = $0; sub(/^ *[0-9,]+ +\( *[0-9.]+%\) +/, "", line)
        sub(/ \[[^]]*\]$/, "", line)
        if (++shown > top) next
        printf "%8.0f  %s\n", ir / n, substr(line, 1, 160)
      }'
fi

if [[ $CHECK == 1 ]]; then
  base=$(from_baseline hot)
  echo
  python3 - "$HOT_IR" "$base" "$TOLERANCE" <<'PY'
import sys
now, base, tol = float(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
limit = base * (1 + tol)
verdict = "ok" if now <= limit else "FAILED"
print(f"hot key: {now:.0f} instructions/request; baseline {base:.0f}, limit {limit:.0f}: {verdict}")
sys.exit(0 if now <= limit else 1)
PY
fi

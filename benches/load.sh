#!/usr/bin/env bash
# Load test of the API guard (issue 5; results in BENCHMARKS.md).
#
# Builds the release binary, starts it on 127.0.0.1 with a fresh data dir,
# signs a user up and creates a key through the real pages (CSRF and all),
# writes 100,000 more keys with benches/tools/seed_keys.rs, then runs wrk for:
#   (a) GET /api/v1/ping           no key, no database (the baseline)
#   (b) GET /api/v1/whoami         one hot valid key
#   (c) GET /api/v1/whoami         10,000 distinct valid keys, round-robin
#   (d) GET /api/v1/whoami         10,000 well-formed unknown keys (valid
#                                  checksums), with the database lookups
#                                  counted by /metrics during the run
#   (e) (b) while 8 connections log in continuously (Argon2id each)
#   (a2) (a) again, but requested through keys.lua like (c) and (d): the
#        client's own cost per request is part of every figure (wrk shares
#        the two cores), so (c) and (d) are also compared with this
# plus start-up to first answer on an empty database, and peak RSS
# (VmHWM) with 100,000 keys in the database and a warm cache. The server
# keeps cached keys 600 s (CACHE_SECONDS; the default is 30 s): a pass
# over 100,000 cold keys runs at the pace of their lookups and outlasts
# 30 s on a busy host, and the RSS pass is about the cache holding all of
# them. The other rows never keep a key longer than 30 s.
#
# Each of RUNS rounds runs a, b, ab, a2, c, ac, d, aa back to back, where
# ab, ac and aa are (a) again: every row is compared with the mean of the
# two (a) runs around it, seconds apart (the machine's speed drifts by
# ±10 % over minutes), and the summary gives each ratio's median over the
# rounds. (e) is measured right after a fresh (b) without the logins.
#
# Only 127.0.0.1 is targeted; every wrk run is bounded by DURATION; the
# server and any background wrk are stopped on exit.
#
#   bash benches/load.sh                 # DURATION=10s CONNS=64 THREADS=2 RUNS=3
#   DURATION=5s RUNS=1 bash benches/load.sh
#   BIN=/path/to/keyward SEEDER=/path/to/seed_keys bash benches/load.sh   # skip the build
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
RUNS=${RUNS:-3}
# A free loopback port unless one is given.
PORT=${PORT:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
SEED=${SEED:-100000}
ROUND_ROBIN=${ROUND_ROBIN:-10000}
BASE="http://127.0.0.1:$PORT"
USER_NAME=loadtest
PASSWORD="load test passphrase 42"

WORK=$(mktemp -d /tmp/keyward-load.XXXXXX)
SERVER_PID=""
BACKGROUND_PID=""
cleanup() {
  [[ -n "$BACKGROUND_PID" ]] && kill "$BACKGROUND_PID" 2>/dev/null || true
  [[ -n "$SERVER_PID" ]] && kill -TERM "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null || true
  if [[ -z "${KEEP:-}" ]]; then rm -rf "$WORK"; else echo "kept $WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for tool in wrk curl python3; do
  command -v "$tool" >/dev/null || { echo "needs $tool (apt-get install $tool)"; exit 1; }
done
if curl -s -o /dev/null "$BASE/"; then
  echo "port $PORT is taken; set PORT"; exit 1
fi

# Wait (at most 5 minutes) for a quiet machine: other builds skew the numbers.
for _ in $(seq 60); do
  load1=$(cut -d' ' -f1 /proc/loadavg)
  python3 -c "import sys; sys.exit(0 if float('$load1') < 1.0 else 1)" && break
  echo "load average $load1; waiting for a quiet machine…"
  sleep 5
done

if [[ -z "${BIN:-}" || -z "${SEEDER:-}" ]]; then
  echo "== build"
  cargo build --release --features bench-tools --bin keyward --bin seed_keys 2>&1 | tail -1
  BIN=${BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/keyward}
  SEEDER=${SEEDER:-${CARGO_TARGET_DIR:-$ROOT/target}/release/seed_keys}
fi
echo "binary:  $BIN ($(date -u -r "$BIN" '+built %Y-%m-%d %H:%M UTC'))"

echo "== machine"
echo "date:    $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "cpu:     $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //') x $(nproc)"
echo "memory:  $(free -g | awk '/^Mem/{print $2}') GiB"
echo "kernel:  $(uname -r)"
echo "wrk:     $(wrk -v 2>&1 | head -1)"
echo "rustc:   $(rustc --version)"
echo "commit:  $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src Cargo.toml || echo ' (+ local changes)')"
echo "uptime: $(uptime)"

# ---- start-up to first answer, empty database -------------------------------
echo "== start-up to first answer on an empty database (5 tries)"
STARTUP_MS=$(python3 - "$BIN" "$PORT" <<'PY'
import http.client, os, subprocess, sys, tempfile, time
binary, port = sys.argv[1], int(sys.argv[2])
times = []
for _ in range(5):
    d = tempfile.mkdtemp(prefix="keyward-start.")
    env = dict(os.environ, KEYWARD_DATA_DIR=d, KEYWARD_BIND=f"127.0.0.1:{port}", RUST_LOG="info")
    env.pop("DATABASE_URL", None)
    t0 = time.perf_counter()
    p = subprocess.Popen([binary], env=env, cwd=d, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = t0 + 10
    ok = False
    while time.perf_counter() < deadline:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            c.request("GET", "/api/v1/ping")
            if c.getresponse().status == 200:
                ok = True
                break
        except OSError:
            pass
        time.sleep(0.0005)
    ms = (time.perf_counter() - t0) * 1000
    p.terminate()
    p.wait()
    subprocess.run(["rm", "-rf", d])
    if not ok:
        sys.exit("no answer within 10 s")
    times.append(ms)
times.sort()
print(f"{times[len(times) // 2]:.0f} (median; all: {', '.join(f'{t:.0f}' for t in times)})")
PY
)
echo "start-up: $STARTUP_MS ms"

# ---- the server --------------------------------------------------------------
echo "== start the server"
mkdir -p "$WORK/data"
(
  cd "$WORK"
  exec env -u DATABASE_URL KEYWARD_DATA_DIR="$WORK/data" KEYWARD_BIND="127.0.0.1:$PORT" RUST_LOG=info \
    KEYWARD_METRICS_TOKEN=load-test KEYWARD_REGISTRATIONS_PER_HOUR=1000 \
    KEYWARD_KEY_CACHE_SECONDS="${CACHE_SECONDS:-600}" \
    "$BIN" >"$WORK/server.log" 2>&1
) &
SERVER_PID=$!
for _ in $(seq 200); do
  curl -sf -o /dev/null "$BASE/api/v1/ping" && break
  sleep 0.05
done
curl -sf -o /dev/null "$BASE/api/v1/ping" || { cat "$WORK/server.log"; exit 1; }

csrf() { grep -o 'name="csrf_token" value="[^"]*"' | head -1 | sed 's/.*value="//; s/"$//'; }
JAR=$WORK/cookies
echo "== sign up and create a key through the pages"
token=$(curl -sf -c "$JAR" -b "$JAR" "$BASE/register" | csrf)
code=$(curl -s -o /dev/null -w '%{http_code}' -c "$JAR" -b "$JAR" "$BASE/register" \
  --data-urlencode "username=$USER_NAME" --data-urlencode "email=$USER_NAME@example.com" \
  --data-urlencode "password=$PASSWORD" --data-urlencode "password_confirm=$PASSWORD" \
  --data-urlencode "csrf_token=$token")
[[ $code == 303 ]] || { echo "registration answered $code"; exit 1; }
token=$(curl -sf -c "$JAR" -b "$JAR" "$BASE/keys/new" | csrf)
HOT=$(curl -sf -c "$JAR" -b "$JAR" "$BASE/keys" --data-urlencode "name=hot" \
  --data-urlencode "scopes=read" --data-urlencode "expires_in_days=" --data-urlencode "csrf_token=$token" |
  grep -o '<code id="new-key">[^<]*' | sed 's/.*>//')
[[ -n "$HOT" ]] || { echo "no key on the creation page"; exit 1; }
[[ $(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $HOT" "$BASE/api/v1/whoami") == 200 ]]

echo "== write $SEED more keys ($ROUND_ROBIN of them, and $ROUND_ROBIN unknown ones, for the load generator)"
"$SEEDER" "$WORK/data/keyward.db" "$USER_NAME" "$SEED" "$WORK/keys.txt" "$SEED" "$WORK/unknown.txt" "$ROUND_ROBIN"
head -n "$ROUND_ROBIN" "$WORK/keys.txt" >"$WORK/keys-rr.txt"

# ---- wrk ---------------------------------------------------------------------
metric() { curl -sf -H 'Authorization: Bearer load-test' "$BASE/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }
hwm() { awk '/^VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$SERVER_PID/status"; }
rss() { awk '/^VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$SERVER_PID/status"; }
ratio() { python3 -c "print(f'{$1 / $2:.2f}')"; }
# wrk's latency ("812.00us", "1.20ms", "1.01s") in milliseconds.
ms() { python3 -c "
s = '$1'
for unit, f in (('us', 1e-3), ('ms', 1.0), ('s', 1e3)):
    if s.endswith(unit):
        print(round(float(s[:-len(unit)]) * f, 3))
        break"; }

declare -A RPS P50 P99 BAD CMD CPU
# The server's CPU time so far (user + system), in clock ticks.
ticks() { awk '{ print $14 + $15 }' "/proc/$SERVER_PID/stat"; }
HZ=$(getconf CLK_TCK)
# measure ROW wrk-args…: one wrk run; its figures go to RPS[ROW.round] etc.,
# with the server's CPU time per request (a figure the load generator's
# share of the cores does not move as much as the request rate).
measure() {
  local row=$1
  shift
  CMD[$row]="wrk $(printf "%q " "$@")"
  local out="$WORK/$row.$ROUND.txt"
  local t0
  t0=$(ticks)
  wrk "$@" >"$out" 2>&1
  local t1
  t1=$(ticks)
  local key="$row.$ROUND"
  local n
  n=$(awk '/requests in/ { print $1 }' "$out")
  CPU[$key]=$(python3 -c "print(f'{($t1 - $t0) * 1e6 / $HZ / $n:.1f}')")
  RPS[$key]=$(awk '/^Requests\/sec/ { print $2 }' "$out")
  P50[$key]=$(awk '$1 == "50%" { print $2 }' "$out")
  P99[$key]=$(awk '$1 == "99%" { print $2 }' "$out")
  BAD[$key]=$(awk '/Non-2xx or 3xx/ { print $5 }' "$out")
  BAD[$key]=${BAD[$key]:-0}
  printf '  round %d %-3s %10s req/s  p50 %8s  p99 %8s  server CPU %5s µs/req  non-2xx %s\n' "$ROUND" "$row" \
    "${RPS[$key]}" "${P50[$key]}" "${P99[$key]}" "${CPU[$key]}" "${BAD[$key]}"
}
WRK="-t$THREADS -c$CONNS -d$DURATION --latency"
HOT_H="Authorization: Bearer $HOT"

# Visits each key of a list once or more (a 3 s pass), so the measured run
# that follows starts with the caches filled; they keep an entry 30 s.
warm() {
  KEYS_FILE=$1 wrk -t1 -c8 -d3s -s benches/keys.lua "$BASE/api/v1/whoami" >/dev/null
}

# The rows of one round run back to back, and every row sits between two
# runs of (a), seconds apart: each is compared with the mean of the two (a)
# runs around it, since the machine's speed drifts by ±10 % over minutes.
# (a2) is (a) requested through keys.lua: the client-side cost of (c) and
# (d), for their ratios.
declare -A BRACKET
D_LOOKUPS=0
for ROUND in $(seq "$RUNS"); do
  echo "== round $ROUND: (b) hot key, (c) $ROUND_ROBIN keys, (d) $ROUND_ROBIN unknown keys, each between runs of (a) no key"
  measure a $WRK "$BASE/api/v1/ping"
  measure b $WRK -H "$HOT_H" "$BASE/api/v1/whoami"
  measure ab $WRK "$BASE/api/v1/ping"
  KEYS_FILE=$WORK/keys-rr.txt measure a2 $WRK -s benches/keys.lua "$BASE/api/v1/ping"
  warm "$WORK/keys-rr.txt"
  KEYS_FILE=$WORK/keys-rr.txt measure c $WRK -s benches/keys.lua "$BASE/api/v1/whoami"
  measure ac $WRK "$BASE/api/v1/ping"
  warm "$WORK/unknown.txt"
  before=$(metric keyward_key_db_lookups_total)
  KEYS_FILE=$WORK/unknown.txt measure d $WRK -s benches/keys.lua "$BASE/api/v1/whoami"
  n=$(($(metric keyward_key_db_lookups_total) - before))
  echo "  database lookups during (d): $n"
  D_LOOKUPS=$((D_LOOKUPS + n))
  measure aa $WRK "$BASE/api/v1/ping"
  mean() { python3 -c "import sys; print(sum(map(float, sys.argv[1:])) / (len(sys.argv) - 1))" "$@"; }
  all_a=$(mean "${RPS[a.$ROUND]}" "${RPS[ab.$ROUND]}" "${RPS[ac.$ROUND]}" "${RPS[aa.$ROUND]}")
  for r in a ab ac aa; do BRACKET[$r.$ROUND]=$all_a; done
  BRACKET[b.$ROUND]=$(mean "${RPS[a.$ROUND]}" "${RPS[ab.$ROUND]}")
  BRACKET[a2.$ROUND]=$(mean "${RPS[ab.$ROUND]}" "${RPS[ac.$ROUND]}")
  BRACKET[c.$ROUND]=${BRACKET[a2.$ROUND]}
  BRACKET[d.$ROUND]=$(mean "${RPS[ac.$ROUND]}" "${RPS[aa.$ROUND]}")
done
HWM_C=$(hwm)

echo "== (e) hot key while 8 connections log in continuously (Argon2id each), after (b) again without them"
token=$(curl -sf -c "$WORK/login-jar" -b "$WORK/login-jar" "$BASE/login" | csrf)
cookie=$(awk '$6 ~ /keyward/ { print $6 "=" $7 }' "$WORK/login-jar" | head -1)
secs=${DURATION%s}
for ROUND in $(seq "$RUNS"); do
  measure b0 $WRK -H "$HOT_H" "$BASE/api/v1/whoami"
  LOGIN_COOKIE=$cookie LOGIN_CSRF=$token LOGIN_USER=$USER_NAME LOGIN_PASSWORD=$PASSWORD \
    wrk -t1 -c8 -d$((secs + 3))s -s benches/login.lua "$BASE/login" >"$WORK/logins.$ROUND.txt" 2>&1 &
  BACKGROUND_PID=$!
  sleep 1
  measure e $WRK -H "$HOT_H" "$BASE/api/v1/whoami"
  wait "$BACKGROUND_PID" || true
  BACKGROUND_PID=""
  echo "  logins: $(awk '/^Requests\/sec/ { print $2 }' "$WORK/logins.$ROUND.txt")/s," \
    "non-2xx/3xx: $(awk '/Non-2xx or 3xx/ { print $5 }' "$WORK/logins.$ROUND.txt" | grep . || echo 0)"
done
HWM_E=$(hwm)

echo "== peak RSS: every one of the $SEED keys verified (all cached), then logins beside another pass, then VmHWM"
for _ in $(seq 8); do
  KEYS_FILE=$WORK/keys.txt wrk -t"$THREADS" -c"$CONNS" -d10s -s benches/keys.lua "$BASE/api/v1/whoami" >"$WORK/all.txt"
  cached=$(metric 'keyward_key_cache_entries{cache="positive"}')
  echo "  $(awk '/^Requests\/sec/ { print $2 }' "$WORK/all.txt") req/s; known ids cached: $cached"
  ((cached >= SEED)) && break
done
HWM_ALL=$(hwm)
# The cache stays full while 2 connections log in non-stop: each login
# holds Argon2's 19 MiB for the length of a hash.
LOGIN_COOKIE=$cookie LOGIN_CSRF=$token LOGIN_USER=$USER_NAME LOGIN_PASSWORD=$PASSWORD \
  wrk -t1 -c2 -d10s -s benches/login.lua "$BASE/login" >"$WORK/logins.all.txt" 2>&1 &
BACKGROUND_PID=$!
KEYS_FILE=$WORK/keys.txt wrk -t"$THREADS" -c"$CONNS" -d10s -s benches/keys.lua "$BASE/api/v1/whoami" >"$WORK/all.txt"
wait "$BACKGROUND_PID" || true
BACKGROUND_PID=""
echo "  with logins: $(awk '/^Requests\/sec/ { print $2 }' "$WORK/all.txt") req/s;" \
  "logins $(awk '/^Requests\/sec/ { print $2 }' "$WORK/logins.all.txt")/s;" \
  "known ids cached: $(metric 'keyward_key_cache_entries{cache="positive"}')"
HWM_ALL_LOGIN=$(hwm)
echo "  VmHWM: $HWM_C MiB after (a)-(d); $HWM_E MiB after (e); $HWM_ALL MiB with all $SEED keys cached;" \
  "$HWM_ALL_LOGIN MiB after logins beside them; VmRSS now $(rss) MiB"
echo "  threads: $(awk '/^Threads/ { print $2 }' "/proc/$SERVER_PID/status")"

# ---- summary -----------------------------------------------------------------
echo
echo "== summary ($THREADS wrk threads, $CONNS connections, $DURATION per run)"
printf '| round | row | %12s | %8s | %8s | %6s | %7s | %10s | %s\n' "req/s" p50 p99 "vs (a)" "vs (a2)" "CPU µs/req" "non-2xx"
declare -A RATIOS
for ROUND in $(seq "$RUNS"); do
  for r in a b ab a2 c ac d aa; do
    k="$r.$ROUND"
    vs_a=$(ratio "${RPS[$k]}" "${BRACKET[$k]}")
    RATIOS[$r]="${RATIOS[$r]:-} $vs_a"
    printf '| %5d | %-3s | %12s | %8s | %8s | %6s | %7s | %10s | %s\n' "$ROUND" "$r" "${RPS[$k]}" "${P50[$k]}" \
      "${P99[$k]}" "$vs_a" "$(ratio "${RPS[$k]}" "${RPS[a2.$ROUND]}")" "${CPU[$k]}" "${BAD[$k]}"
  done
done
echo "(\"vs (a)\": against the mean of the two runs of (a) around the row: (a)/(ab) for (b), (ab)/(ac) for (a2) and (c), (ac)/(aa) for (d); the (a) rows against the mean of all four)"
for r in a b ab a2 c ac d aa; do
  cpus=""
  for ROUND in $(seq "$RUNS"); do cpus="$cpus ${CPU[$r.$ROUND]}"; done
  echo "($r) server CPU per request, median of $RUNS rounds: $(python3 -c "import statistics, sys; print(statistics.median(map(float, sys.argv[1:])))" $cpus) µs"
done
for r in b c d; do
  echo "($r) vs (a), median of $RUNS rounds: $(python3 -c "import statistics, sys; print(statistics.median(map(float, sys.argv[1:])))" ${RATIOS[$r]}) (all:${RATIOS[$r]})"
done
for ROUND in $(seq "$RUNS"); do
  echo "(e) round $ROUND: p99 ${P99[e.$ROUND]} with logins vs ${P99[b0.$ROUND]} without:" \
    "$(ratio "$(ms "${P99[e.$ROUND]}")" "$(ms "${P99[b0.$ROUND]}")")x; req/s ${RPS[e.$ROUND]} vs ${RPS[b0.$ROUND]}"
done
echo "(d) database lookups during the measured runs: $D_LOOKUPS"
echo "start-up to first answer: $STARTUP_MS ms"
echo "peak RSS (VmHWM): $HWM_C MiB after (a)-(d); $HWM_E MiB after (e); $HWM_ALL MiB with all $SEED keys cached;" \
  "$HWM_ALL_LOGIN MiB with logins beside them"
echo
echo "commands (\$HOT is the key created through the pages; keys.lua reads \$KEYS_FILE):"
for r in a b a2 c d e; do echo "  ($r) ${CMD[$r]//$HOT/\$HOT}"; done
echo "uptime: $(uptime)"

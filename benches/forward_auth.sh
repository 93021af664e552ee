#!/usr/bin/env bash
# Forward auth through nginx (results in BENCHMARKS.md, "Forward auth
# through nginx"). The same conventions as load.sh: a fresh data dir, a user
# and a key made through the real pages, wrk on 127.0.0.1 only, every row
# between two runs of the baseline, and everything stopped on exit.
#
# One nginx serves both the front and the upstream API: a second server
# block on another loopback port answers every request with
# `return 200 '{"ok":true}'`. The rows, all requested by wrk with the same
# `Authorization: Bearer $HOT` header:
#   (n) wrk -> nginx /noauth/ -> upstream                      no auth: the baseline
#   (f) wrk -> nginx /read/   -> auth_request -> Keyward /auth/verify?scope=read
#                             -> upstream                      forward auth (the README's config)
# and, to find what a forward-auth request costs and where (PROFILE=1, the
# default), each step adding one thing to the one before:
#   (l) auth_request to an internal `return 200;` location of the same
#       server: nginx's subrequest alone, no connection to anything
#   (s) auth_request proxied to a stub location of nginx itself
#       (`return 200;` on the upstream port): + the TCP hop to an auth
#       service that costs next to nothing
#   (p) auth_request proxied to Keyward's `HEAD /api/v1/ping`: + Keyward's
#       HTTP path, without a key check (HEAD: no body, so the connection is
#       kept, as with /auth/verify)
#   (f) is (p) + the key check and the X-Keyward-* headers.
#
# Each of RUNS rounds runs n f n2 l n3 s n4 p n5; every row is compared
# with the mean of the two (n) runs around it (the host drifts by ±15 % a
# minute), throughput and p99 alike. CPU per request of nginx (master and
# workers), of Keyward and of wrk comes from /proc/<pid>/stat and the
# shell's `times` around each run. Each round first waits (up to
# WAIT_QUIET_ROUND seconds, 120 by default) for a quiet machine.
#
#   bash benches/forward_auth.sh             # DURATION=10s CONNS=64 THREADS=2 RUNS=3
#   BIN=/path/to/keyward bash benches/forward_auth.sh    # skip the build
#   DURATION=5s RUNS=1 PROFILE=0 bash benches/forward_auth.sh   # (n) and (f) only
#   KEEPALIVE=16 NGINX_WORKERS=1 bash benches/forward_auth.sh   # other nginx settings
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
RUNS=${RUNS:-3}
PROFILE=${PROFILE:-1}
NGINX_WORKERS=${NGINX_WORKERS:-auto}
# Idle connections each nginx worker keeps to Keyward and to the API.
KEEPALIVE=${KEEPALIVE:-64}
NGINX=${NGINX:-/usr/sbin/nginx}
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
KPORT=${KPORT:-$(free_port)}   # Keyward
PORT=${PORT:-$(free_port)}     # nginx, the front
UPORT=${UPORT:-$(free_port)}   # nginx, the upstream API
KBASE="http://127.0.0.1:$KPORT"
FRONT="http://127.0.0.1:$PORT"
USER_NAME=loadtest
PASSWORD="load test passphrase 42"

WORK=$(mktemp -d /tmp/keyward-fwd.XXXXXX)
SERVER_PID=""
NGINX_PID=""
cleanup() {
  [[ -n "$NGINX_PID" ]] && kill -QUIT "$NGINX_PID" 2>/dev/null && wait "$NGINX_PID" 2>/dev/null || true
  [[ -n "$SERVER_PID" ]] && kill -TERM "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null || true
  if [[ -z "${KEEP:-}" ]]; then rm -rf "$WORK"; else echo "kept $WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for tool in wrk curl python3 "$NGINX"; do
  command -v "$tool" >/dev/null || { echo "needs $tool (apt-get install wrk curl python3 nginx-light)"; exit 1; }
done
for p in "$KPORT" "$PORT" "$UPORT"; do
  if curl -s -o /dev/null "http://127.0.0.1:$p/"; then echo "port $p is taken; set KPORT, PORT, UPORT"; exit 1; fi
done

# Wait (at most WAIT_QUIET seconds, 300 by default) for a quiet machine:
# other builds skew the numbers. Work at a positive nice level (a fuzzer, a
# `nice` build) yields to the benchmark and is not counted; the load
# average would count it.
busy_cores() {  # CPU time at nice <= 0 over 2 s, in cores
  python3 - <<'PY'
import os, time
def sample():
    return list(map(int, open("/proc/stat").readline().split()[1:]))
a = sample(); time.sleep(2); b = sample()
d = [y - x for x, y in zip(a, b)]
print(f"{(d[0] + d[2] + d[5] + d[6]) / (sum(d[:8]) or 1) * os.cpu_count():.2f}")
PY
}
wait_quiet() {
  local waited=0 busy
  while :; do
    busy=$(busy_cores)
    python3 -c "import sys; sys.exit(0 if $busy < 0.5 else 1)" && break
    if ((waited >= $1)); then
      echo "  still $busy cores busy at nice <= 0 after $waited s; going on"
      break
    fi
    echo "  $busy cores busy at nice <= 0; waiting for a quiet machine…"
    sleep 8
    waited=$((waited + 10))
  done
}
wait_quiet "${WAIT_QUIET:-300}"

if [[ -z "${BIN:-}" ]]; then
  echo "== build"
  nice -n 10 cargo build --release --locked --bin keyward 2>&1 | tail -1
  BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/keyward
  BUILT=1
fi

echo "== machine"
echo "date:    $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "cpu:     $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //') x $(nproc)"
echo "memory:  $(free -g | awk '/^Mem/{print $2}') GiB"
echo "kernel:  $(uname -r)"
echo "wrk:     $(wrk -v 2>&1 | head -1)"
echo "nginx:   $("$NGINX" -v 2>&1)"
echo "binary:  $BIN ($(date -u -r "$BIN" '+built %Y-%m-%d %H:%M UTC'))"
echo "tree:    $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src Cargo.toml || echo ' (+ local changes)')$([[ -n "${BUILT:-}" ]] || echo ', not necessarily the binary')"
echo "uptime: $(uptime)"

# ---- Keyward -----------------------------------------------------------------
echo "== start Keyward on 127.0.0.1:$KPORT"
mkdir -p "$WORK/data"
(
  cd "$WORK"
  exec env -u DATABASE_URL KEYWARD_DATA_DIR="$WORK/data" KEYWARD_BIND="127.0.0.1:$KPORT" RUST_LOG=info \
    KEYWARD_METRICS_TOKEN=load-test KEYWARD_REGISTRATIONS_PER_HOUR=1000 \
    "$BIN" >"$WORK/server.log" 2>&1
) &
SERVER_PID=$!
for _ in $(seq 200); do
  curl -sf -o /dev/null "$KBASE/api/v1/ping" && break
  sleep 0.05
done
curl -sf -o /dev/null "$KBASE/api/v1/ping" || { cat "$WORK/server.log"; exit 1; }

csrf() { grep -o 'name="csrf_token" value="[^"]*"' | head -1 | sed 's/.*value="//; s/"$//'; }
JAR=$WORK/cookies
echo "== sign up and create a key through the pages"
token=$(curl -sf -c "$JAR" -b "$JAR" "$KBASE/register" | csrf)
code=$(curl -s -o /dev/null -w '%{http_code}' -c "$JAR" -b "$JAR" "$KBASE/register" \
  --data-urlencode "username=$USER_NAME" --data-urlencode "email=$USER_NAME@example.com" \
  --data-urlencode "password=$PASSWORD" --data-urlencode "password_confirm=$PASSWORD" \
  --data-urlencode "csrf_token=$token")
[[ $code == 303 ]] || { echo "registration answered $code"; exit 1; }
token=$(curl -sf -c "$JAR" -b "$JAR" "$KBASE/keys/new" | csrf)
HOT=$(curl -sf -c "$JAR" -b "$JAR" "$KBASE/keys" --data-urlencode "name=hot" \
  --data-urlencode "scopes=read" --data-urlencode "expires_in_days=" --data-urlencode "csrf_token=$token" |
  grep -o '<code id="new-key">[^<]*' | sed 's/.*>//')
[[ -n "$HOT" ]] || { echo "no key on the creation page"; exit 1; }
[[ $(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $HOT" "$KBASE/api/v1/whoami") == 200 ]]

# ---- nginx -------------------------------------------------------------------
# The /read/ location and its /_keyward/read are the README's.
USER_LINE=""
[[ $(id -u) == 0 ]] && USER_LINE="user root;"
cat >"$WORK/nginx.conf" <<EOF
$USER_LINE
worker_processes $NGINX_WORKERS;
daemon off;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $WORK/body;
    proxy_temp_path $WORK/proxy;
    fastcgi_temp_path $WORK/fastcgi;
    uwsgi_temp_path $WORK/uwsgi;
    scgi_temp_path $WORK/scgi;

    upstream keyward { server 127.0.0.1:$KPORT; keepalive $KEEPALIVE; }
    upstream api     { server 127.0.0.1:$UPORT; keepalive $KEEPALIVE; }

    # The upstream API: the same trivial answer for every row.
    server {
        listen 127.0.0.1:$UPORT;
        location / {
            default_type application/json;
            return 200 '{"ok":true}';
        }
        # What the API was told, for the check before the runs.
        location = /read/whoami {
            default_type text/plain;
            return 200 "\$http_x_keyward_user|\$http_x_keyward_key_id|\$http_x_keyward_key_prefix|\$http_x_keyward_scopes";
        }
        # (s): an auth service that costs next to nothing.
        location = /stub-auth {
            return 200;
        }
    }

    server {
        listen 127.0.0.1:$PORT;

        # (n) no auth
        location /noauth/ {
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://api;
        }

        # (f) forward auth
        location = /_keyward/read {
            internal;
            proxy_pass http://keyward/auth/verify?scope=read;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
        location /read/ {
            auth_request /_keyward/read;
            auth_request_set \$keyward_user   \$upstream_http_x_keyward_user;
            auth_request_set \$keyward_key_id \$upstream_http_x_keyward_key_id;
            auth_request_set \$keyward_key    \$upstream_http_x_keyward_key_prefix;
            auth_request_set \$keyward_scopes \$upstream_http_x_keyward_scopes;
            proxy_set_header X-Keyward-User \$keyward_user;
            proxy_set_header X-Keyward-Key-Id \$keyward_key_id;
            proxy_set_header X-Keyward-Key-Prefix \$keyward_key;
            proxy_set_header X-Keyward-Scopes \$keyward_scopes;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://api;
        }

        # (l) a subrequest to a location of this server: no connection
        location = /_local {
            internal;
            return 200;
        }
        location /local/ {
            auth_request /_local;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://api;
        }

        # (s) the same auth_request, answered by nginx's stub
        location = /_stub {
            internal;
            proxy_pass http://api/stub-auth;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
        location /stub/ {
            auth_request /_stub;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://api;
        }

        # (p) the same auth_request to Keyward's HEAD /api/v1/ping
        location = /_ping {
            internal;
            proxy_method HEAD;
            proxy_pass http://keyward/api/v1/ping;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
        location /ping/ {
            auth_request /_ping;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://api;
        }
    }
}
EOF
echo "== start nginx on 127.0.0.1:$PORT (front) and :$UPORT (upstream), $NGINX_WORKERS workers, keepalive $KEEPALIVE"
"$NGINX" -p "$WORK" -c "$WORK/nginx.conf" -t >/dev/null 2>&1 || { "$NGINX" -p "$WORK" -c "$WORK/nginx.conf" -t; exit 1; }
"$NGINX" -p "$WORK" -c "$WORK/nginx.conf" >"$WORK/nginx.out" 2>&1 &
NGINX_PID=$!
for _ in $(seq 100); do
  curl -s -o /dev/null "$FRONT/noauth/" && break
  sleep 0.05
done

# ---- checks ------------------------------------------------------------------
status() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
HOT_H="Authorization: Bearer $HOT"
[[ $(curl -s -H "$HOT_H" "$FRONT/noauth/items") == '{"ok":true}' ]] || { echo "no-auth row broken"; exit 1; }
[[ $(curl -s -H "$HOT_H" "$FRONT/read/items") == '{"ok":true}' ]] || { echo "forward-auth row broken"; exit 1; }
[[ $(status "$FRONT/read/items") == 401 ]] || { echo "no key was not refused"; exit 1; }
[[ $(status -H "Authorization: Bearer kw_nonsense" "$FRONT/read/items") == 401 ]] || { echo "a bad key was not refused"; exit 1; }
[[ $(status -H "$HOT_H" "$FRONT/local/items") == 200 && $(status -H "$HOT_H" "$FRONT/stub/items") == 200 &&
  $(status -H "$HOT_H" "$FRONT/ping/items") == 200 ]] ||
  { echo "profiling rows broken"; exit 1; }
seen=$(curl -s -H "$HOT_H" -H "X-Keyward-User: mallory" -H "X-Keyward-Key-Id: forged" \
  -H "X-Keyward-Key-Prefix: forged" -H "X-Keyward-Scopes: admin" "$FRONT/read/whoami")
id=$(cut -d_ -f2 <<<"$HOT")
[[ $seen == "$USER_NAME|$id|kw_$id|read" ]] || { echo "the API was told: $seen"; exit 1; }
echo "  checks passed: 401 without a key and with a bad one; the API sees '$seen' whatever the client sends"

# ---- wrk ---------------------------------------------------------------------
ratio() { python3 -c "print(f'{$1 / $2:.2f}')"; }
mean() { python3 -c "import sys; print(sum(map(float, sys.argv[1:])) / (len(sys.argv) - 1))" "$@"; }
median() { python3 -c "import statistics, sys; print(f'{statistics.median(map(float, sys.argv[1:])):.2f}')" "$@"; }
# wrk's latency ("812.00us", "1.20ms", "1.01s") in milliseconds.
ms() { python3 -c "
s = '$1'
for unit, f in (('us', 1e-3), ('ms', 1.0), ('s', 1e3)):
    if s.endswith(unit):
        print(round(float(s[:-len(unit)]) * f, 3))
        break"; }
HZ=$(getconf CLK_TCK)
# CPU time so far (user + system, clock ticks) of a process, and of nginx's
# master and workers together.
ticks_of() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
nginx_ticks() {
  local t
  t=$(ticks_of "$NGINX_PID")
  for w in $(cat "/proc/$NGINX_PID/task/$NGINX_PID/children"); do t=$((t + $(ticks_of "$w"))); done
  echo "$t"
}
# All CPUs' busy time (everything but idle and iowait), in ticks.
busy_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 }' /proc/stat; }
time_wait() { ss -tan state time-wait "( dport = :$KPORT )" 2>/dev/null | tail -n +2 | wc -l; }
metric() { curl -sf -H 'Authorization: Bearer load-test' "$KBASE/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }

# The CPU time (user + system, seconds) of this shell's finished children,
# from a file the `times` builtin wrote (it must run in this shell, not in
# a subshell: a fork starts with no children's time).
children_cpu() {
  python3 -c "
import re, sys
line = open(sys.argv[1]).read().splitlines()[-1]
print(sum(int(m) * 60 + float(s) for m, s in re.findall(r'(\d+)m([\d.]+)s', line)))" "$1"
}

declare -A RPS P50 P99 BAD CMD NGX KW WRKC ALL
measure() {
  local row=$1
  shift
  CMD[$row]="wrk $(printf "%q " "$@")"
  local out="$WORK/$row.$ROUND.txt" key="$row.$ROUND"
  local n0 k0 b0 w0 n1 k1 b1 w1 n
  n0=$(nginx_ticks); k0=$(ticks_of "$SERVER_PID"); b0=$(busy_ticks)
  times >"$WORK/times0"
  wrk "$@" >"$out" 2>&1
  times >"$WORK/times1"
  n1=$(nginx_ticks); k1=$(ticks_of "$SERVER_PID"); b1=$(busy_ticks)
  w0=$(children_cpu "$WORK/times0"); w1=$(children_cpu "$WORK/times1")
  n=$(awk '/requests in/ { print $1 }' "$out")
  per() { python3 -c "print(f'{$1 * 1e6 / $HZ / $n:.1f}')"; }
  NGX[$key]=$(per $((n1 - n0)))
  KW[$key]=$(per $((k1 - k0)))
  ALL[$key]=$(per $((b1 - b0)))
  WRKC[$key]=$(python3 -c "print(f'{($w1 - $w0) * 1e6 / $n:.1f}')")
  RPS[$key]=$(awk '/^Requests\/sec/ { print $2 }' "$out")
  P50[$key]=$(awk '$1 == "50%" { print $2 }' "$out")
  P99[$key]=$(awk '$1 == "99%" { print $2 }' "$out")
  BAD[$key]=$(awk '/Non-2xx or 3xx/ { print $5 }' "$out")
  BAD[$key]=${BAD[$key]:-0}
  printf '  round %d %-2s %10s req/s  p50 %8s  p99 %8s  CPU µs/req: nginx %5s keyward %5s wrk %5s all %5s  non-2xx %s\n' \
    "$ROUND" "$row" "${RPS[$key]}" "${P50[$key]}" "${P99[$key]}" "${NGX[$key]}" "${KW[$key]}" "${WRKC[$key]}" \
    "${ALL[$key]}" "${BAD[$key]}"
}
WRK="-t$THREADS -c$CONNS -d$DURATION --latency"

# A short warm-up: connections to both upstreams, Keyward's caches.
wrk -t1 -c8 -d2s -H "$HOT_H" "$FRONT/read/items" >/dev/null

ROWS="n f n2"
[[ $PROFILE == 1 ]] && ROWS="n f n2 l n3 s n4 p n5"
v0=$(metric 'keyward_key_verifications_total{outcome="ok"}' || true)
for ROUND in $(seq "$RUNS"); do
  echo "== round $ROUND: (f) forward auth$([[ $PROFILE == 1 ]] && echo ', (l) local subrequest, (s) stub auth, (p) ping auth'), each between runs of (n) no auth"
  wait_quiet "${WAIT_QUIET_ROUND:-120}"
  measure n $WRK -H "$HOT_H" "$FRONT/noauth/items"
  measure f $WRK -H "$HOT_H" "$FRONT/read/items"
  echo "  connections to Keyward in TIME-WAIT after (f): $(time_wait)"
  measure n2 $WRK -H "$HOT_H" "$FRONT/noauth/items"
  if [[ $PROFILE == 1 ]]; then
    measure l $WRK -H "$HOT_H" "$FRONT/local/items"
    measure n3 $WRK -H "$HOT_H" "$FRONT/noauth/items"
    measure s $WRK -H "$HOT_H" "$FRONT/stub/items"
    measure n4 $WRK -H "$HOT_H" "$FRONT/noauth/items"
    measure p $WRK -H "$HOT_H" "$FRONT/ping/items"
    echo "  connections to Keyward in TIME-WAIT after (p): $(time_wait)"
    measure n5 $WRK -H "$HOT_H" "$FRONT/noauth/items"
  fi
done
v1=$(metric 'keyward_key_verifications_total{outcome="ok"}' || true)

# ---- summary -----------------------------------------------------------------
declare -A BEFORE=([f]=n [l]=n2 [s]=n3 [p]=n4) AFTER=([f]=n2 [l]=n3 [s]=n4 [p]=n5)
echo
echo "== summary ($THREADS wrk threads, $CONNS connections, $DURATION per run; nginx $NGINX_WORKERS workers, keepalive $KEEPALIVE)"
printf '| round | row | %10s | %8s | %8s | %6s | %10s | %12s | %14s | %10s | %14s | %s\n' \
  "req/s" p50 p99 "vs (n)" "p99 vs (n)" "nginx µs/req" "Keyward µs/req" "wrk µs/req" "all CPU µs/req" "non-2xx"
declare -A RATIOS P99R
for ROUND in $(seq "$RUNS"); do
  for r in $ROWS; do
    k="$r.$ROUND"
    vs="" p99r=""
    if [[ -n "${BEFORE[$r]:-}" ]]; then
      b="${BEFORE[$r]}.$ROUND" a="${AFTER[$r]}.$ROUND"
      vs=$(ratio "${RPS[$k]}" "$(mean "${RPS[$b]}" "${RPS[$a]}")")
      p99r=$(ratio "$(ms "${P99[$k]}")" "$(mean "$(ms "${P99[$b]}")" "$(ms "${P99[$a]}")")")
      RATIOS[$r]="${RATIOS[$r]:-} $vs"
      P99R[$r]="${P99R[$r]:-} $p99r"
    fi
    printf '| %5d | %-3s | %10s | %8s | %8s | %6s | %10s | %12s | %14s | %10s | %14s | %s\n' "$ROUND" "$r" \
      "${RPS[$k]}" "${P50[$k]}" "${P99[$k]}" "$vs" "$p99r" "${NGX[$k]}" "${KW[$k]}" "${WRKC[$k]}" "${ALL[$k]}" "${BAD[$k]}"
  done
done
echo "(\"vs (n)\": req/s against the mean of the two (n) runs around the row; \"p99 vs (n)\": p99 against the mean of their p99s)"
for r in f l s p; do
  [[ -n "${RATIOS[$r]:-}" ]] || continue
  echo "($r) throughput vs (n), median of $RUNS rounds: $(median ${RATIOS[$r]}) (all:${RATIOS[$r]});" \
    "p99 vs (n): $(median ${P99R[$r]}) (all:${P99R[$r]})"
done
f_thr=$(median ${RATIOS[f]})
f_p99=$(median ${P99R[f]})
echo "targets: forward auth >= 0.6x the no-auth throughput: $(python3 -c "print('yes' if $f_thr >= 0.6 else 'no')") ($f_thr);" \
  "p99 <= 2x: $(python3 -c "print('yes' if $f_p99 <= 2.0 else 'no')") ($f_p99)"
for r in $ROWS; do
  n="" k="" w="" a=""
  for ROUND in $(seq "$RUNS"); do
    n="$n ${NGX[$r.$ROUND]}" k="$k ${KW[$r.$ROUND]}" w="$w ${WRKC[$r.$ROUND]}" a="$a ${ALL[$r.$ROUND]}"
  done
  echo "($r) CPU per request, median of $RUNS rounds: nginx $(median $n) µs, Keyward $(median $k) µs," \
    "wrk $(median $w) µs, all CPUs $(median $a) µs"
done
[[ -n "$v0" && -n "$v1" ]] && echo "keys verified by Keyward during the runs: $(python3 -c "print(int($v1 - $v0))")"
echo
echo "commands (\$HOT is the key created through the pages):"
for r in n f l s p; do [[ -n "${CMD[$r]:-}" ]] && echo "  ($r) ${CMD[$r]//$HOT/\$HOT}"; done
echo "uptime: $(uptime)"

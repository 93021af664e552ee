#!/usr/bin/env bash
# A GitHub secret-scanning report of 1000 tokens, 100 of them live keys,
# against the release binary on SQLite (results in BENCHMARKS.md, "Leak
# reports"). The report is signed with a P-256 key made here with openssl
# and published to the server as GitHub publishes its keys
# (KEYWARD_GITHUB_SCANNING_KEYS). The 100 live keys belong to one user and
# are written by benches/tools/seed_keys.rs; the other 900 tokens are
# well-formed keys that do not exist. Mail goes to the file outbox.
#
#   bash benches/leaks.sh                 # RUNS=5 reports, each with fresh keys
#   BIN=… SEEDER=… bash benches/leaks.sh  # skip the build
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
RUNS=${RUNS:-5}
LIVE=${LIVE:-100}
TOTAL=${TOTAL:-1000}

for tool in openssl curl python3; do
  command -v "$tool" >/dev/null || { echo "needs $tool"; exit 1; }
done
if [[ -z "${BIN:-}" || -z "${SEEDER:-}" ]]; then
  echo "== build"
  cargo build --release --locked --features bench-tools --bin keyward --bin seed_keys 2>&1 | tail -1
  dir=${CARGO_TARGET_DIR:-$ROOT/target}/release
  BIN=${BIN:-$dir/keyward}
  SEEDER=${SEEDER:-$dir/seed_keys}
fi
WORK=$(mktemp -d /tmp/keyward-leaks.XXXXXX)
PID=""
cleanup() {
  [[ -n "$PID" ]] && kill -TERM "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "commit:  $(git rev-parse --short HEAD 2>/dev/null || echo '?'); cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //') x $(nproc)"

# The scanner's key, published as GitHub's meta JSON.
openssl ecparam -name prime256v1 -genkey -noout -out "$WORK/scanner.pem" 2>/dev/null
openssl ec -in "$WORK/scanner.pem" -pubout -out "$WORK/scanner.pub" 2>/dev/null
python3 - "$WORK/scanner.pub" "$WORK/github-keys.json" <<'PY'
import json, sys
pem = open(sys.argv[1]).read()
json.dump({"public_keys": [{"key_identifier": "bench", "key": pem, "is_current": True}]}, open(sys.argv[2], "w"))
PY

export KEYWARD_DATA_DIR=$WORK/data
mkdir -p "$KEYWARD_DATA_DIR"
unset DATABASE_URL
echo "leak bench passphrase 42" | "$BIN" user create owner --email owner@example.com >/dev/null
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
KEYWARD_BIND=127.0.0.1:$port KEYWARD_GITHUB_SCANNING_KEYS=$WORK/github-keys.json RUST_LOG=warn \
  "$BIN" >"$WORK/server.log" 2>&1 &
PID=$!
for _ in $(seq 100); do
  curl -sf -o /dev/null "http://127.0.0.1:$port/api/v1/ping" && break
  sleep 0.05
done

echo "== $RUNS reports of $TOTAL tokens, $LIVE of them live"
for run in $(seq "$RUNS"); do
  # Fresh live keys each run: a revoked key is no longer live.
  "$SEEDER" "$KEYWARD_DATA_DIR/keyward.db" owner "$LIVE" "$WORK/live.txt" "$LIVE" \
    "$WORK/unknown.txt" $((TOTAL - LIVE)) >/dev/null 2>&1
  python3 - "$WORK/live.txt" "$WORK/unknown.txt" "$WORK/body.json" <<'PY'
import json, random, sys
tokens = open(sys.argv[1]).read().split() + open(sys.argv[2]).read().split()
random.shuffle(tokens)
body = [{"token": t, "type": "keyward_api_key", "url": f"https://github.com/org/repo/blob/main/leak{i}.env",
         "source": "content"} for i, t in enumerate(tokens)]
open(sys.argv[3], "w").write(json.dumps(body))
PY
  sig=$(openssl dgst -sha256 -sign "$WORK/scanner.pem" "$WORK/body.json" | base64 -w0)
  out=$(curl -s -o "$WORK/answer.json" -w '%{http_code} %{time_total}' \
    -H 'content-type: application/json' -H 'github-public-key-identifier: bench' \
    -H "github-public-key-signature: $sig" --data-binary "@$WORK/body.json" \
    "http://127.0.0.1:$port/api/v1/leaks/github")
  read -r code secs <<<"$out"
  labels=$(python3 -c "
import collections, json, sys
a = json.load(open('$WORK/answer.json'))
c = collections.Counter(x['label'] for x in a)
print(f\"{c['true_positive']} true, {c['false_positive']} false\")")
  printf '  run %d: HTTP %s in %.3f s (%s positives)\n' "$run" "$code" "$secs" "$labels"
  [[ $code == 200 ]] || { cat "$WORK/answer.json"; exit 1; }
done
# The live keys of the last run are refused now.
key=$(head -1 "$WORK/live.txt")
echo "a reported key afterwards: HTTP $(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $key" "http://127.0.0.1:$port/api/v1/whoami")"

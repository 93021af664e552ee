#!/usr/bin/env bash
# The whole test suite. Installs the Debian packages the suite starts for real
# (an SMTP server, PostgreSQL, Chromium, nginx, Caddy) when they are missing, then runs
# every test. Without root, missing packages are reported and the tests that
# need them print "skipped: …".
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
# Build requirements: OpenSSL headers (bundled libpq and lettre link OpenSSL).
pkg-config --exists openssl 2>/dev/null || need+=(pkg-config libssl-dev)
/usr/bin/python3 -c 'import aiosmtpd' 2>/dev/null || need+=(python3-aiosmtpd)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
# Real proxies in front of /auth/verify (tests/api/proxies.rs).
[ -x /usr/sbin/nginx ] || command -v nginx >/dev/null 2>&1 || need+=(nginx-light)
command -v caddy >/dev/null 2>&1 || need+=(caddy)

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing: ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "missing (tests needing them will be skipped): ${need[*]}"
  fi
fi

# Pass 1: everything, the integration suite on SQLite.
cargo test --locked --all-targets "$@"

# The running server against its own OpenAPI document (schemathesis, from
# PyPI into target/schemathesis-venv).
bash scripts/schemathesis.sh

# Pass 2: the same integration suite on PostgreSQL (a throwaway cluster the
# harness starts on 127.0.0.1, or KEYWARD_TEST_DATABASE_URL when given).
if [ -n "${KEYWARD_TEST_DATABASE_URL:-}" ] || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  KEYWARD_TEST_BACKEND=postgres cargo test --locked --test api "$@"
else
  echo "skipped: the PostgreSQL pass of the integration suite (no PostgreSQL server; apt-get install postgresql)"
fi

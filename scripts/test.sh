#!/usr/bin/env bash
# The whole test suite. Installs the Debian packages the suite starts for real
# (an SMTP server, PostgreSQL, Chromium) when they are missing, then runs
# every test. Without root, missing packages are reported and the tests that
# need them print "skipped: …".
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
/usr/bin/python3 -c 'import aiosmtpd' 2>/dev/null || need+=(python3-aiosmtpd)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing: ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "missing (tests needing them will be skipped): ${need[*]}"
  fi
fi

cargo test --locked --all-targets "$@"

#!/usr/bin/env bash
# Fuzzes keyward's parsers with cargo-fuzz (libFuzzer), one target after the
# other, each for SECONDS seconds:
#
#   scripts/fuzz.sh [SECONDS]      # default 60; CI calls it with 60
#
# Targets (fuzz/fuzz_targets/): key_parser (keys::format::parse*),
# auth_header (api::guard::key_from_headers), form_decoder
# (web::forms::FormFields::parse). Seeds come from fuzz/seeds/<target>/; what
# the fuzzer finds goes to fuzz/corpus/<target>/ and crashing inputs to
# fuzz/artifacts/<target>/ (both git-ignored). Exits non-zero when any target
# crashes. Outside the fuzzing itself the cost is one build of the fuzz
# crate (keyward and its dependencies, instrumented) and, only when
# `cargo fuzz` is missing, a `cargo install cargo-fuzz`.
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${1:-60}"
case "$secs" in
  '' | *[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;;
esac
targets=(key_parser auth_header form_decoder)
# FUZZ_DEV=1 (what CI sets) builds without optimisation: a clean build then
# takes about 6 minutes on 2 cores instead of about 18, for fewer
# executions per second in a short run. AddressSanitizer stays on.
profile=()
if [ "${FUZZ_DEV:-}" = 1 ]; then
  profile=(--dev)
fi

# The stable toolchain (the only one our machines have). cargo-fuzz passes
# nightly-only flags (-Zsanitizer=address, and -Z options to cargo for some
# modes); RUSTC_BOOTSTRAP=1 lets stable rustc and cargo accept them. ASan
# builds and runs this way with the prebuilt standard library, so the
# default sanitizer is kept. No -O/--release: cargo-fuzz already builds
# with optimisations, and without -O it keeps debug assertions and overflow
# checks on, which is what a fuzz build wants.
if command -v rustup >/dev/null 2>&1; then
  export RUSTUP_TOOLCHAIN="${RUSTUP_TOOLCHAIN:-stable}"
fi
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

# One build for all targets (they share every dependency); `run` then only
# checks that it is up to date.
echo "== building fuzz targets: ${targets[*]}"
build_start=$SECONDS
cargo fuzz build "${profile[@]}"
echo "== built in $((SECONDS - build_start))s"

failed=()
for t in "${targets[@]}"; do
  echo "== fuzzing $t for ${secs}s"
  mkdir -p "fuzz/corpus/$t"
  # The first corpus directory receives new inputs; the seeds are only read.
  if cargo fuzz run "${profile[@]}" "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -- \
    -max_total_time="$secs" -print_final_stats=1; then
    echo "== $t: no crash in ${secs}s"
  else
    echo "== $t: CRASH (input saved under fuzz/artifacts/$t/)"
    failed+=("$t")
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "== fuzzing failed: ${failed[*]}"
  exit 1
fi
echo "== fuzzing passed: ${targets[*]}"

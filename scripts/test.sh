#!/usr/bin/env bash
# vnrit full check, as CI runs it: set-up, format, lints, release build, Rust tests
# (unit + integration, against a real Xvfb), the Debian package, bounded fuzzing of the parsers, then the browser end-to-end tests.
# Stops at the first failure.
set -euo pipefail

cd "$(dirname "$0")/.."

started=$SECONDS
step() {
  echo
  echo "==> $* (at $((SECONDS - started)) s)"
}

step setup
scripts/setup.sh
# The fuzz targets build into fuzz/target with flags of their own, so nothing is shared with
# the builds below: that build runs beside them (a compile leaves a core idle now and then,
# e.g. while one large crate or the linker runs) and is waited for before fuzzing.
mkdir -p fuzz/target
FUZZ_BUILD_ONLY=1 scripts/fuzz.sh >fuzz/target/build.log 2>&1 &
fuzz_build=$!
trap 'kill "$fuzz_build" 2>/dev/null || true' EXIT
step "cargo fmt --check"
cargo fmt --check
step "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings
step "cargo build --release (binaries, examples, test binaries)"
# One cargo run for all of them, so its jobs fill both cores; the e2e keyframe test draws with
# examples/timecode, the churn and fault tests read X with examples/xheld.
cargo build --release --bins --examples --tests
step "Debian package (cargo deb, dpkg -i, the unit's command line serves the page)"
scripts/deb-test.sh
step "cargo test --release"
cargo test --release
export FUZZ_SECONDS="${FUZZ_SECONDS:-30}"
step "fuzz (each target ${FUZZ_SECONDS} s)"
if ! wait "$fuzz_build"; then
  tail -n 60 fuzz/target/build.log
  echo "fuzz: building the targets failed (the end of fuzz/target/build.log is above)" >&2
  exit 1
fi
scripts/fuzz.sh
step "e2e (node --test, private network namespace)"
e2e/run.sh
step "all checks passed"

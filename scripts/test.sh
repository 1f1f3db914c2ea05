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
step "cargo fmt --check"
cargo fmt --check
step "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings
step "cargo build --release"
cargo build --release --bins --example timecode # the e2e keyframe test draws with timecode
step "Debian package (cargo deb, dpkg -i, the unit's command line serves the page)"
scripts/deb-test.sh
step "cargo test --release"
cargo test --release
export FUZZ_SECONDS="${FUZZ_SECONDS:-30}"
step "fuzz (each target ${FUZZ_SECONDS} s)"
scripts/fuzz.sh
step "e2e (node --test, private network namespace)"
e2e/run.sh
step "all checks passed"

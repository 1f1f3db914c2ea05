#!/usr/bin/env bash
# vnrit benchmark (issue 2): builds vnrit and examples/timecode in release mode, then runs
# bench/bench.mjs inside a private network namespace (as e2e/run.sh does), so WebRTC traffic
# between vnrit and headless Chromium never leaves the machine. Prints a table of medians and
# writes bench/results.md. Needs root (unshare -n) and `npm ci` done in e2e/.
# Takes about 4 minutes; BENCH_WINDOWS (3) and BENCH_WINDOW_S (10) change the sampling.
set -euo pipefail

cd "$(dirname "$0")/.."

if [[ "${VNRIT_IN_NETNS:-}" != 1 ]]; then
  # Build outside the namespace (cargo may want the registry); only the vnrit crate recompiles.
  cargo build --release --bin vnrit --example timecode
fi
source scripts/netns.sh
enter_private_netns "$0" "$@"


mkdir -p e2e/artifacts
exec node bench/bench.mjs "$@"

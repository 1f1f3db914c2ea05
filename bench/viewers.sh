#!/usr/bin/env bash
# vnrit fan-out benchmark (issue 7): server CPU with 1, 5 and 10 viewers on a moving 1080p30
# screen. Builds vnrit and the examples in release mode, then, inside a private network
# namespace (scripts/netns.sh, as bench/run.sh does), starts Xvfb 1920x1080, the moving scene
# (examples/timecode.rs), `vnrit --framerate 30 --no-audio`, and examples/whep_receivers.rs:
# cheap WHEP viewers that count bytes and frames without decoding. Prints a table of medians
# (vnrit CPU % of one core from /proc/PID/stat, RSS, frames/s and kbit/s per viewer, and the CPU
# ratio to one viewer; target: 10 viewers < 1.3x one) plus the load average before and after.
# Needs root (unshare -n). Takes about 2 minutes; VIEWER_COUNTS (1,5,10), BENCH_WINDOWS (5) and
# BENCH_WINDOW_S (4) change the sampling.
set -euo pipefail

cd "$(dirname "$0")/.."

if [[ "${VNRIT_IN_NETNS:-}" != 1 ]]; then
  # Build outside the namespace (cargo may want the registry); only the vnrit crate recompiles.
  cargo build --release --bin vnrit --example timecode --example whep_receivers
fi
source scripts/netns.sh
enter_private_netns "$0" "$@"

COUNTS="${VIEWER_COUNTS:-1,5,10}"
WINDOWS="${BENCH_WINDOWS:-5}"
WINDOW_S="${BENCH_WINDOW_S:-4}"
source bench/lib.sh
bench_setup viewers
start_xvfb
"$BIN/examples/timecode" --display ":$N" >"$LOG/timecode.log" 2>&1 &
PIDS+=($!)
# shellcheck disable=SC2086 # VNRIT_ARGS holds several flags
start_vnrit --max-viewers 32 ${VNRIT_ARGS:-}

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
echo "vnrit pid $VNRIT on 127.0.0.1:$PORT, Xvfb :$N 1920x1080, moving scene, --framerate 30; load average $LOAD_START"
"$BIN/examples/whep_receivers" --port "$PORT" --token "$TOKEN" --server-pid "$VNRIT" \
  --counts "$COUNTS" --windows "$WINDOWS" --window-s "$WINDOW_S"
echo "load average before: $LOAD_START; after: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) cores)"

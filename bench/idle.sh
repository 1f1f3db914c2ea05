#!/usr/bin/env bash
# vnrit still-desktop benchmark (issue 2): server CPU with 0, 1 and 3 idle viewers on a screen
# that does not move. Builds vnrit and examples/idle_viewers in release mode, then, inside a
# private network namespace (scripts/netns.sh), starts Xvfb 1920x1080 (nothing drawn),
# `vnrit --framerate 30 --no-audio` and examples/idle_viewers.rs: webrtc-rs WHEP viewers that
# only count frames. Viewer counts are measured interleaved over long windows; prints a table of
# medians (vnrit CPU % of one core from /proc/PID/stat, the ratio to one viewer, and per thread
# CPU and context switches per second) plus the load average before and after.
# Needs root (unshare -n). IDLE_COUNTS (0,1,3), IDLE_ROUNDS (3) and IDLE_WINDOW_S (60) change
# the sampling (default: about 10 minutes); extra arguments go to vnrit.
set -euo pipefail

cd "$(dirname "$0")/.."

if [[ "${VNRIT_IN_NETNS:-}" != 1 ]]; then
  # Build outside the namespace (cargo may want the registry); only the vnrit crate recompiles.
  cargo build --release --bin vnrit --example idle_viewers
fi
source scripts/netns.sh
enter_private_netns "$0" "$@"

source bench/lib.sh
bench_setup idle
start_xvfb
start_vnrit "$@"

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
echo "vnrit pid $VNRIT on 127.0.0.1:$PORT, Xvfb :$N 1920x1080, still screen, --framerate 30 $*; load average $LOAD_START"
"$BIN/examples/idle_viewers" --port "$PORT" --token "$TOKEN" --server-pid "$VNRIT" \
  --counts "${IDLE_COUNTS:-0,1,3}" --rounds "${IDLE_ROUNDS:-3}" --window-s "${IDLE_WINDOW_S:-60}"
echo "load average before: $LOAD_START; after: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) cores)"

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

BIN=target/release
COUNTS="${VIEWER_COUNTS:-1,5,10}"
WINDOWS="${BENCH_WINDOWS:-5}"
WINDOW_S="${BENCH_WINDOW_S:-4}"
TOKEN="bench-$RANDOM$RANDOM"

# A display number unlikely to clash with other users of this machine.
N=$((300 + $$ % 500))
while [[ -e /tmp/.X$N-lock ]]; do N=$((N + 1)); done
LOG=$(mktemp -d /tmp/vnrit-viewers.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$LOG"
}
trap cleanup EXIT

Xvfb ":$N" -screen 0 1920x1080x24 -noreset -nolisten tcp >"$LOG/xvfb.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do [[ -e /tmp/.X11-unix/X$N ]] && break; sleep 0.05; done
"$BIN/examples/timecode" --display ":$N" >"$LOG/timecode.log" 2>&1 &
PIDS+=($!)
"$BIN/vnrit" --display ":$N" --bind 127.0.0.1 --port 0 --token "$TOKEN" --framerate 30 \
  --no-audio --max-viewers 32 ${VNRIT_ARGS:-} >"$LOG/vnrit.out" 2>"$LOG/vnrit.err" &
VNRIT=$!
PIDS+=($VNRIT)
PORT=""
for _ in $(seq 200); do
  PORT=$(sed -n 's|^vnrit: serving http://127.0.0.1:\([0-9]*\)/.*|\1|p' "$LOG/vnrit.out" | head -1)
  [[ -n "$PORT" ]] && break
  sleep 0.1
done
if [[ -z "$PORT" ]]; then
  echo "vnrit did not start:" >&2
  cat "$LOG/vnrit.err" >&2
  exit 1
fi

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
echo "vnrit pid $VNRIT on 127.0.0.1:$PORT, Xvfb :$N 1920x1080, moving scene, --framerate 30; load average $LOAD_START"
"$BIN/examples/whep_receivers" --port "$PORT" --token "$TOKEN" --server-pid "$VNRIT" \
  --counts "$COUNTS" --windows "$WINDOWS" --window-s "$WINDOW_S"
echo "load average before: $LOAD_START; after: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) cores)"

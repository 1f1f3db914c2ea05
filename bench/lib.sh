# Shared set-up of the shell benchmarks (bench/idle.sh, bench/viewers.sh), sourced inside the
# private network namespace: a free display number, a log folder and the processes to kill on
# exit, Xvfb 1920x1080, and vnrit on a free port of 127.0.0.1.

BIN=target/release
TOKEN="bench-$RANDOM$RANDOM"
PIDS=()

# bench_setup NAME: picks a display number N unlikely to clash with other users of this machine,
# makes the log folder LOG, and kills everything in PIDS (and removes LOG) on exit.
bench_setup() {
  N=$((300 + $$ % 500))
  while [[ -e /tmp/.X$N-lock ]]; do N=$((N + 1)); done
  LOG=$(mktemp -d "/tmp/vnrit-$1.XXXXXX")
  trap bench_cleanup EXIT
}

bench_cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$LOG"
}

# start_xvfb: Xvfb :N at 1920x1080, waiting (up to 5 s) for its socket.
start_xvfb() {
  Xvfb ":$N" -screen 0 1920x1080x24 -noreset -nolisten tcp >"$LOG/xvfb.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do [[ -e /tmp/.X11-unix/X$N ]] && break; sleep 0.05; done
}

# start_vnrit ARGS...: vnrit on display :N at 30 fps without audio, plus ARGS; sets VNRIT (its
# pid) and PORT once it serves (up to 20 s), or exits with its error output.
start_vnrit() {
  "$BIN/vnrit" --display ":$N" --bind 127.0.0.1 --port 0 --token "$TOKEN" --framerate 30 \
    --no-audio "$@" >"$LOG/vnrit.out" 2>"$LOG/vnrit.err" &
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
}

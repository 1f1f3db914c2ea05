#!/usr/bin/env bash
# vnrit e2e entry point: runs `node --test e2e/` inside a private network namespace (lo up,
# a veth pair whose ends both stay inside, a default route), so WebRTC host candidates and
# test traffic never leave the machine. Run from anywhere; needs root (unshare -n) and
# `npm ci` done in e2e/ (scripts/setup.sh does it).
set -euo pipefail

cd "$(dirname "$0")/.."

source scripts/netns.sh
enter_private_netns "$0" "$@"


mkdir -p e2e/artifacts
# One test file at a time: each starts its own Xvfb, vnrit and Chromium on 2 shared cores.
# The test files are named explicitly: a bare `e2e/` would make node walk e2e/.whip/ (the
# unpacked simple-whip-server, with a dangling absolute symlink) and abort.
if (($# == 0)); then
  set -- e2e/*.test.mjs
fi
exec node --test --test-concurrency=1 --test-timeout=180000 "$@"

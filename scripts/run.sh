#!/usr/bin/env bash
# vnrit from a fresh checkout: set-up, release build, then run the server with the given
# arguments, e.g. `scripts/run.sh --display :0 --token secret`.
set -euo pipefail

cd "$(dirname "$0")/.."
scripts/setup.sh >&2
cargo build --release >&2
exec target/release/vnrit "$@"

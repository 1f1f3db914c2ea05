#!/usr/bin/env bash
# vnrit fuzzing: runs each cargo-fuzz target in fuzz/ for a bounded time and fails on any
# crash (a panic, an abort, or a libFuzzer timeout/out-of-memory).
#
#   scripts/fuzz.sh                 # every target, 60 s each
#   FUZZ_SECONDS=600 scripts/fuzz.sh signal
#   FUZZ_BUILD_ONLY=1 scripts/fuzz.sh   # only build the targets (scripts/test.sh, in the background)
#
# Needs only stable Rust: cargo-fuzz is installed if missing, and RUSTC_BOOTSTRAP=1 lets the
# stable compiler accept the sanitizer-coverage flags cargo-fuzz passes. Targets are built
# without AddressSanitizer (the parsers are safe Rust), with 16 codegen units instead of
# cargo-fuzz's 1 and at opt-level 1 (fuzz/Cargo.toml), which keeps the first build of the
# WebRTC stack short; debug assertions stay on, so overflows panic. The committed seeds in fuzz/corpus/<target>/ are read;
# what libFuzzer discovers goes to fuzz/target/corpus/<target>/, and crashing inputs to
# fuzz/artifacts/<target>/.
set -euo pipefail

cd "$(dirname "$0")/../fuzz"

SECONDS_EACH=${FUZZ_SECONDS:-60}
TARGETS=("$@")
if ((${#TARGETS[@]} == 0)); then
  TARGETS=(signal input_wire auth)
fi
BUILD=(--sanitizer none --debug-assertions --codegen-units 16)
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

echo "fuzz: building ${TARGETS[*]}"
for target in "${TARGETS[@]}"; do
  cargo fuzz build "${BUILD[@]}" "$target"
done

if [[ ${FUZZ_BUILD_ONLY:-} == 1 ]]; then
  echo "fuzz: built ${TARGETS[*]} (FUZZ_BUILD_ONLY=1: not run)"
  exit 0
fi

failed=()
for target in "${TARGETS[@]}"; do
  work="target/corpus/$target"
  mkdir -p "$work" "artifacts/$target"
  log="target/fuzz-$target.log"
  echo "fuzz: $target for ${SECONDS_EACH} s"
  # -timeout: one input taking over 10 s is a hang; -rss_limit_mb bounds memory.
  if cargo fuzz run "${BUILD[@]}" "$target" "$work" "corpus/$target" -- \
    -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 >"$log" 2>&1; then
    grep -E '^stat::(number_of_executed_units|average_exec_per_sec)|^Done ' "$log" | sed "s/^/fuzz: $target: /"
  else
    echo "fuzz: $target FAILED; the end of its log ($PWD/$log):"
    tail -n 40 "$log"
    failed+=("$target")
  fi
done

if ((${#failed[@]})); then
  echo "fuzz: crashes in ${failed[*]}; inputs are in $PWD/artifacts/<target>/." >&2
  echo "fuzz: reproduce with: RUSTC_BOOTSTRAP=1 cargo fuzz run ${BUILD[*]} TARGET artifacts/TARGET/crash-..." >&2
  exit 1
fi
echo "fuzz: no crash in ${TARGETS[*]}"

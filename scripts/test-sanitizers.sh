#!/usr/bin/env bash
# Reliability stage of the test command (docs/reliability.md): the whole C++ suite under
# AddressSanitizer + UndefinedBehaviorSanitizer, the runtime/stream suites under
# ThreadSanitizer, and bounded libFuzzer runs of every harness.
# FUZZ_SECONDS (default 60) bounds each fuzz run.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzz_seconds="${FUZZ_SECONDS:-60}"

echo "== ASan + UBSan: every C++ test"
cmake --preset asan > /dev/null
cmake --build --preset asan
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --preset asan -j2 --timeout 900

echo "== TSan: runtime, streams, executors, concurrent operator runs"
cmake --preset tsan > /dev/null
cmake --build --preset tsan
TSAN_OPTIONS=halt_on_error=1 ctest --preset tsan -j2 --timeout 900 -L concurrency

echo "== libFuzzer: ${fuzz_seconds} s per harness"
cmake --preset fuzz > /dev/null
cmake --build --preset fuzz
for f in build/fuzz/tests/fuzz/fuzz_*; do
  case "$f" in *replay*) continue ;; esac
  [ -x "$f" ] || continue
  name=$(basename "$f"); corpus="tests/fuzz/corpus/${name#fuzz_}"
  work=$(mktemp -d)
  cp -r "$corpus"/. "$work"/ 2>/dev/null || true
  log="$work.log"
  if ! "$f" -max_total_time="$fuzz_seconds" -print_final_stats=1 "$work" > "$log" 2>&1; then
    tail -n 60 "$log"; echo "fuzz harness $name found a crash"; exit 1
  fi
  echo "$name: $(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}') executions in ${fuzz_seconds} s, no finding"
  rm -rf "$work" "$log"
done

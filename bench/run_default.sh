#!/usr/bin/env bash
# The benchmark's main job: the short default grid (well under a minute), printed as a table.
#   bench/run_default.sh            short grid, table on stdout
#   bench/run_default.sh --full     the issue's full grid (several minutes); also writes
#                                   docs/benchmarks.md, bench/results.csv and docs/roofline.png
# Uses build/release (the release preset) or $ADDLORA_BENCH_BUILD; builds the benchmark there
# if it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${ADDLORA_BENCH_BUILD:-build/release}
if [ ! -x "$build/bench/addlora_bench" ]; then
  [ -f "$build/build.ninja" ] || cmake --preset release > /dev/null
  cmake --build "$build" --target addlora_bench
fi
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ "${1:-}" = "--full" ]; then
  "$build/bench/addlora_bench" --full --min-time 0.2 --commit "$commit" \
      --md docs/benchmarks.md --csv bench/results.csv
  py=/usr/bin/python3                 # Debian's python3-matplotlib is installed for this one
  [ -x "$py" ] || py=python3
  "$py" bench/plot_roofline.py bench/results.csv docs/roofline.png || true
  if [ -f bench/notes.md ]; then cat bench/notes.md >> docs/benchmarks.md; fi
  cmake --build "$build" --target features_bench > /dev/null
  "$build/bench/features_bench" >> docs/benchmarks.md
else
  "$build/bench/addlora_bench" --commit "$commit"
fi

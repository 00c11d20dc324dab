#!/usr/bin/env bash
# The main job on a fresh Debian 12 machine: install dependencies, build, run the CANN-style
# example against an installed prefix, then the benchmark's short default grid.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh

cmake --preset release -DADDLORA_BUILD_TESTS=OFF
cmake --build --preset release

prefix="$PWD/build/prefix"
rm -rf "$prefix" build/example
cmake --install build/release --prefix "$prefix" > /dev/null
cmake -S examples/add_lora_sample -B build/example -G Ninja -DASCEND_CUSTOM_PATH="$prefix" > /dev/null
cmake --build build/example
./build/example/add_lora_sample

if [ -x bench/run_default.sh ]; then bash bench/run_default.sh; fi

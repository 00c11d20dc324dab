#!/usr/bin/env bash
# Runs every test on a fresh Debian 12 machine: installs dependencies, builds (Release),
# runs the C++ suites (CTest), installs to a prefix and builds + runs the CANN-style clients
# and a find_package consumer against it, builds, installs and tests the Python package, and
# finally the reliability stage (ASan+UBSan, TSan, libFuzzer; scripts/test-sanitizers.sh).
# ADDLORA_SKIP_SANITIZERS=1 skips that last stage (for a quick local run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh --python

cmake --preset release -DADDLORA_BUILD_TESTS=ON
cmake --build --preset release
ctest --preset release -j2 --timeout 600

# A CANN client built only against the install prefix (docs/contract.md §4 layout).
prefix="$PWD/build/prefix"
rm -rf "$prefix" build/example build/cpp_consumer
cmake --install build/release --prefix "$prefix" > /dev/null
cmake -S examples/add_lora_sample -B build/example -G Ninja -DASCEND_CUSTOM_PATH="$prefix" > /dev/null
cmake --build build/example
./build/example/add_lora_sample
./build/example/add_lora_vendor_sweep 300
# The same prefix the vendor way: the plain g++ line of CANN's examples (no build system),
# run after sourcing the prefix's set_env.sh (which puts lib64 on LD_LIBRARY_PATH).
(
  source "$prefix/set_env.sh"
  rm -rf build/cann_client && mkdir -p build/cann_client
  g++ examples/cann_client/add_lora_objects.cpp -I "$ASCEND_HOME_PATH/include" -I "$ASCEND_HOME_PATH/include/aclnn" \
      -L "$ASCEND_HOME_PATH/lib64" -lopapi_math -lascendcl -lnnopbase -o build/cann_client/add_lora_objects
  ./build/cann_client/add_lora_objects
)
# The library's own C++ API through find_package(addlora).
cmake -S examples/cpp_consumer -B build/cpp_consumer -G Ninja -DCMAKE_PREFIX_PATH="$prefix" > /dev/null
cmake --build build/cpp_consumer
./build/cpp_consumer/cpp_consumer

bash scripts/python-test.sh

if [ "${ADDLORA_SKIP_SANITIZERS:-0}" != 1 ]; then
  bash scripts/test-sanitizers.sh
fi

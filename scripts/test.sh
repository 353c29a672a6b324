#!/usr/bin/env bash
# Runs every test on a fresh machine: installs the build dependencies, builds the release
# configuration (CUDA sources included when nvcc exists) and runs its CTest suite, fuzzes the
# safetensors parser for a short while (GSQ_FUZZ_SECONDS, default 20; 0 skips it), then builds
# and runs the suite again under AddressSanitizer + UndefinedBehaviorSanitizer.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
jobs=$(nproc)

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DGSQ_SANITIZE=OFF -DGSQ_USE_DNNL=ON -DGSQ_CUDA=ON
cmake --build build -j"$jobs"
ctest --test-dir build --output-on-failure

fuzz_seconds="${GSQ_FUZZ_SECONDS:-20}"
case "$fuzz_seconds" in
    ''|*[!0-9]*) echo "test.sh: GSQ_FUZZ_SECONDS must be a whole number, got '$fuzz_seconds'" >&2; exit 2 ;;
esac
if [ "$fuzz_seconds" -gt 0 ]; then
    bash scripts/fuzz.sh "$fuzz_seconds"
fi

cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DGSQ_SANITIZE=ON -DGSQ_USE_DNNL=ON -DGSQ_CUDA=OFF -DGSQ_BENCH=OFF
cmake --build build-asan -j"$jobs"
ASAN_OPTIONS=detect_leaks=1 ctest --test-dir build-asan --output-on-failure

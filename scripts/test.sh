#!/usr/bin/env bash
# Runs every test on a fresh machine: installs the build dependencies, builds the release
# configuration (CUDA sources included when nvcc exists) and runs its CTest suite, says which
# engine instruction sets and GPU tests ran and which were skipped, cross-builds for aarch64
# (scripts/cross-aarch64.sh), fuzzes the parsers for a short while (GSQ_FUZZ_SECONDS per
# harness, default 20; 0 skips it), then builds and runs the suite again under
# AddressSanitizer + UndefinedBehaviorSanitizer.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
jobs=$(nproc)

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DGSQ_SANITIZE=OFF -DGSQ_USE_DNNL=ON -DGSQ_CUDA=ON
cmake --build build -j"$jobs"
ctest --test-dir build --output-on-failure | tee build/ctest.log

# what_ran LABEL PATTERN: the test names matching PATTERN (a sed regex with one group) that
# passed, then those CTest skipped, from the release suite's log
what_ran() {
    local ran skipped
    ran=$(sed -n "s/.*Test *#[0-9]*: $2 .*Passed.*/\\1/p" build/ctest.log | sort -u | tr '\n' ' ')
    skipped=$(sed -n "s/.*Test *#[0-9]*: $2 .*Skipped.*/\\1/p" build/ctest.log | sort -u | tr '\n' ' ')
    echo "test.sh: $1: exercised: ${ran:-none}; skipped here: ${skipped:-none}"
}
what_ran "engine instruction sets" 'test_backend_ops:\([a-z0-9-]*\)'
what_ran "GPU tests" '\(test_cuda[a-z_]*\|test_comm_nccl\)'

# The library, the program and the tests cross-built for aarch64 (and run under qemu-user there).
bash scripts/cross-aarch64.sh

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

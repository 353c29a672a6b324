#!/usr/bin/env bash
# Installs the Debian packages gpusq needs to build and test (run as root on a fresh machine).
# Required: a C compiler with OpenMP, CMake, OpenBLAS (OpenMP build) and cJSON; clang with its
# runtime for the libFuzzer run in scripts/test.sh.
# Optional (benchmarks only, GSQ_BENCH_DEPS=0 skips them): oneDNN and BLIS, compared against
# OpenBLAS in bench/gemm_libs.c.
set -euo pipefail
packages=(build-essential cmake pkg-config libopenblas-dev libopenblas0-openmp libcjson-dev clang libclang-rt-14-dev)
if [ "${GPUSQ_BENCH_DEPS:-1}" = 1 ]; then
    packages+=(libdnnl-dev libblis-dev)
fi
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    sudo_cmd=""
    [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
echo "install-deps: all packages present (${packages[*]})"

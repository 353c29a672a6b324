#!/usr/bin/env bash
# Installs the Debian packages gpusq needs to build and test (run as root, or with sudo present).
# Required: a C compiler with OpenMP, CMake, oneDNN (the fp32 GEMM) and OpenBLAS (its fallback,
# and the benchmarks' baseline), cJSON, libjpeg-turbo and libpng, protobuf-c and its compiler
# protoc-c (ONNX export); clang with its runtime and its OpenMP (libomp-dev) for the libFuzzer
# build in scripts/test.sh; python3-venv for the test that checks ONNX exports with ONNX Runtime
# (it installs onnx and onnxruntime from PyPI into the build tree, and skips without PyPI); Open MPI
# (libopenmpi-dev, openmpi-bin: data-parallel training under mpirun, docs/DISTRIBUTED.md; gpusq
# builds without it and then trains in one process). Optional (GSQ_BENCH_DEPS=0 skips
# it): BLIS, compared in bench/gemm_libs.c.
set -euo pipefail
packages=(build-essential cmake pkg-config libdnnl-dev libopenblas-dev libopenblas0-openmp libcjson-dev
          libjpeg62-turbo-dev libpng-dev libprotobuf-c-dev protobuf-c-compiler clang libclang-rt-14-dev libomp-dev
          python3-venv libopenmpi-dev openmpi-bin)
if [ "${GSQ_BENCH_DEPS:-1}" = 1 ]; then
    packages+=(libblis-dev)
fi
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    sudo_cmd=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || { echo "install-deps: run as root to install: ${missing[*]}" >&2; exit 1; }
        sudo_cmd=(sudo)
    fi
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
echo "install-deps: all packages present (${packages[*]})"

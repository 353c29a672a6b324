#!/usr/bin/env bash
# Builds, on this machine (nvcc, no GPU), what a lent GPU machine needs to check the CUDA engine:
# build-gpu/bundle/ with the gpusq program, the GPU tests and the GEMM benchmark (for sm_80 and
# sm_90; -march left generic, as the GPU machine's CPU is unknown), and lib/ with the CUDA backend
# library and the shared libraries they load that such a machine lacks (oneDNN, cJSON,
# protobuf-c, libjpeg, libpng, OpenMP; CUDA's own come from its toolkit). Then, with the device tool:
#   run(command="bash scripts/gpu-check.sh", carry=["build-gpu/bundle"])
# (docs/CUDA.md, "On a GPU machine"). The bundle stays under the carry limit of 64 MiB.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v nvcc >/dev/null || { echo "gpu-bundle: no nvcc here: the bundle needs the CUDA compiler" >&2; exit 1; }
cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DGSQ_SANITIZE=OFF -DGSQ_NATIVE=OFF -DGSQ_CUDA=ON \
      -DGSQ_USE_DNNL=ON -DGSQ_BENCH=ON -DCMAKE_CUDA_ARCHITECTURES="80;90" >/dev/null
programs=(gpusq_cli test_sparse_mma_layout test_cuda test_cuda_attention test_cuda_engine test_engine bench_cuda_gemm)
cmake --build build-gpu -j"$(nproc)" --target gpusq_cuda "${programs[@]}"
bundle=build-gpu/bundle
rm -rf "$bundle"
mkdir -p "$bundle/lib"
cp build-gpu/gpusq build-gpu/bench/bench_cuda_gemm "$bundle/"
for t in "${programs[@]:1:5}"; do cp "build-gpu/tests/$t" "$bundle/"; done
# the libraries they load, but not the C runtime, the compiler's own, or CUDA's
cp build-gpu/libgpusq_cuda.so "$bundle/lib/" # the engine opens it; two tests link it
for f in "$bundle"/gpusq "$bundle"/lib/libgpusq_cuda.so "$bundle"/test_*; do ldd "$f"; done |
    awk '$3 ~ /^\// {print $3}' | sort -u |
    grep -vE '/(libc|libm|libdl|libpthread|librt|ld-linux[^/]*|libstdc\+\+|libgcc_s|libcuda|libcudart|libcublas[^/]*|libOpenCL)\.so' |
    while read -r lib; do cp -L "$lib" "$bundle/lib/"; done
du -sh "$bundle" | awk '{print "gpu-bundle: " $2 " is " $1 " (carry it: build-gpu/bundle)"}'
ls "$bundle" "$bundle/lib"

#!/usr/bin/env bash
# On a lent GPU machine, with build-gpu/bundle carried there (scripts/gpu-bundle.sh made it):
# the checks docs/CUDA.md lists, in order of what they prove — the mma.sp layout emulation, the
# GEMM kernels against the CPU (layout probe first), attention (ViT and Swin's biased windows) bit
# for bit against the CPU, whole models (ViT and Swin, every mode) against the CPU engine, the
# GEMM benchmark, and the engine's speed on deit_small and swin_tiny (INT8 2:4, dense INT8 and
# the FP16 baseline). Each step has a time limit; logs go to $OUT (or build-gpu/check) and a
# table of results is printed last. Exit status: 1 if any check failed.
set -uo pipefail
cd "$(dirname "$0")/.."
bundle="${GSQ_GPU_BUNDLE:-build-gpu/bundle}"
logs="${OUT:-build-gpu/check}"
mkdir -p "$logs"
[ -x "$bundle/gpusq" ] || { echo "gpu-check: no $bundle/gpusq: run scripts/gpu-bundle.sh and carry build-gpu/bundle"; exit 1; }
# CUDA's runtime and cuBLASLt from the machine's toolkit or its Python wheels
cuda_dirs=$(ls -d /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib 2>/dev/null | tr '\n' ':')
py_dirs=$(python3 -c 'import glob, site, os; print(":".join(sorted({os.path.dirname(p) for d in site.getsitepackages() for p in glob.glob(d + "/nvidia/*/lib/lib*.so*")})))' 2>/dev/null || true)
export LD_LIBRARY_PATH="$PWD/$bundle/lib:${cuda_dirs}${py_dirs}:${LD_LIBRARY_PATH:-}"
export GSQ_CUDA_BACKEND="$PWD/$bundle/lib/libgpusq_cuda.so"
nvidia-smi -L 2>&1 | tee "$logs/device.txt"
results=()
step() { # step NAME LIMIT_S COMMAND...
    local name="$1" limit="$2" rc
    shift 2
    local t0=$SECONDS
    timeout "$limit" "$@" >"$logs/$name.log" 2>&1
    rc=$?
    local verdict=PASS
    [ "$rc" -eq 0 ] || verdict="FAIL (exit $rc)"
    [ "$rc" -eq 77 ] && verdict=SKIPPED
    [ "$rc" -eq 124 ] && verdict="TIMEOUT (${limit}s)"
    results+=("$(printf '%-28s %-16s %4ds  %s' "$name" "$verdict" $((SECONDS - t0)) "$(tail -n 1 "$logs/$name.log" | cut -c1-90)")")
}
step mma_layout 60 "$bundle/test_sparse_mma_layout"
step cuda_gemm 120 "$bundle/test_cuda"
step cuda_attention 120 "$bundle/test_cuda_attention"
step cuda_engine 180 "$bundle/test_cuda_engine"
step engine_cpu 120 "$bundle/test_engine"
step bench_cuda_gemm 120 "$bundle/bench_cuda_gemm"
step bench_deit_small 150 "$bundle/gpusq" bench --config deit_small_patch16_224 --attention --device cuda --batch 64
step bench_swin_tiny 150 "$bundle/gpusq" bench --config swin_tiny_patch4_window7_224 --attention --device cuda --batch 64
failed=0
echo
printf '%-28s %-16s %5s  %s\n' check result time "last line of its log ($logs)"
for r in "${results[@]}"; do
    echo "$r"
    case "$r" in *FAIL*|*TIMEOUT*) failed=1 ;; esac
done
exit "$failed"

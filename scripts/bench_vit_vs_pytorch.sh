#!/usr/bin/env bash
# Times a ViT/DeiT forward pass, forward + backward, and a whole training step (forward, loss,
# backward, AdamW) per image with gpusq and with PyTorch on the CPU, same models, batch and thread
# count, in one run, and prints the ratios (PyTorch time / gpusq time: above 1 means gpusq is
# faster) and the training images per second.
# Usage: scripts/bench_vit_vs_pytorch.sh [THREADS] [BATCH] [ITERS] [MODEL...]
#   defaults: all cores, 8, 5, deit_tiny_patch16_224 deit_small_patch16_224 (gpusq_demo also works)
# Needs the build (cmake --build build --target bench_vit) and the venv (scripts/setup-venv.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
threads="${1:-$(nproc)}"
batch="${2:-8}"
iters="${3:-5}"
shift $(( $# < 3 ? $# : 3 ))
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(deit_tiny_patch16_224 deit_small_patch16_224)
model_args=()
for m in "${models[@]}"; do model_args+=(--model "$m"); done
[ -x build/bench/bench_vit ] || cmake --build build --target bench_vit
[ -x .venv/bin/python ] || { echo "bench: run scripts/setup-venv.sh first" >&2; exit 1; }

echo "# $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, $(date -u +%Y-%m-%d), threads=$threads batch=$batch iters=$iters"
ours=$(OMP_NUM_THREADS="$threads" build/bench/bench_vit --threads "$threads" --batch "$batch" --iters "$iters" "${model_args[@]}")
theirs=$(.venv/bin/python bench/bench_pytorch.py --threads "$threads" --batch "$batch" --iters "$iters" --models "${models[@]}")
echo "$ours"
echo "$theirs"
python3 - "$ours" "$theirs" <<'PY'
import re, sys
def parse(text, impl):
    rows = {}
    for line in text.splitlines():
        if line.startswith(impl + " "):
            f = dict(re.findall(r"(\w+)=([\d.]+)", line))
            rows[line.split()[1]] = tuple(float(f[k]) for k in ("forward_ms_per_image", "fwd_bwd_ms_per_image",
                                                                "train_step_ms_per_image"))
    return rows
ours, theirs = parse(sys.argv[1], "gpusq"), parse(sys.argv[2], "pytorch")
print("\n| model | fwd ms/img gpusq / PyTorch | speed-up | fwd+bwd ms/img gpusq / PyTorch | speed-up "
      "| training img/s gpusq / PyTorch | speed-up |")
print("|---|---|---|---|---|---|---|")
for model in ours:
    if model in theirs:
        (gf, gb, gt), (pf, pb, pt) = ours[model], theirs[model]
        print(f"| {model} | {gf:.3g} / {pf:.3g} | {pf / gf:.2f}x | {gb:.3g} / {pb:.3g} | {pb / gb:.2f}x "
              f"| {1e3 / gt:.0f} / {1e3 / pt:.0f} | {pt / gt:.2f}x |")
PY

#!/usr/bin/env bash
# Times a ViT/DeiT forward pass and training step (forward + backward) per image with gpusq and
# with PyTorch on the CPU, same models, batch and thread count, in one run, and prints the ratios
# (PyTorch time / gpusq time: above 1 means gpusq is faster).
# Usage: scripts/bench_vit_vs_pytorch.sh [THREADS] [BATCH] [ITERS]   (defaults: all cores, 8, 5)
# Needs the build (cmake --build build --target bench_vit) and the venv (scripts/setup-venv.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
threads="${1:-$(nproc)}"
batch="${2:-8}"
iters="${3:-5}"
[ -x build/bench/bench_vit ] || cmake --build build --target bench_vit
[ -x .venv/bin/python ] || { echo "bench: run scripts/setup-venv.sh first" >&2; exit 1; }

echo "# $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, $(date -u +%Y-%m-%d), threads=$threads batch=$batch iters=$iters"
ours=$(OMP_NUM_THREADS="$threads" build/bench/bench_vit --threads "$threads" --batch "$batch" --iters "$iters")
theirs=$(.venv/bin/python bench/bench_pytorch.py --threads "$threads" --batch "$batch" --iters "$iters")
echo "$ours"
echo "$theirs"
python3 - "$ours" "$theirs" <<'PY'
import re, sys
def parse(text, impl):
    rows = {}
    for line in text.splitlines():
        if line.startswith(impl + " "):
            f = dict(re.findall(r"(\w+)=([\d.]+)", line))
            rows[line.split()[1]] = (float(f["forward_ms_per_image"]), float(f["fwd_bwd_ms_per_image"]))
    return rows
ours, theirs = parse(sys.argv[1], "gpusq"), parse(sys.argv[2], "pytorch")
print("\n| model | gpusq fwd ms/img | PyTorch fwd ms/img | fwd speed-up | gpusq fwd+bwd ms/img | PyTorch fwd+bwd ms/img | fwd+bwd speed-up |")
print("|---|---|---|---|---|---|---|")
for model in ours:
    if model in theirs:
        (gf, gs), (pf, ps) = ours[model], theirs[model]
        print(f"| {model} | {gf:.1f} | {pf:.1f} | {pf / gf:.2f}x | {gs:.1f} | {ps:.1f} | {ps / gs:.2f}x |")
PY

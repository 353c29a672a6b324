#!/usr/bin/env bash
# gpusq's COCO metrics on a trained detector's detections checked against pycocotools (CTest's
# coco_trained_check): writes the synthetic detection set in the COCO layout (gpusq dataset), trains
# a tiny detector on it for a few seconds, evaluates it with --results, and hands the validation
# annotations, the results JSON and the twelve numbers gpusq printed (two decimals of a percent:
# within 5e-5) to scripts/coco_check.py as one case. Exits 77 (skipped) when python3's venv or PyPI
# is not available.
# Usage: coco_trained_check.sh GPUSQ WORK
set -euo pipefail
gpusq="$1" work="$2"
here="$(cd "$(dirname "$0")" && pwd)"
mkdir -p "$work"
source "$here/python_env.sh"
python_env coco_trained_check "$work/venv" "numpy, pycocotools" numpy pycocotools
rm -rf "$work/coco" "$work/cases"
mkdir -p "$work/cases"
"$gpusq" dataset --data synthetic-detect --out "$work/coco" --train-size 512 --val-size 64 --resolution 32
"$gpusq" train --model gpusq_demo --data "coco:$work/coco" --queries 10 --decoder-layers 1 --epochs 4 --batch 32 \
    --lr 1e-3 --threads 2 --out "$work/detector.safetensors" > "$work/train.txt"
"$gpusq" eval "$work/detector.safetensors" --data "coco:$work/coco" --results "$work/cases/case0.dt.json" \
    > "$work/eval.txt"
cp "$work/coco/annotations/instances_val2017.json" "$work/cases/case0.gt.json"
# "  AP          12.34" → "AP 0.1234"; "  AP_medium       -  (...)" → "AP_medium -1"
awk '$1 ~ /^A[PR]/ && NF >= 2 { print $1, ($2 == "-" ? -1 : $2 / 100) }' "$work/eval.txt" > "$work/cases/case0.txt"
cat "$work/eval.txt"
"$work/venv/bin/python" "$here/../scripts/coco_check.py" "$work/cases"

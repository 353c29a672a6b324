#!/usr/bin/env bash
# gpusq's COCO box metrics checked against pycocotools (CTest's coco_check): makes a Python environment
# with numpy and pycocotools from PyPI under WORK (kept for the next run), writes random ground truth and
# detections as COCO JSON with the twelve numbers gpusq computes from them (test_coco_eval --write) and
# runs scripts/coco_check.py, which recomputes them with pycocotools' COCOeval. Exits 77 (skipped) when
# python3's venv or PyPI is not available.
# Usage: coco_check.sh TEST_COCO_EVAL WORK
set -euo pipefail
writer="$1" work="$2"
here="$(cd "$(dirname "$0")" && pwd)"
venv="$work/venv"
mkdir -p "$work"
source "$here/python_env.sh"
python_env coco_check "$venv" "numpy, pycocotools" numpy pycocotools
cases="$work/cases"
rm -rf "$cases"
mkdir -p "$cases"
"$writer" --write "$cases"
"$venv/bin/python" "$here/../scripts/coco_check.py" "$cases"

#!/usr/bin/env bash
# gpusq's mIoU, per-class IoU and pixel accuracy checked against numpy (CTest's miou_check): makes a
# Python environment with numpy from PyPI under WORK (kept for the next run), writes random
# prediction and label maps with the metrics gpusq computes from them (test_segment_metric --write)
# and runs scripts/miou_check.py, which recomputes them as mmsegmentation does. Exits 77 (skipped)
# when python3's venv or PyPI is not available.
# Usage: miou_check.sh TEST_SEGMENT_METRIC WORK
set -euo pipefail
writer="$1" work="$2"
here="$(cd "$(dirname "$0")" && pwd)"
venv="$work/venv"
mkdir -p "$work"
source "$here/python_env.sh"
python_env miou_check "$venv" numpy numpy
cases="$work/cases"
rm -rf "$cases"
mkdir -p "$cases"
"$writer" --write "$cases"
"$venv/bin/python" "$here/../scripts/miou_check.py" "$cases"

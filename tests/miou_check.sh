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
if ! "$venv/bin/python" -c "import numpy" 2>/dev/null; then
    python="${GSQ_PYTHON:-python3}"
    command -v "$python" >/dev/null || { echo "miou_check: skipped (no $python)"; exit 77; }
    rm -rf "$venv"
    "$python" -m venv "$venv" >/dev/null 2>&1 ||
        { echo "miou_check: skipped ($python -m venv failed: python3-venv missing)"; exit 77; }
    if ! timeout 900 "$venv/bin/pip" install -q --disable-pip-version-check numpy; then
        rm -rf "$venv"
        echo "miou_check: skipped (numpy could not be installed from PyPI)"
        exit 77
    fi
fi
cases="$work/cases"
rm -rf "$cases"
mkdir -p "$cases"
"$writer" --write "$cases"
"$venv/bin/python" "$here/../scripts/miou_check.py" "$cases"

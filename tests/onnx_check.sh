#!/usr/bin/env bash
# The ONNX exports checked by their real consumers (CTest's onnx_check): makes a Python
# environment with onnx, onnxruntime and numpy from PyPI under WORK (kept for the next run), writes
# the cases with export_bundle, exports a compressed file through the gpusq program too, and runs
# tests/onnx_check.py on them. Exits 77 (skipped) when python3's venv or PyPI is not available.
# Usage: onnx_check.sh EXPORT_BUNDLE GPUSQ WORK
set -euo pipefail
bundle="$1" gpusq="$2" work="$3"
here="$(cd "$(dirname "$0")" && pwd)"
venv="$work/venv"
mkdir -p "$work"
if ! "$venv/bin/python" -c "import onnx, onnxruntime, numpy" 2>/dev/null; then
    python="${GSQ_PYTHON:-python3}"
    command -v "$python" >/dev/null || { echo "onnx_check: skipped (no $python)"; exit 77; }
    rm -rf "$venv"
    "$python" -m venv "$venv" >/dev/null 2>&1 || { echo "onnx_check: skipped ($python -m venv failed: python3-venv missing)"; exit 77; }
    if ! timeout 900 "$venv/bin/pip" install -q --disable-pip-version-check "onnx>=1.16" "onnxruntime>=1.18" numpy; then
        rm -rf "$venv"
        echo "onnx_check: skipped (onnx, onnxruntime and numpy could not be installed from PyPI)"
        exit 77
    fi
fi
cases="$work/cases"
rm -rf "$cases"
mkdir -p "$cases"
"$bundle" "$cases"
# the program's path: the compressed file export_bundle saved, exported for ONNX Runtime
"$gpusq" export "$cases/demo_int8.gsq.safetensors" --onnx "$cases/cli_demo_int8_ort.onnx" --target ort
cp "$cases/demo_int8_ort.io.safetensors" "$cases/cli_demo_int8_ort.io.safetensors"
"$venv/bin/python" "$here/onnx_check.py" "$cases"

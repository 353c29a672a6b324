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
source "$here/python_env.sh"
python_env onnx_check "$venv" "onnx, onnxruntime, numpy" "onnx>=1.16" "onnxruntime>=1.18" numpy
cases="$work/cases"
rm -rf "$cases"
mkdir -p "$cases"
"$bundle" "$cases"
# the program's path: the compressed file export_bundle saved, exported for ONNX Runtime
"$gpusq" export "$cases/demo_int8.gsq.safetensors" --onnx "$cases/cli_demo_int8_ort.onnx" --target ort
cp "$cases/demo_int8_ort.io.safetensors" "$cases/cli_demo_int8_ort.io.safetensors"
"$venv/bin/python" "$here/onnx_check.py" "$cases"

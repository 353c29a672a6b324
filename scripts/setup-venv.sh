#!/usr/bin/env bash
# Creates the Python virtual environment <repo>/.venv for the Python side of gpusq: the scripts
# that write the timm parity fixtures (scripts/make_fixtures.py), the PyTorch benchmark peer
# (bench/bench_pytorch.py), the CPU peers (scripts/bench_peers.py) and ONNX export checks. It
# installs torch (used on the CPU only), timm, safetensors, numpy, onnx, onnxscript (torch.onnx's
# exporter), onnxruntime, openvino and nncf (OpenVINO's post-training quantization) from PyPI.
# The C library and its tests never need it.
#
#   bash scripts/setup-venv.sh                            # create or complete .venv, print versions
#   GPUSQ_PYTHON=python3.12 bash scripts/setup-venv.sh    # pick the interpreter
#
# Idempotent: when .venv already imports everything, it only prints the versions (seconds).
# PyPI has no CPU-only torch wheel for Linux x86_64, so there the wheel pulls the CUDA libraries
# (about 5 GB installed); torch still runs on the CPU without a GPU.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$repo/.venv"
python="${GPUSQ_PYTHON:-python3}"
packages=(torch torchvision "pillow>=13" timm safetensors numpy onnx onnxscript onnxruntime openvino nncf)

report() {
    "$venv/bin/python" - <<'PY'
import sys
import numpy, onnx, onnxruntime, onnxscript, safetensors, timm, torch
import openvino, nncf
print(f"setup-venv: python {sys.version.split()[0]} at {sys.executable}")
for m in (torch, timm, safetensors, numpy, onnx, onnxscript, onnxruntime, openvino, nncf):
    print(f"setup-venv:   {m.__name__:12s} {m.__version__}")
print(f"setup-venv:   torch threads {torch.get_num_threads()}, "
      f"cuda available {torch.cuda.is_available()}")
PY
}

if [ ! -x "$venv/bin/python" ]; then
    echo "setup-venv: creating $venv with $("$python" --version 2>&1)"
    "$python" -m venv "$venv"
fi

if ! report 2>/dev/null; then
    echo "setup-venv: installing ${packages[*]} (torch is large; this takes a few minutes)"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/python" -m pip install --quiet "${packages[@]}"
    report
fi

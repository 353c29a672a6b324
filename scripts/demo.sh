#!/usr/bin/env bash
# The built-in demo, the program's main job: installs dependencies, builds gpusq, and compresses
# the committed dense demo teacher (assets/demo_teacher.safetensors, trained on the built-in
# synthetic shapes by the command in docs/DATA.md) to 2:4 INT8 and paired 4:8 INT4 models —
# stage 1 (prune + distil) and stage 2 (QAT + distil) for each — and prints the report
# (docs/QUANTIZATION.md), then exports the 2:4 INT8 model to ONNX for TensorRT (docs/EXPORT.md).
# Outputs go to demo-out/ (a rerun reuses finished stages; DEMO_FRESH=1 redoes them). About 4
# minutes with 2 threads.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DGSQ_SANITIZE=OFF > /dev/null
cmake --build build -j"$(nproc)" --target gpusq_cli
echo "== the dense demo teacher =="
./build/gpusq info assets/demo_teacher.safetensors
echo
echo "== compress it: dense → 2:4 INT8 and 4:8 INT4 =="
fresh=()
[ "${DEMO_FRESH:-0}" = 1 ] && fresh=(--fresh)
./build/gpusq compress --teacher assets/demo_teacher.safetensors --out-dir demo-out \
    --train-size 20000 --val-size 10000 --batch 32 --no-augment --feature-blocks 2 --attention int8 \
    "${fresh[@]}"
echo
echo "== deploy it: the 2:4 INT8 model as ONNX for TensorRT (trtexec --int8 --sparsity=enable) =="
./build/gpusq export demo-out/int8.gsq.safetensors --onnx demo-out/int8.onnx --target tensorrt

#!/usr/bin/env bash
# The segmentation demo (docs/SEGMENTATION.md): builds gpusq, trains a tiny segmenter on the
# built-in synthetic scenes, compresses it to 2:4 INT8 and paired 4:8 INT4 (both stages, with
# per-pixel distillation), runs the INT8 model on the CPU engine against its fake-quantized twin
# pixel by pixel, writes the synthetic set in the ADE20K layout and predicts overlays for a few of
# its images. Outputs go to demo-seg-out/. About 2 minutes with 2 threads.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DGSQ_SANITIZE=OFF > /dev/null
cmake --build build -j"$(nproc)" --target gpusq_cli
out=demo-seg-out
mkdir -p "$out"
echo "== train a segmenter: gpusq_demo's backbone + a linear decode head, on synthetic-segment =="
./build/gpusq train --model gpusq_demo --data synthetic-segment --train-size 4000 --val-size 500 --epochs 8 \
    --batch 32 --lr 1e-3 --out "$out/segmenter.safetensors"
echo
echo "== compress it: dense → 2:4 INT8 and 4:8 INT4 =="
./build/gpusq compress --teacher "$out/segmenter.safetensors" --data synthetic-segment --train-size 4000 \
    --val-size 500 --out-dir "$out" --fresh
echo
echo "== the 2:4 INT8 model on the CPU engine, checked against its fake-quantized twin =="
./build/gpusq run "$out/int8.gsq.safetensors" --data synthetic-segment --val-size 500 --check
echo
echo "== the synthetic set in the ADE20K layout, and overlays of three of its images =="
./build/gpusq dataset --out "$out/ade20k" --train-size 200 --val-size 20 --resolution 96
./build/gpusq predict "$out/int8.gsq.safetensors" "$out"/ade20k/images/validation/00000[0-2].jpg \
    --out-dir "$out/overlays"

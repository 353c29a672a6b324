#!/usr/bin/env bash
# The built-in demo: installs dependencies, builds gpusq, describes the committed dense demo
# teacher (assets/demo_teacher.safetensors, trained on the built-in synthetic shapes by the command
# in docs/DATA.md) and evaluates it on the synthetic validation split. (The compression stages
# join as they land.)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DGSQ_SANITIZE=OFF > /dev/null
cmake --build build -j"$(nproc)" --target gpusq_cli
echo "== the dense demo teacher =="
./build/gpusq info assets/demo_teacher.safetensors
echo
echo "== its accuracy on the synthetic validation split (2000 images) =="
./build/gpusq eval assets/demo_teacher.safetensors --data synthetic
echo
echo "== a timm ViT state_dict (tests/fixtures/vit_token.model.safetensors) =="
./build/gpusq info tests/fixtures/vit_token.model.safetensors --heads 4
echo
echo "== a distilled DeiT, architecture inferred from its tensors =="
./build/gpusq info tests/fixtures/deit_distilled.model.safetensors --heads 3
echo
echo "== timm's deit_small_patch16_224 =="
./build/gpusq info --config deit_small_patch16_224

"""Writes tests/fixtures/transforms/transforms.safetensors: what timm/torchvision/Pillow make of a
few small images, for tests/test_transforms.c to compare src/data/transforms.c against.

Run inside the project venv (needs timm, torchvision, pillow, numpy, safetensors):
    bash scripts/setup-venv.sh && .venv/bin/python scripts/make_transform_fixtures.py

Tensors (all U8 unless said; names are self-describing, the C test parses them):
  src/NAME                        (H, W, 3) a source image, RGB interleaved
  eval/NAME/SIZE/PCT              (SIZE, SIZE, 3) timm transforms_imagenet_eval(SIZE,
                                  crop_pct=PCT/1000, interpolation='bicubic') before ToTensor:
                                  Resize(floor(SIZE / crop_pct)) with PIL BICUBIC, CenterCrop
  rrc/NAME/TOP_LEFT_H_W/SIZE      (SIZE, SIZE, 3) torchvision resized_crop(img, TOP, LEFT, H, W,
                                  SIZE, BICUBIC): what RandomResizedCrop does once it drew a box
  norm/NAME/SIZE/PCT              F32 (3, SIZE, SIZE) the full timm eval transform, normalised
                                  with the ImageNet mean and std
Pillow 13 changed the pass order of resize (vertical first when the height loses more than twice
as many pixels as the width, python-pillow/Pillow#9549); some cases here exercise each order, and
Pillow <= 12 gives different bytes for the vertical-first ones.
Everything is seeded; re-running with the same library versions gives the same bytes.
"""

import argparse
import os

import numpy as np
import PIL
import timm
import torch
import torchvision
from PIL import Image
from safetensors.numpy import save_file
from timm.data.transforms_factory import transforms_imagenet_eval
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(REPO, "tests", "fixtures", "transforms", "transforms.safetensors")
SIZE_BUDGET = 300 * 1024


def make_images():
    """Small sources covering noise, smooth content, edges, extreme aspect ratios, upscaling."""
    rng = np.random.default_rng(20240607)
    imgs = {}
    imgs["noise37x23"] = rng.integers(0, 256, size=(23, 37, 3), dtype=np.uint8)

    y, x = np.mgrid[0:48, 0:64].astype(np.float64)
    grad = np.stack([x * 4.0, y * 5.3, 128 + 120 * np.sin(x / 5.0) * np.cos(y / 7.0)], axis=-1)
    imgs["grad64x48"] = np.clip(np.round(grad), 0, 255).astype(np.uint8)

    # sharp edges and saturated values: discs and bars, the case where bicubic overshoots clamp
    y, x = np.mgrid[0:71, 0:97].astype(np.float64)
    scene = np.zeros((71, 97, 3))
    scene[..., 0] = 255.0 * (((x - 30) ** 2 + (y - 35) ** 2) < 20 ** 2)
    scene[..., 1] = 255.0 * ((x // 6) % 2)
    scene[..., 2] = 255.0 * (((x - 70) ** 2 + (y - 20) ** 2) < 15 ** 2) + 40 * ((y // 9) % 2)
    scene += rng.normal(0, 12, size=scene.shape)
    imgs["scene97x71"] = np.clip(np.round(scene), 0, 255).astype(np.uint8)

    t = np.arange(300, dtype=np.float64)[:, None, None]
    tall = 128 + 100 * np.sin(t / 11.0) + rng.normal(0, 20, size=(300, 5, 3))
    imgs["tall5x300"] = np.clip(np.round(tall), 0, 255).astype(np.uint8)
    imgs["wide300x5"] = np.ascontiguousarray(
        rng.integers(0, 256, size=(5, 300, 3), dtype=np.uint8))

    # tall enough that the eval resize shrinks the height by more than twice the width's loss:
    # Pillow 13 then runs the vertical pass first
    tall = 128 + 90 * np.sin(np.arange(150)[:, None, None] / 4.0) * np.cos(
        np.arange(40)[None, :, None] / 3.0) + rng.normal(0, 25, size=(150, 40, 3))
    imgs["tall40x150"] = np.clip(np.round(tall), 0, 255).astype(np.uint8)

    imgs["small7x9"] = rng.integers(0, 256, size=(9, 7, 3), dtype=np.uint8)
    imgs["px1x1"] = np.array([[[200, 17, 99]]], dtype=np.uint8)
    return imgs


def timm_eval(arr, size, pct, normalize):
    tf = transforms_imagenet_eval(img_size=size, crop_pct=pct, interpolation="bicubic",
                                  use_prefetcher=not normalize)
    out = tf(Image.fromarray(arr, "RGB"))
    if normalize:
        return out.numpy().astype(np.float32)          # (3, S, S) float32
    return out.numpy().transpose(1, 2, 0).copy()       # uint8 (3, S, S) -> (S, S, 3)


def pil_eval(arr, size, pct):
    """The same pipeline written out with PIL alone (a check on our reading of timm)."""
    img = Image.fromarray(arr, "RGB")
    w, h = img.size
    s = int(np.floor(size / pct))
    if w <= h:
        nw, nh = s, int(s * h / w)
    else:
        nw, nh = int(s * w / h), s
    if (nw, nh) != (w, h):
        img = img.resize((nw, nh), Image.BICUBIC)
    return np.asarray(TF.center_crop(img, [size, size]))


EVAL_CASES = [(size, pct) for size in (16, 24, 32) for pct in (0.875, 1.0)]
EXTRA_EVAL = [("grad64x48", 24, 0.9), ("scene97x71", 16, 0.95), ("noise37x23", 16, 0.8),
              ("scene97x71", 32, 1.15), ("tall5x300", 16, 1.3)]
RRC_CASES = [
    ("grad64x48", (0, 0, 48, 64), 24), ("grad64x48", (5, 7, 20, 30), 16),
    ("grad64x48", (10, 3, 30, 22), 32), ("grad64x48", (40, 60, 5, 4), 24),
    ("grad64x48", (2, 2, 24, 24), 24), ("noise37x23", (1, 2, 20, 35), 16),
    ("noise37x23", (0, 0, 23, 37), 32), ("scene97x71", (3, 11, 61, 80), 24),
    ("scene97x71", (30, 40, 9, 12), 32), ("tall5x300", (146, 0, 7, 5), 16),
    ("wide300x5", (0, 147, 5, 7), 16), ("px1x1", (0, 0, 1, 1), 16),
    # boxes whose height shrinks by more than twice what the width does (vertical pass first)
    ("grad64x48", (0, 20, 48, 6), 16), ("scene97x71", (0, 10, 71, 20), 24),
    ("scene97x71", (5, 30, 66, 60), 16), ("tall40x150", (10, 3, 130, 30), 24),
]
NORM_CASES = [("scene97x71", 16, 0.875), ("grad64x48", 24, 1.0)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=OUT)
    args = ap.parse_args()

    imgs = make_images()
    tensors = {}
    for name, arr in imgs.items():
        tensors[f"src/{name}"] = arr
    cases = [(n, s, p) for n in imgs for s, p in EVAL_CASES] + EXTRA_EVAL
    for name, size, pct in cases:
        ref = timm_eval(imgs[name], size, pct, normalize=False)
        assert ref.shape == (size, size, 3) and ref.dtype == np.uint8, ref.shape
        assert np.array_equal(ref, pil_eval(imgs[name], size, pct)), (name, size, pct)
        tensors[f"eval/{name}/{size}/{round(pct * 1000)}"] = ref
    for name, (top, left, h, w), size in RRC_CASES:
        out = TF.resized_crop(Image.fromarray(imgs[name], "RGB"), top, left, h, w, [size, size],
                              InterpolationMode.BICUBIC)
        tensors[f"rrc/{name}/{top}_{left}_{h}_{w}/{size}"] = np.asarray(out).copy()
    for name, size, pct in NORM_CASES:
        tensors[f"norm/{name}/{size}/{round(pct * 1000)}"] = timm_eval(imgs[name], size, pct,
                                                                      normalize=True)

    # one metadata entry: safetensors writes __metadata__ from a hash map, so several keys
    # would come out in a different order on every run
    meta = {"made_with": f"pillow {PIL.__version__}, torchvision {torchvision.__version__}, "
                         f"timm {timm.__version__}, torch {torch.__version__}, "
                         f"numpy {np.__version__}"}
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, args.out, metadata=meta)
    size = os.path.getsize(args.out)
    print(f"wrote {args.out}: {len(tensors)} tensors, {size} bytes")
    assert size < SIZE_BUDGET, f"fixtures are {size} bytes, over the {SIZE_BUDGET} budget"


if __name__ == "__main__":
    main()

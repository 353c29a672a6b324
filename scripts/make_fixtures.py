"""Writes the timm parity fixtures (ViT/DeiT and Swin) in tests/fixtures/ that the C tests compare gpusq against.

Run inside the project venv:
    bash scripts/setup-venv.sh && .venv/bin/python scripts/make_fixtures.py
For each configuration NAME it writes:
  NAME.model.safetensors     the timm model's state_dict() as F32, timm names, no metadata
                             (what a user's model.safetensors looks like);
  NAME.expected.safetensors  input.images (B,C,H,W), input.targets (B,) as float32 class indices,
                             output.logits (B,K), output.loss (1,), grad.<name> for every parameter;
                             __metadata__ holds the configuration as strings.
Parameters are perturbed away from timm's init (non-zero biases and tokens, LayerNorm weights not 1,
weights ~ randn / sqrt(fan_in)) so every gradient path is exercised, rounded to float32, and the
forward/backward reference is computed in float64. Everything is seeded, single-threaded and
byte-for-byte reproducible for a given torch/timm/safetensors version.
"""

import argparse
import dataclasses
import hashlib
import json
import os
import struct
import sys

import numpy as np
import safetensors
import timm
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from timm.models.deit import VisionTransformerDistilled
from timm.models.swin_transformer import SwinTransformer
from timm.models.vision_transformer import VisionTransformer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZE_BUDGET = 5 * 1024 * 1024
LN_EPS = 1e-6  # timm's ViT default: partial(nn.LayerNorm, eps=1e-6)


@dataclasses.dataclass
class Config:
    name: str
    description: str
    img_size: int
    patch_size: int
    in_chans: int
    embed_dim: int
    depth: int
    num_heads: int
    mlp_ratio: float
    qkv_bias: bool
    class_token: bool
    pool: str
    num_classes: int
    batch: int
    label_smoothing: float
    distilled: bool = False
    seed: int = 0

    @property
    def mlp_hidden(self):
        return int(self.embed_dim * self.mlp_ratio)


CONFIGS = [
    Config("vit_token", "ViT, class token, token pooling, qkv bias, no label smoothing",
           img_size=32, patch_size=4, in_chans=3, embed_dim=64, depth=2, num_heads=4, mlp_ratio=4,
           qkv_bias=True, class_token=True, pool="token", num_classes=10, batch=4,
           label_smoothing=0.0, seed=1),
    Config("deit_distilled", "DeiT distilled (cls + dist tokens, head and head_dist averaged in "
           "eval), label smoothing 0.1",
           img_size=32, patch_size=8, in_chans=3, embed_dim=48, depth=2, num_heads=3, mlp_ratio=4,
           qkv_bias=True, class_token=True, pool="token", num_classes=7, batch=3,
           label_smoothing=0.1, distilled=True, seed=2),
    Config("vit_avg_nobias", "ViT, class token, average pooling (fc_norm, norm is Identity), "
           "no qkv bias, label smoothing 0.1",
           img_size=24, patch_size=6, in_chans=3, embed_dim=32, depth=3, num_heads=2, mlp_ratio=3,
           qkv_bias=False, class_token=True, pool="avg", num_classes=5, batch=2,
           label_smoothing=0.1, seed=3),
    Config("vit_nocls_gray", "ViT without class token (pos_embed covers patches only), average "
           "pooling, 1 input channel",
           img_size=28, patch_size=7, in_chans=1, embed_dim=40, depth=2, num_heads=5, mlp_ratio=2,
           qkv_bias=True, class_token=False, pool="avg", num_classes=6, batch=3,
           label_smoothing=0.0, seed=4),
    Config("vit_remainder_b1", "ViT, image 30 with patch 4 (the 2-pixel right/bottom remainder "
           "is dropped by the strided conv, 7x7 grid), batch 1, one block, label smoothing 0.2",
           img_size=30, patch_size=4, in_chans=3, embed_dim=24, depth=1, num_heads=2, mlp_ratio=4,
           qkv_bias=True, class_token=True, pool="token", num_classes=3, batch=1,
           label_smoothing=0.2, seed=5),
]


@dataclasses.dataclass
class SwinConfig:
    name: str
    description: str
    img_size: int
    patch_size: int
    in_chans: int
    embed_dim: int
    depths: tuple
    num_heads: tuple
    window: int
    mlp_ratio: float
    num_classes: int
    batch: int
    label_smoothing: float
    seed: int = 0

    @property
    def dims(self):
        return [self.embed_dim * 2 ** i for i in range(len(self.depths))]


SWIN_CONFIGS = [
    SwinConfig("swin_pad", "Swin, grid 14 with window 4: padded to 16 and shifted by 2; stage 1 grid 7 "
               "padded to 8 and shifted; stage 2 grid 4 = window, no shift; label smoothing 0.1",
               img_size=28, patch_size=2, in_chans=3, embed_dim=16, depths=(2, 2, 1), num_heads=(2, 2, 4),
               window=4, mlp_ratio=4, num_classes=5, batch=2, label_smoothing=0.1, seed=11),
    SwinConfig("swin_noshift", "Swin, window 8 at grid 8 (one window, no shift) then grid 4 (window "
               "clamped to 4, no shift)",
               img_size=32, patch_size=4, in_chans=3, embed_dim=24, depths=(2, 2), num_heads=(3, 6),
               window=8, mlp_ratio=2, num_classes=4, batch=2, label_smoothing=0.0, seed=12),
    SwinConfig("swin_odd_b1", "Swin, batch 1, odd widths (15, 30; head_dim 5), grid 7 with window 3 "
               "(padded to 9, shift 1), patch merging of an odd grid (7 -> 4, padded), mlp_ratio 2, 1 channel",
               img_size=21, patch_size=3, in_chans=1, embed_dim=15, depths=(2, 2), num_heads=(3, 6),
               window=3, mlp_ratio=2, num_classes=3, batch=1, label_smoothing=0.0, seed=13),
]


def build_swin(cfg):
    return SwinTransformer(img_size=cfg.img_size, patch_size=cfg.patch_size, in_chans=cfg.in_chans,
                           num_classes=cfg.num_classes, embed_dim=cfg.embed_dim, depths=cfg.depths,
                           num_heads=cfg.num_heads, window_size=cfg.window, mlp_ratio=cfg.mlp_ratio,
                           qkv_bias=True, drop_rate=0.0, proj_drop_rate=0.0, attn_drop_rate=0.0,
                           drop_path_rate=0.0)


def build(cfg):
    kwargs = dict(img_size=cfg.img_size, patch_size=cfg.patch_size, in_chans=cfg.in_chans,
                  num_classes=cfg.num_classes, embed_dim=cfg.embed_dim, depth=cfg.depth,
                  num_heads=cfg.num_heads, mlp_ratio=cfg.mlp_ratio, qkv_bias=cfg.qkv_bias,
                  global_pool=cfg.pool, drop_rate=0.0, pos_drop_rate=0.0, proj_drop_rate=0.0,
                  attn_drop_rate=0.0, drop_path_rate=0.0)
    if cfg.distilled:
        return VisionTransformerDistilled(**kwargs)
    return VisionTransformer(class_token=cfg.class_token, **kwargs)


def expected_names(cfg):
    """The state_dict keys a plain timm model of this kind has, in timm's order."""
    names = []
    if cfg.class_token:
        names.append("cls_token")
    names.append("pos_embed")
    if cfg.distilled:  # registered after VisionTransformer.__init__ made pos_embed
        names.append("dist_token")
    names += ["patch_embed.proj.weight", "patch_embed.proj.bias"]
    for i in range(cfg.depth):
        b = f"blocks.{i}."
        names += [b + "norm1.weight", b + "norm1.bias", b + "attn.qkv.weight"]
        if cfg.qkv_bias:
            names.append(b + "attn.qkv.bias")
        names += [b + "attn.proj.weight", b + "attn.proj.bias", b + "norm2.weight",
                  b + "norm2.bias", b + "mlp.fc1.weight", b + "mlp.fc1.bias",
                  b + "mlp.fc2.weight", b + "mlp.fc2.bias"]
    if cfg.pool == "avg":
        names += ["fc_norm.weight", "fc_norm.bias"]
    else:
        names += ["norm.weight", "norm.bias"]
    names += ["head.weight", "head.bias"]
    if cfg.distilled:
        names += ["head_dist.weight", "head_dist.bias"]
    return names


def expected_shapes(cfg):
    d, p, c = cfg.embed_dim, cfg.patch_size, cfg.in_chans
    grid = cfg.img_size // p
    prefix = int(cfg.class_token) + int(cfg.distilled)
    shapes = {"cls_token": (1, 1, d), "dist_token": (1, 1, d),
              "pos_embed": (1, prefix + grid * grid, d),
              "patch_embed.proj.weight": (d, c, p, p), "patch_embed.proj.bias": (d,),
              "head.weight": (cfg.num_classes, d), "head.bias": (cfg.num_classes,),
              "head_dist.weight": (cfg.num_classes, d), "head_dist.bias": (cfg.num_classes,)}
    for i in range(cfg.depth):
        b = f"blocks.{i}."
        shapes.update({b + "attn.qkv.weight": (3 * d, d), b + "attn.qkv.bias": (3 * d,),
                       b + "attn.proj.weight": (d, d), b + "attn.proj.bias": (d,),
                       b + "mlp.fc1.weight": (cfg.mlp_hidden, d),
                       b + "mlp.fc1.bias": (cfg.mlp_hidden,),
                       b + "mlp.fc2.weight": (d, cfg.mlp_hidden), b + "mlp.fc2.bias": (d,)})
    norms = ["norm", "fc_norm"] + [f"blocks.{i}.norm{j}" for i in range(cfg.depth) for j in (1, 2)]
    for n in norms:
        shapes[n + ".weight"] = (d,)
        shapes[n + ".bias"] = (d,)
    return shapes


def check_layout(cfg, model):
    sd = model.state_dict()
    params = dict(model.named_parameters())
    want = expected_names(cfg)
    if list(sd.keys()) != list(params.keys()):
        raise SystemExit(f"{cfg.name}: state_dict has buffers or differs from named_parameters: "
                         f"{sorted(set(sd) ^ set(params))}")
    if set(sd.keys()) != set(want):
        raise SystemExit(f"{cfg.name}: unexpected state_dict keys; extra "
                         f"{sorted(set(sd) - set(want))}, missing {sorted(set(want) - set(sd))}")
    if list(sd.keys()) != want:
        print(f"  note: {cfg.name} state_dict order differs from the expected order")
    shapes = expected_shapes(cfg)
    for n, t in sd.items():
        if tuple(t.shape) != shapes[n]:
            raise SystemExit(f"{cfg.name}: {n} has shape {tuple(t.shape)}, expected {shapes[n]}")
    norms = [m for m in model.modules() if isinstance(m, torch.nn.LayerNorm)]
    if any(m.eps != LN_EPS for m in norms):
        raise SystemExit(f"{cfg.name}: LayerNorm eps is not {LN_EPS}")
    if cfg.pool == "avg" and not isinstance(model.norm, torch.nn.Identity):
        raise SystemExit(f"{cfg.name}: expected norm = Identity with avg pooling")


@torch.no_grad()
def perturb(model, gen):
    """Moves every parameter away from timm's init, in float32, in named_parameters order."""
    for name, p in model.named_parameters():
        parts = name.split(".")
        leaf = parts[-1]
        is_norm = len(parts) > 1 and "norm" in parts[-2]
        if name in ("cls_token", "dist_token", "pos_embed") or leaf == "relative_position_bias_table":
            v = 0.5 * torch.randn(p.shape, generator=gen)
        elif leaf == "bias":
            v = 0.1 * torch.randn(p.shape, generator=gen)
        elif is_norm and leaf == "weight":
            v = 1.0 + 0.2 * torch.randn(p.shape, generator=gen)
        elif leaf == "weight":
            fan_in = p[0].numel()
            v = torch.randn(p.shape, generator=gen) / fan_in ** 0.5
        else:
            raise SystemExit(f"no perturbation rule for parameter {name}")
        p.copy_(v.to(torch.float32))


def make(cfg, outdir):
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(1000 + cfg.seed)
    swin = isinstance(cfg, SwinConfig)
    model = build_swin(cfg) if swin else build(cfg)
    model.eval()
    if swin:
        if any("relative_position_index" in k or "attn_mask" in k for k in model.state_dict()):
            raise SystemExit(f"{cfg.name}: buffers in the state_dict")
    else:
        check_layout(cfg, model)
    perturb(model, gen)
    state = {k: v.detach().to(torch.float32).contiguous().clone()
             for k, v in model.state_dict().items()}

    images = torch.randn((cfg.batch, cfg.in_chans, cfg.img_size, cfg.img_size), generator=gen,
                         dtype=torch.float32)
    targets = torch.randint(0, cfg.num_classes, (cfg.batch,), generator=gen)

    model.double()
    model.zero_grad(set_to_none=True)
    logits = model(images.double())
    if isinstance(logits, tuple):
        raise SystemExit(f"{cfg.name}: model returned a tuple in eval mode")
    if not swin and cfg.distilled:  # check timm's eval output is the mean of the two heads
        with torch.no_grad():
            feats = model.forward_features(images.double())
            manual = (model.head(feats[:, 0]) + model.head_dist(feats[:, 1])) / 2
            if not torch.allclose(manual, logits, rtol=0, atol=1e-12):
                raise SystemExit(f"{cfg.name}: distilled logits are not (head + head_dist) / 2")
    loss = F.cross_entropy(logits, targets, label_smoothing=cfg.label_smoothing)
    loss.backward()

    expected = {"input.images": images, "input.targets": targets.to(torch.float32),
                "output.logits": logits.detach().to(torch.float32),
                "output.loss": loss.detach().reshape(1).to(torch.float32)}
    for name, p in model.named_parameters():
        if p.grad is None:
            raise SystemExit(f"{cfg.name}: no gradient for {name}")
        if float(p.grad.abs().max()) == 0.0:
            raise SystemExit(f"{cfg.name}: gradient of {name} is all zero")
        expected["grad." + name] = p.grad.detach().to(torch.float32).contiguous()
    expected = {k: v.contiguous() for k, v in expected.items()}

    if swin:
        lists = lambda v: ",".join(str(x) for x in v)
        meta = {"arch": "swin", "img_size": cfg.img_size, "patch_size": cfg.patch_size,
                "in_chans": cfg.in_chans, "num_classes": cfg.num_classes, "window": cfg.window,
                "depths": lists(cfg.depths), "dims": lists(cfg.dims), "num_heads": lists(cfg.num_heads),
                "mlp_hidden": lists(int(d * cfg.mlp_ratio) for d in cfg.dims), "ln_eps": repr(1e-5)}
    else:
        meta = {"img_size": cfg.img_size, "patch_size": cfg.patch_size, "in_chans": cfg.in_chans,
                "num_classes": cfg.num_classes, "embed_dim": cfg.embed_dim, "depth": cfg.depth,
                "num_heads": cfg.num_heads, "mlp_hidden": cfg.mlp_hidden,
                "qkv_bias": int(cfg.qkv_bias), "class_token": int(cfg.class_token),
                "distilled": int(cfg.distilled), "pool": cfg.pool, "ln_eps": repr(LN_EPS)}
    meta.update({"label_smoothing": repr(cfg.label_smoothing), "batch": cfg.batch, "seed": cfg.seed,
                 "timm_version": timm.__version__, "torch_version": torch.__version__,
                 "description": cfg.description})
    meta = {k: str(v) for k, v in meta.items()}

    model_path = os.path.join(outdir, f"{cfg.name}.model.safetensors")
    expected_path = os.path.join(outdir, f"{cfg.name}.expected.safetensors")
    write_atomic(model_path, state, None)
    write_atomic(expected_path, expected, meta)
    nparams = sum(v.numel() for v in state.values())
    return {"name": cfg.name, "keys": list(state.keys()), "nparams": nparams,
            "loss": loss.item(), "logits_absmax": logits.detach().abs().max().item(),
            "files": [model_path, expected_path]}


def write_atomic(path, tensors, metadata):
    tmp = path + ".tmp"
    save_file(tensors, tmp, metadata=metadata)
    if metadata:
        canonicalize_metadata(tmp, metadata)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def canonicalize_metadata(path, metadata):
    """safetensors serializes __metadata__ from a hash map, so its key order changes from run to
    run; rewrite the header in place with the keys in our order (same length, same data)."""
    with open(path, "r+b") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        header["__metadata__"] = dict(metadata)
        text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
        if len(text) > n:
            raise SystemExit(f"{path}: canonical header is longer than the written one")
        f.seek(8)
        f.write(text + b" " * (n - len(text)))
    with safetensors.safe_open(path, "pt") as f:
        if f.metadata() != metadata:
            raise SystemExit(f"{path}: metadata did not survive the header rewrite")


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(REPO, "tests", "fixtures"))
    ap.add_argument("--only", nargs="*", help="configuration names to write (default: all)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    os.makedirs(args.out, exist_ok=True)
    configs = [c for c in CONFIGS + SWIN_CONFIGS if not args.only or c.name in args.only]
    print(f"make_fixtures: torch {torch.__version__}, timm {timm.__version__}, "
          f"safetensors {safetensors.__version__}, numpy {np.__version__}, python "
          f"{sys.version.split()[0]}")
    total = 0
    for cfg in configs:
        r = make(cfg, args.out)
        sizes = [os.path.getsize(f) for f in r["files"]]
        total += sum(sizes)
        print(f"{r['name']}: {len(r['keys'])} tensors, {r['nparams']} parameters, "
              f"loss {r['loss']:.6f}, max|logit| {r['logits_absmax']:.3f}")
        for f, s in zip(r["files"], sizes):
            print(f"  {os.path.relpath(f, REPO)}  {s} bytes  sha256 {sha256(f)[:16]}")
        print("  names: " + " ".join(r["keys"]))
    all_sizes = sum(os.path.getsize(os.path.join(args.out, f)) for f in os.listdir(args.out))
    print(f"make_fixtures: wrote {total} bytes; tests/fixtures holds {all_sizes} bytes "
          f"(budget {SIZE_BUDGET})")
    if all_sizes > SIZE_BUDGET:
        raise SystemExit("make_fixtures: fixtures exceed the 5 MB budget")


if __name__ == "__main__":
    main()

"""PyTorch CPU peer for the gpusq benchmarks: timm ViT/Swin forward, forward+backward and training step.

Run inside the project venv (bash scripts/setup-venv.sh first):
    .venv/bin/python bench/bench_pytorch.py --threads 2
    .venv/bin/python bench/bench_pytorch.py --threads 2 --batch 8 --iters 5 --json

For each model (random init, pretrained=False, nothing downloaded; gpusq_demo is the demo's
32x32 configuration built with timm's VisionTransformer, gpusq_swin_demo the Swin one) it measures
  forward_ms_per_image     eval mode under torch.inference_mode()
  fwd_bwd_ms_per_image     train mode, cross-entropy loss, loss.backward(), no optimizer step
  train_step_ms_per_image  the same plus an AdamW step (weight decay on weights only), as in
                           training; label smoothing 0.1
as the median over --iters timed iterations after --warmup untimed ones, divided by --batch.

Run it on an otherwise idle machine: torch's OpenMP threads spin at every parallel region, and with
one core taken by another process each region can wait a scheduler tick (a 2-thread run on a
2-core VM with one busy core measured 5-10x slower and very noisy). It samples how busy the CPUs
are for a second before starting, warns above 5%, and reports it with any OMP_* variables set.
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time

import timm
import torch
import torch.nn.functional as F

MODELS = ("deit_tiny_patch16_224", "deit_small_patch16_224", "swin_tiny_patch4_window7_224", "gpusq_demo",
          "gpusq_swin_demo")
DEFAULT_MODELS = ("deit_tiny_patch16_224", "deit_small_patch16_224", "gpusq_demo")


def create_model(name):
    if name == "gpusq_demo":  # gpusq's demo configuration (src/models/vit_config.c)
        return timm.models.vision_transformer.VisionTransformer(
            img_size=32, patch_size=4, embed_dim=64, depth=4, num_heads=2, mlp_ratio=4, num_classes=10)
    if name == "gpusq_swin_demo":  # gpusq's Swin demo configuration (src/models/swin_config.c)
        return timm.models.swin_transformer.SwinTransformer(
            img_size=32, patch_size=2, embed_dim=32, depths=(2, 2, 1), num_heads=(1, 2, 4), window_size=4,
            num_classes=10, drop_path_rate=0.0)
    return timm.create_model(name, pretrained=False, drop_path_rate=0.0)  # gpusq has no stochastic depth


def median_ms(fn, warmup, iters):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times), times


def bench_model(name, args):
    torch.manual_seed(0)
    model = create_model(name)
    size = model.patch_embed.img_size[0]  # ViT's and Swin's PatchEmbed alike
    images = torch.randn(args.batch, 3, size, size)
    targets = torch.randint(0, model.num_classes, (args.batch,))

    model.eval()

    def forward():
        with torch.inference_mode():
            model(images)

    fwd_ms, fwd_all = median_ms(forward, args.warmup, args.iters)

    model.train()

    def forward_backward():
        model.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(images), targets)
        loss.backward()

    bwd_ms, bwd_all = median_ms(forward_backward, args.warmup, args.iters)

    decay = [p for n, p in model.named_parameters() if p.ndim > 1 and n not in ("cls_token", "pos_embed")]
    rest = [p for n, p in model.named_parameters() if not (p.ndim > 1 and n not in ("cls_token", "pos_embed"))]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": rest, "weight_decay": 0.0}],
                            lr=1e-3)

    def train_step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(images), targets, label_smoothing=0.1)
        loss.backward()
        opt.step()

    step_ms, _ = median_ms(train_step, args.warmup, args.iters)
    nparams = sum(p.numel() for p in model.parameters())
    return {"peer": "pytorch", "model": name, "batch": args.batch, "threads": args.threads,
            "params": nparams, "forward_ms_per_image": fwd_ms / args.batch,
            "fwd_bwd_ms_per_image": bwd_ms / args.batch,
            "train_step_ms_per_image": step_ms / args.batch,
            "forward_ms_per_batch_all": [round(t, 3) for t in fwd_all],
            "fwd_bwd_ms_per_batch_all": [round(t, 3) for t in bwd_all]}


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_busy_fraction(seconds=1.0):
    """Fraction of all CPU time spent by other processes over a short window (Linux), else None."""
    def sample():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:9]]
        return sum(v), v[3] + v[4]  # total, idle + iowait

    try:
        t0, i0 = sample()
        time.sleep(seconds)
        t1, i1 = sample()
    except (OSError, ValueError):
        return None
    return 1.0 - (i1 - i0) / max(t1 - t0, 1)


def main():
    ap = argparse.ArgumentParser(description="PyTorch CPU peer benchmark for timm DeiT models")
    ap.add_argument("--threads", type=int, default=os.cpu_count(),
                    help="torch threads (default: all cores)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--iters", type=int, default=5, help="timed iterations (median reported)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed warm-up iterations")
    ap.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS), choices=MODELS)
    ap.add_argument("--json", action="store_true", help="print one JSON document instead of lines")
    args = ap.parse_args()
    if args.threads < 1 or args.batch < 1 or args.iters < 1 or args.warmup < 0:
        ap.error("--threads, --batch and --iters must be >= 1, --warmup >= 0")
    busy = cpu_busy_fraction()
    if busy is not None and busy > 0.05:
        print(f"bench_pytorch: warning: other processes use {100 * busy:.0f}% of the CPUs; "
              "timings will be slow and noisy", file=sys.stderr)
    torch.set_num_threads(args.threads)

    results = [bench_model(name, args) for name in args.models]
    env = {"torch": torch.__version__, "timm": timm.__version__, "python": sys.version.split()[0],
           "cpu": cpu_name(), "cores": os.cpu_count(),
           "iters": args.iters, "warmup": args.warmup,
           "cpu_busy_at_start": busy if busy is None else round(busy, 3),
           "omp": {k: v for k, v in sorted(os.environ.items()) if k.startswith(("OMP_", "GOMP_"))}}
    if args.json:
        print(json.dumps({"env": env, "results": results}, indent=2))
        return
    omp = " ".join(f"{k}={v}" for k, v in env["omp"].items()) or "OpenMP defaults"
    busy_text = "?" if busy is None else f"{100 * busy:.0f}%"
    print(f"# torch {env['torch']}, timm {env['timm']}, {env['cores']} cores ({env['cpu']}), "
          f"{omp}, cpu busy at start {busy_text}, median of {args.iters} after {args.warmup} "
          "warm-up")
    for r in results:
        print(f"pytorch {r['model']} batch={r['batch']} threads={r['threads']} "
              f"forward_ms_per_image={r['forward_ms_per_image']:.3f} "
              f"fwd_bwd_ms_per_image={r['fwd_bwd_ms_per_image']:.3f} "
              f"train_step_ms_per_image={r['train_step_ms_per_image']:.3f}")


if __name__ == "__main__":
    main()

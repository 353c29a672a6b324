"""gpusq's ONNX export against ONNX Runtime's own post-training quantization, in ONNX Runtime.

Run inside the project venv after the demo (bash scripts/setup-venv.sh; bash scripts/demo.sh writes
demo-out/int8.gsq.safetensors and int4.gsq.safetensors):
    .venv/bin/python scripts/bench_export.py --threads 2

It runs build/bench/bench_export (bench/bench_export.c) to write, from gpusq: the dense demo
teacher's float export, the demo's QAT-trained compressed models exported with --target ort, the
demo's validation images (10000) and 512 training images, and deit_small_patch16_224 (random
weights) as float and as 2:4 INT8 with quantized attention (--target ort). Then:
  1. accuracy on the demo's validation data: ONNX Runtime on our float export, on ONNX Runtime's
     quantize_static of that float export (QDQ, per-channel int8 weights, uint8 activations,
     MinMax, calibrated on the 512 real training images; ORT's default operator set and the linear
     layers only, as scripts/bench_peers.py quantizes), and on our exports of the QAT-trained
     2:4 INT8 and 4:8 INT4 models; top-1 against the labels;
  2. speed on deit_small: batch-1 latency and batch-32 throughput of ONNX Runtime on our float
     export, on quantize_static of it (random-normal calibration, bench_peers' settings), and on
     our 2:4 INT8 export, same session options and timing rules as scripts/bench_peers.py.
"""
import argparse
import os
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(REPO, "scripts"), os.path.join(REPO, "tests")]
import bench_peers as bp  # noqa: E402  (its ONNX Runtime session, quantize_static settings and timing)
from onnx_check import read_safetensors  # noqa: E402

np, ort = bp.np, bp.ort


def top1(path, x, labels, threads):
    s = bp.ort_session(path, threads)
    pred = np.concatenate([s.run(["logits"], {"images": x[i:i + 500]})[0].argmax(1) for i in range(0, len(x), 500)])
    return float((pred == labels).mean())


def main():
    ap = argparse.ArgumentParser(description="gpusq's QAT-trained ONNX export vs ONNX Runtime's quantize_static")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--demo-dir", default=os.path.join(REPO, "demo-out"), help="scripts/demo.sh's output folder")
    ap.add_argument("--bench-export", default=os.path.join(REPO, "build", "bench", "bench_export"))
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--iters-batch", type=int, default=8)
    ap.add_argument("--min-time", type=float, default=2.0)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--max-load", type=float, default=0.10)
    ap.add_argument("--tries", type=int, default=3)
    ap.add_argument("--quiet-wait", type=float, default=30.0)
    ap.add_argument("--calib-batches", type=int, default=8)
    ap.add_argument("--calib-batch", type=int, default=8)
    args = ap.parse_args()
    meter = bp.LoadMeter()
    with tempfile.TemporaryDirectory(prefix="bench_export_") as tmp:
        subprocess.run([args.bench_export, tmp, args.demo_dir], check=True, stdout=subprocess.DEVNULL)
        p = lambda name: os.path.join(tmp, name)  # noqa: E731
        val, _ = read_safetensors(p("demo_val.safetensors"))
        calib, _ = read_safetensors(p("demo_calib.safetensors"))
        x, labels = val["images"], val["labels"].astype(np.int64)
        pre, _ = bp.preprocess(p("demo_fp32.onnx"), tmp)
        real = [calib["images"][i:i + 64] for i in range(0, len(calib["images"]), 64)]
        rows = [("dense FP32 (gpusq export)", p("demo_fp32.onnx"))]
        for key, (label, ops) in bp.INT8_VARIANTS.items():
            rows.append((f"{label}, dense, 512 real calibration images",
                         bp.quantize_int8(pre, p(f"demo_ptq_{key}.onnx"), bp.Batches(real, "images"), ops)))
        rows += [("gpusq 2:4 INT8 QAT (export --target ort)", p("demo_int8_ort.onnx")),
                 ("gpusq 4:8 INT4 QAT (export --target ort)", p("demo_int4_ort.onnx"))]
        print(f"## demo validation data ({len(x)} images), ONNX Runtime {ort.__version__}, {args.threads} threads\n")
        print("| model in ONNX Runtime | top-1 |\n|---|---|")
        for label, path in rows:
            print(f"| {label} | {100 * top1(path, x, labels, args.threads):.2f}% |", flush=True)

        pre, _ = bp.preprocess(p("deit_small_fp32.onnx"), tmp)
        g = np.random.default_rng(0)
        x1 = g.standard_normal((1, 3, 224, 224), dtype=np.float32)
        x32 = g.standard_normal((bp.BATCH_THROUGHPUT, 3, 224, 224), dtype=np.float32)
        rows = [("ONNX Runtime FP32 (gpusq export)", p("deit_small_fp32.onnx"))]
        for key, (label, ops) in bp.INT8_VARIANTS.items():
            reader = bp.RandomBatches(224, args.calib_batches, args.calib_batch, name="images")
            rows.append((label, bp.quantize_int8(pre, p(f"deit_small_ptq_{key}.onnx"), reader, ops)))
        rows.append(("gpusq 2:4 INT8 (export --target ort)", p("deit_small_int8_ort.onnx")))
        print(f"\n## deit_small_patch16_224 speed in ONNX Runtime {ort.__version__}, {args.threads} threads\n")
        print("| model | batch-1 latency | batch-32 throughput |\n|---|---|---|")
        for label, path in rows:
            s = bp.ort_session(path, args.threads)
            r = bp.bench_runtime(lambda a: s.run(["logits"], {"images": a}), x1, x32, args, meter)
            print(f"| {label} | {r['batch1_latency_ms']:.1f} ms | {r['batch32_img_per_s']:.1f} img/s |", flush=True)
            del s


if __name__ == "__main__":
    main()

"""Peer baselines for gpusq's CPU inference engine: PyTorch FP32, ONNX Runtime FP32, ONNX Runtime
INT8 (static QDQ quantization) and OpenVINO (FP32, bf16 and NNCF INT8) on the same ViT or Swin models,
thread count and inputs.

Run inside the project venv (bash scripts/setup-venv.sh first); nothing here is needed to build or
test gpusq:
    .venv/bin/python scripts/bench_peers.py --threads 2
    .venv/bin/python scripts/bench_peers.py --threads 2 --models gpusq_demo --iters 100 --out peers.json

For each model (timm, random init, pretrained=False, nothing downloaded; gpusq_demo and
gpusq_swin_demo are the demos' 32x32 configurations built with timm's classes: bench/bench_pytorch.py's
create_model) it
  1. builds the dense model in eval mode and exports it to ONNX (opset 17, dynamic batch axis);
  2. quantizes that model to INT8 with onnxruntime.quantization.quantize_static in QDQ format
     (per-channel int8 weights, uint8 activations, no reduce_range: the docstring of quantize_static
     recommends this for x86 CPUs with VNNI), after quant_pre_process, calibrated (MinMax) on
     random-normal batches; twice by default (--int8): with ORT's default operator set, which also
     quantizes LayerNorm, Softmax, Add, Mul and Erf, and with the linear layers only;
  3. converts the same model with openvino.convert_model (example input of the model's shape,
     dynamic batch axis) and, for the INT8 row, quantizes that with nncf.quantize
     (model_type=TRANSFORMER, default preset and mode) calibrated on the same random-normal images
     as ORT's calibration, fed one image at a time (NNCF's advice for transformers);
  4. times batch-1 latency (median ms) and batch-32 throughput (32 / median batch time) for
     PyTorch FP32 (torch.inference_mode), ORT FP32 and each ORT INT8 model (CPUExecutionProvider,
     ORT_ENABLE_ALL, sequential execution, intra-op threads = --threads, inter-op 1) and each
     OpenVINO model (CPU plugin, INFERENCE_NUM_THREADS = --threads, NUM_STREAMS 1, PERFORMANCE_HINT
     LATENCY, one synchronous infer request with zero-copy inputs; INFERENCE_PRECISION_HINT f32 for
     the FP32 row, bf16 for the bf16 row, the plugin's default for the INT8 row; the precision the
     plugin actually ran its FullyConnected/MatMul layers in, read from the compiled model's runtime
     graph, is recorded and goes into the row's label when it differs from the request);
  5. prints how far the outputs are from the FP32 ones (information only: random weights and
     random inputs say little about accuracy on real data);
  6. prints one Markdown table per model and, with --out, writes every number as JSON.

Each timing runs at least --iters (batch 1) or --iters-batch (batch 32) iterations and at least
--min-time seconds, after --warmup untimed ones. It also measures the share of the CPUs used by
other processes during each timing (/proc/stat minus this process's own CPU time) and flags rows
measured while that share exceeded --max-load (10%), after waiting for a quiet moment and
measuring again up to --tries times: on a shared 2-core machine such rows are not results.
"""

import argparse
import contextlib
import datetime
import json
import logging
import os
import platform
import resource
import statistics
import sys
import tempfile
import time

MODELS = ("deit_small_patch16_224", "deit_base_patch16_224", "swin_tiny_patch4_window7_224", "gpusq_demo",
          "gpusq_swin_demo")
DEFAULT_MODELS = ("deit_small_patch16_224", "gpusq_demo")
OPSET = 17
BATCH_THROUGHPUT = 32


def import_or_die():
    """Import the third-party packages, or say which are missing and how to get them."""
    missing = []
    mods = {}
    for name in ("numpy", "torch", "timm", "onnx", "onnxscript", "onnxruntime", "openvino", "nncf"):
        try:
            mods[name] = __import__(name)
        except ImportError as e:
            missing.append(f"{name} ({e})")
    if not missing:
        try:
            import onnxruntime.quantization  # noqa: F401
        except ImportError as e:
            missing.append(f"onnxruntime.quantization ({e})")
    if missing:
        sys.exit(f"bench_peers: {sys.executable} lacks: {', '.join(missing)}\n"
                 "bench_peers: run `bash scripts/setup-venv.sh` and start this script with .venv/bin/python")
    return mods


M = import_or_die()
np, torch, timm, onnx, ort = M["numpy"], M["torch"], M["timm"], M["onnx"], M["onnxruntime"]
ov, nncf = M["openvino"], M["nncf"]
from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod,  # noqa: E402
                                      QuantFormat, QuantType, quantize_static)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench"))
from bench_pytorch import create_model  # noqa: E402  (timm models, and gpusq's demo configurations)


# ---------------------------------------------------------------- machine and load

def cpu_info():
    name, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_int8", "amx_bf16")
    return name, [f for f in wanted if f in flags]


class LoadMeter:
    """Share of all CPU time used by other processes between start() and stop() (Linux only)."""

    def __init__(self):
        self.tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    def _sample(self):
        try:
            with open("/proc/stat") as f:
                v = [int(x) for x in f.readline().split()[1:9]]
        except (OSError, ValueError):
            return None
        ru = resource.getrusage(resource.RUSAGE_SELF)
        return sum(v), v[3] + v[4], (ru.ru_utime + ru.ru_stime) * self.tick

    def start(self):
        self.s0 = self._sample()

    def stop(self):
        s1 = self._sample()
        if self.s0 is None or s1 is None:
            return None
        total = s1[0] - self.s0[0]
        busy = total - (s1[1] - self.s0[1])
        own = s1[2] - self.s0[2]
        return max(0.0, min(1.0, (busy - own) / total)) if total > 0 else None


# ---------------------------------------------------------------- models, export, quantization

def export_onnx(model, size, path):
    example = torch.randn(2, 3, size, size)
    batch = torch.export.Dim("batch", min=1, max=4096)
    kw = dict(input_names=["input"], output_names=["logits"], opset_version=OPSET, external_data=False,
              dynamo=True, dynamic_shapes=({0: batch},), verbose=False)
    try:
        torch.onnx.export(model, (example,), path, **kw)
    except TypeError:  # older torch: TorchScript exporter
        torch.onnx.export(model, (example,), path, input_names=["input"], output_names=["logits"],
                          opset_version=OPSET, dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    onnx.checker.check_model(path)
    got = {o.version for o in onnx.load(path, load_external_data=False).opset_import if o.domain in ("", "ai.onnx")}
    return sorted(got)


class Batches(CalibrationDataReader):
    """Calibration batches for quantize_static, fed to the model's input named `name`."""

    def __init__(self, data, name="input"):
        self.data, self.name, self.i = data, name, 0

    def get_next(self):
        if self.i >= len(self.data):
            return None
        self.i += 1
        return {self.name: self.data[self.i - 1]}

    def __len__(self):
        return len(self.data)


class RandomBatches(Batches):
    """Random-normal calibration batches, the same distribution as the timed inputs."""

    def __init__(self, size, batches, batch, seed=1, name="input"):
        g = np.random.default_rng(seed)
        super().__init__([g.standard_normal((batch, 3, size, size), dtype=np.float32) for _ in range(batches)], name)


class _AxisWarningFilter(logging.Filter):
    """Drops quantize_static's 'Axis 1 is out-of-range for weight ...' lines: with per_channel=True it
    tries the channel axis on 1-D LayerNormalization weights and falls back to per-tensor."""

    def filter(self, record):
        return "is out-of-range for weight" not in record.getMessage()


# INT8 variants: ORT's default operator set (every op quantize_static knows, LayerNorm, Softmax, Add,
# Mul and Erf included), and the linear layers only (MatMul/Gemm/Conv, the usual choice for
# transformers and what gpusq quantizes).
INT8_VARIANTS = {"all": ("ONNX Runtime INT8 (QDQ, all ops)", None),
                 "linear": ("ONNX Runtime INT8 (QDQ, MatMul/Gemm/Conv)", ["MatMul", "Gemm", "Conv"])}


def preprocess(fp32_path, tmp):
    pre_path = os.path.join(tmp, "model.pre.onnx")
    src, pre_note = fp32_path, "not available"
    try:
        from onnxruntime.quantization.shape_inference import quant_pre_process
        quant_pre_process(fp32_path, pre_path)
        src, pre_note = pre_path, "applied"
    except ImportError:
        print("bench_peers: quant_pre_process not available in this onnxruntime; quantizing the raw export",
              file=sys.stderr)
    except Exception as e:  # pre-processing is an optimisation; go on without it
        pre_note = f"failed: {type(e).__name__}: {e}"
        print(f"bench_peers: quant_pre_process {pre_note}; quantizing the raw export", file=sys.stderr)
    return src, pre_note


def quantize_int8(src, out, reader, op_types):
    """quantize_static of src into out, calibrated on reader's batches (a Batches)."""
    root = logging.getLogger()
    filt = _AxisWarningFilter()
    root.addFilter(filt)
    try:
        quantize_static(src, out, reader,
                        quant_format=QuantFormat.QDQ, op_types_to_quantize=op_types, per_channel=True,
                        reduce_range=False, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax)
    finally:
        root.removeFilter(filt)
    return out


# OpenVINO rows: key -> (label, INFERENCE_PRECISION_HINT or None for the plugin's default).
OV_VARIANTS = {"fp32": ("OpenVINO FP32", "f32"),
               "bf16": ("OpenVINO bf16", "bf16"),
               "int8": ("OpenVINO INT8 (NNCF PTQ)", None)}


def convert_openvino(model, size):
    """openvino.convert_model of the same torch module, traced on an example input of the model's
    shape; the batch axis is left dynamic, as in the ONNX export."""
    return ov.convert_model(model, example_input=torch.randn(1, 3, size, size),
                            input=[ov.PartialShape([-1, 3, size, size])])


def quantize_openvino(ov_model, size, args):
    """NNCF post-training INT8 quantization of the OpenVINO model, calibrated on the images of
    RandomBatches (the ORT calibration data), one image per item."""
    images = [b[i:i + 1] for b in RandomBatches(size, args.calib_batches, args.calib_batch).data
              for i in range(b.shape[0])]
    with contextlib.redirect_stdout(sys.stderr):  # NNCF's progress bars; stdout carries the tables
        return nncf.quantize(ov_model.clone(), nncf.Dataset(images), model_type=nncf.ModelType.TRANSFORMER,
                             subset_size=len(images))


def ov_compile(core, ov_model, threads, precision):
    cfg = {"INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY"}
    if precision is not None:
        cfg["INFERENCE_PRECISION_HINT"] = precision
    return core.compile_model(ov_model, "CPU", cfg)


def ov_runtime_info(compiled):
    """The compiled model's settings and the precisions its compute layers run in (runtime graph)."""
    info = {}
    for key in ("INFERENCE_PRECISION_HINT", "INFERENCE_NUM_THREADS", "NUM_STREAMS", "PERFORMANCE_HINT",
                "EXECUTION_MODE_HINT", "ENABLE_CPU_PINNING", "ENABLE_HYPER_THREADING"):
        try:
            v = compiled.get_property(key)
            info[key] = v.to_string() if isinstance(v, ov.Type) else str(v)
        except Exception:  # property not known to this OpenVINO version
            pass
    layers = {}
    for op in compiled.get_runtime_model().get_ordered_ops():
        rt = op.get_rt_info()
        kind, prec = rt["layerType"].astype(str), rt["runtimePrecision"].astype(str)
        if "ScaledDotProductAttention" in rt["originalLayersNames"].astype(str):
            kind = "attention"  # torch's SDPA, fused by the plugin (a Subgraph: QK^T, softmax, AV)
        if kind in ("FullyConnected", "MatMul", "Convolution", "attention"):
            layers.setdefault(kind, {}).setdefault(prec, 0)
            layers[kind][prec] += 1
    info["compute_layers"] = layers
    return info


def ov_label(key, info):
    """The row's label, saying what the plugin ran when that differs from the name of the row."""
    label, _ = OV_VARIANTS[key]
    fc = info["compute_layers"].get("FullyConnected", info["compute_layers"].get("MatMul", {}))
    ran = "/".join(sorted(fc)) or "?"
    hint = info.get("INFERENCE_PRECISION_HINT")
    if key == "int8":
        return f"{label[:-1]}; other ops {hint})" if hint else label
    want = {"fp32": "f32", "bf16": "bf16"}[key]
    return label if ran == want else f"{label} requested (FullyConnected ran {ran})"


# ---------------------------------------------------------------- timing

def time_fn(fn, warmup, iters, min_time, meter):
    for _ in range(warmup):
        fn()
    times = []
    meter.start()
    t_end = time.perf_counter() + min_time
    while len(times) < iters or time.perf_counter() < t_end:
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    load = meter.stop()
    return {"median_ms": statistics.median(times), "min_ms": min(times), "iters": len(times),
            "other_load": None if load is None else round(load, 3)}


def ort_session(path, threads):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, sess_options=so, providers=["CPUExecutionProvider"])


def wait_quiet(meter, limit, timeout):
    """Wait (up to timeout seconds) for a one-second window in which others use <= limit of the CPUs."""
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        meter.start()
        time.sleep(1.0)
        load = meter.stop()
        if load is None or load <= limit:
            return


def time_row(fn, iters, args, meter):
    """time_fn, redone (after waiting for a quiet CPU) while other processes were busy; keeps the
    attempt measured under the least load."""
    best = None
    for attempt in range(1, args.tries + 1):
        r = time_fn(fn, args.warmup, iters, args.min_time, meter)
        r["attempts"] = attempt
        if best is None or (r["other_load"] or 0) < (best["other_load"] or 0):
            best = dict(r)
        if r["other_load"] is None or r["other_load"] <= args.max_load:
            break
        if attempt < args.tries:
            print(f"bench_peers: other processes used {100 * r['other_load']:.0f}% of the CPUs; "
                  "waiting for a quiet moment and measuring again", file=sys.stderr)
            wait_quiet(meter, args.max_load, args.quiet_wait)
    best["attempts"] = attempt
    return best


def bench_runtime(run, x1, x32, args, meter):
    b1 = time_row(lambda: run(x1), args.iters, args, meter)
    b32 = time_row(lambda: run(x32), args.iters_batch, args, meter)
    return {"batch1_latency_ms": b1["median_ms"], "batch32_img_per_s": BATCH_THROUGHPUT * 1e3 / b32["median_ms"],
            "batch1": b1, "batch32": b32}


def compare(ref, got):
    return {"max_abs_diff": float(np.max(np.abs(ref - got))),
            "max_abs_ref": float(np.max(np.abs(ref))),
            "correlation": float(np.corrcoef(ref.ravel(), got.ravel())[0, 1]),
            "top1_agreement": float(np.mean(ref.argmax(1) == got.argmax(1)))}


def bench_model(name, args, meter):
    torch.manual_seed(0)
    model = create_model(name).eval()
    size = model.patch_embed.img_size[0]
    g = np.random.default_rng(0)
    x1 = g.standard_normal((1, 3, size, size), dtype=np.float32)
    x32 = g.standard_normal((BATCH_THROUGHPUT, 3, size, size), dtype=np.float32)
    t1, t32 = torch.from_numpy(x1), torch.from_numpy(x32)
    res = {"model": name, "image_size": size, "params": sum(p.numel() for p in model.parameters()),
           "max_load": args.max_load}

    with tempfile.TemporaryDirectory(prefix="bench_peers_") as tmp:
        fp32_path = os.path.join(tmp, "model.onnx")
        t0 = time.perf_counter()
        res["onnx_opset"] = export_onnx(model, size, fp32_path)
        res["export_s"] = round(time.perf_counter() - t0, 1)
        t0 = time.perf_counter()
        pre_path, res["quant_pre_process"] = preprocess(fp32_path, tmp)
        sessions = [("ONNX Runtime FP32", fp32_path)]
        for v in args.int8:
            label, op_types = INT8_VARIANTS[v]
            reader = RandomBatches(size, args.calib_batches, args.calib_batch)
            sessions.append((label, quantize_int8(pre_path, os.path.join(tmp, f"model.int8.{v}.onnx"), reader,
                                                  op_types)))
        res["quantize_s"] = round(time.perf_counter() - t0, 1)
        print(f"bench_peers: {name}: exported in {res['export_s']} s, quantized in {res['quantize_s']} s",
              file=sys.stderr)
        ov_models = {}
        if args.openvino:
            t0 = time.perf_counter()
            ov_fp32 = convert_openvino(model, size)
            res["openvino_convert_s"] = round(time.perf_counter() - t0, 1)
            ov_models.update({k: ov_fp32 for k in args.openvino if k != "int8"})
            if "int8" in args.openvino:
                t0 = time.perf_counter()
                ov_models["int8"] = quantize_openvino(ov_fp32, size, args)
                res["nncf_quantize_s"] = round(time.perf_counter() - t0, 1)
            print(f"bench_peers: {name}: OpenVINO conversion {res['openvino_convert_s']} s"
                  + (f", NNCF quantization {res['nncf_quantize_s']} s" if "int8" in args.openvino else ""),
                  file=sys.stderr)

        rows = {}
        # PyTorch first, then each ORT session alone: no other runtime's threads are alive meanwhile.
        def run_torch(x):
            with torch.inference_mode():
                return model(x)
        rows["PyTorch FP32"] = bench_runtime(run_torch, t1, t32, args, meter)
        with torch.inference_mode():
            ref = model(t32).numpy()

        outs = {}
        for label, path in sessions:
            sess = ort_session(path, args.threads)
            rows[label] = bench_runtime(lambda x: sess.run(None, {"input": x}), x1, x32, args, meter)
            outs[label] = sess.run(None, {"input": x32})[0]
            rows[label]["vs_pytorch_outputs"] = compare(ref, outs[label])
            rows[label]["model_mb"] = round(os.path.getsize(path) / 2**20, 1)
            del sess
        for label in outs:
            if label != "ONNX Runtime FP32":
                rows[label]["vs_ort_fp32_outputs"] = compare(outs["ONNX Runtime FP32"], outs[label])

        # OpenVINO last, each compiled model alone (ORT's sessions are gone).
        core, ov_fp32_out = ov.Core(), None
        for key in args.openvino:
            ov_model = ov_models[key]
            xml = os.path.join(tmp, f"model.ov.{key}.xml")
            ov.save_model(ov_model, xml, compress_to_fp16=False)
            compiled = ov_compile(core, ov_model, args.threads, OV_VARIANTS[key][1])
            req = compiled.create_infer_request()
            info = ov_runtime_info(compiled)
            label = ov_label(key, info)
            rows[label] = bench_runtime(lambda x: req.infer({0: x}, share_inputs=True), x1, x32, args, meter)
            out = req.infer({0: x32})[0].copy()
            rows[label]["openvino"] = info
            rows[label]["vs_pytorch_outputs"] = compare(ref, out)
            if key == "fp32":
                ov_fp32_out = out
            elif ov_fp32_out is not None:
                rows[label]["vs_openvino_fp32_outputs"] = compare(ov_fp32_out, out)
            rows[label]["model_mb"] = round(os.path.getsize(xml[:-4] + ".bin") / 2**20, 1)
            del req, compiled

    base = rows["PyTorch FP32"]
    for r in rows.values():
        r["latency_speedup_vs_pytorch"] = base["batch1_latency_ms"] / r["batch1_latency_ms"]
        r["throughput_speedup_vs_pytorch"] = r["batch32_img_per_s"] / base["batch32_img_per_s"]
    res["runtimes"] = rows
    return res


# ---------------------------------------------------------------- report

def _img_s(v):
    return f"{v:.4g}" if v < 1e4 else f"{v:.0f}"  # 4 digits, never 1.001e+04


def markdown(res):
    lines = [f"### {res['model']} ({res['image_size']}x{res['image_size']}, "
             f"{res['params'] / 1e6:.2f} M parameters)", "",
             "| runtime | batch-1 latency ms | batch-32 img/s | vs PyTorch FP32 (ratios: batch 1 / batch 32) |",
             "|---|--:|--:|--:|"]
    for label, r in res["runtimes"].items():
        loads = [r[k]["other_load"] for k in ("batch1", "batch32") if r[k]["other_load"] is not None]
        mark = " *" if loads and max(loads) > res["max_load"] else ""
        lines.append(f"| {label}{mark} | {r['batch1_latency_ms']:.3g} | {_img_s(r['batch32_img_per_s'])} | "
                     f"{r['latency_speedup_vs_pytorch']:.2f}× / {r['throughput_speedup_vs_pytorch']:.2f}× |")
    lines.append("")
    for label, r in res["runtimes"].items():
        key, ref = next(((k, n) for k, n in (("vs_ort_fp32_outputs", "ONNX Runtime FP32"),
                                             ("vs_openvino_fp32_outputs", "OpenVINO FP32"),
                                             ("vs_pytorch_outputs", "PyTorch FP32")) if k in r),
                        (None, None))
        if key:
            c = r[key]
            lines.append(f"- logits of {label} vs {ref} (the batch-32 random inputs): max |diff| "
                         f"{c['max_abs_diff']:.3g} (max |logit| {c['max_abs_ref']:.3g}), correlation "
                         f"{c['correlation']:.4f}, top-1 agreement {100 * c['top1_agreement']:.0f}%")
    loads = [r[k]["other_load"] for r in res["runtimes"].values() for k in ("batch1", "batch32")
             if r[k]["other_load"] is not None]
    iters = ", ".join(f"{label}: {r['batch1']['iters']} / {r['batch32']['iters']}"
                      for label, r in res["runtimes"].items())
    lines.append(f"- timed iterations (batch 1 / batch 32): {iters}")
    for label, r in res["runtimes"].items():
        if "openvino" in r:
            o = r["openvino"]
            layers = "; ".join(f"{k} " + ", ".join(f"{p} ×{n}" for p, n in sorted(v.items()))
                               for k, v in sorted(o["compute_layers"].items()))
            lines.append(f"- {label}: compiled with INFERENCE_PRECISION_HINT {o.get('INFERENCE_PRECISION_HINT')}, "
                         f"{o.get('INFERENCE_NUM_THREADS')} threads, {o.get('NUM_STREAMS')} stream(s), "
                         f"{o.get('PERFORMANCE_HINT')}; runtime precision of its compute layers: {layers}")
    if loads:
        lines.append(f"- other processes' share of the CPUs during the timings: at most {100 * max(loads):.0f}%"
                     + (f" (rows marked * above {100 * res['max_load']:.0f}% even after "
                        "retries: not a clean measurement)" if max(loads) > res["max_load"] else ""))
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(
        description="PyTorch / ONNX Runtime FP32 and INT8 / OpenVINO FP32, bf16 and INT8 CPU peers for gpusq")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="threads for every runtime (default: all cores)")
    ap.add_argument("--models", default=",".join(DEFAULT_MODELS),
                    help=f"comma-separated, from {','.join(MODELS)} (default {','.join(DEFAULT_MODELS)})")
    ap.add_argument("--iters", type=int, default=50, help="minimum timed iterations at batch 1 (default 50)")
    ap.add_argument("--iters-batch", type=int, default=8, help="minimum timed iterations at batch 32 (default 8)")
    ap.add_argument("--min-time", type=float, default=2.0, help="minimum seconds of timed iterations per row")
    ap.add_argument("--warmup", type=int, default=2, help="untimed warm-up iterations per row (default 2)")
    ap.add_argument("--max-load", type=float, default=0.10,
                    help="redo a timing during which other processes used more than this share of the CPUs")
    ap.add_argument("--tries", type=int, default=3, help="attempts per timing when the CPUs are busy (default 3)")
    ap.add_argument("--quiet-wait", type=float, default=30.0,
                    help="seconds to wait for a quiet CPU between attempts (default 30)")
    ap.add_argument("--calib-batches", type=int, default=8, help="calibration batches (default 8)")
    ap.add_argument("--calib-batch", type=int, default=8, help="images per calibration batch (default 8)")
    ap.add_argument("--int8", default="all,linear",
                    help="INT8 variants, comma-separated: all (ORT's default operator set), "
                         "linear (MatMul/Gemm/Conv only); default both")
    ap.add_argument("--openvino", default="fp32,bf16,int8",
                    help="OpenVINO rows, comma-separated: fp32, bf16, int8 (NNCF); default all three, "
                         "'' for none")
    ap.add_argument("--out", help="write all numbers as JSON to this file")
    args = ap.parse_args()
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    bad = [m for m in models if m not in MODELS]
    if bad or not models:
        ap.error(f"unknown model(s) {bad}; choose from {','.join(MODELS)}")
    args.int8 = [v.strip() for v in args.int8.split(",") if v.strip()]
    if any(v not in INT8_VARIANTS for v in args.int8):
        ap.error(f"--int8: choose from {','.join(INT8_VARIANTS)}")
    wanted = {v.strip() for v in args.openvino.split(",") if v.strip()}
    if wanted - set(OV_VARIANTS):
        ap.error(f"--openvino: choose from {','.join(OV_VARIANTS)}")
    args.openvino = [v for v in OV_VARIANTS if v in wanted]  # FP32 first: the others are compared with it
    if min(args.threads, args.tries, args.iters, args.iters_batch, args.calib_batches, args.calib_batch) < 1 \
            or args.warmup < 0 or args.min_time < 0:
        ap.error("--threads, --tries, --iters, --iters-batch, --calib-* must be >= 1; --warmup, --min-time >= 0")

    torch.set_num_threads(args.threads)
    cpu, flags = cpu_info()
    meter = LoadMeter()
    start = datetime.datetime.now(datetime.timezone.utc)
    results = []
    for name in models:
        results.append(bench_model(name, args, meter))
        print(markdown(results[-1]) + "\n", flush=True)
    env = {"date_utc": start.strftime("%Y-%m-%d %H:%M"), "cpu": cpu, "cpu_flags": flags, "cores": os.cpu_count(),
           "threads": args.threads, "python": sys.version.split()[0], "torch": torch.__version__,
           "timm": timm.__version__, "onnx": onnx.__version__, "onnxruntime": ort.__version__,
           "openvino": ov.get_version(), "nncf": nncf.__version__,
           "numpy": np.__version__, "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
           "iters": args.iters, "iters_batch": args.iters_batch, "min_time_s": args.min_time, "warmup": args.warmup,
           "max_load": args.max_load, "tries": args.tries,
           "quantization": {"variants": {v: INT8_VARIANTS[v][1] or "ORT default" for v in args.int8},
                            "format": "QDQ", "per_channel": True, "reduce_range": False, "activations": "QUInt8",
                            "weights": "QInt8", "calibration": f"MinMax, {args.calib_batches} random-normal "
                                                               f"batches of {args.calib_batch}"},
           "openvino_rows": {k: {"label": OV_VARIANTS[k][0], "INFERENCE_PRECISION_HINT": OV_VARIANTS[k][1] or
                                 "plugin default"} for k in args.openvino},
           "openvino_config": {"device": "CPU", "INFERENCE_NUM_THREADS": args.threads, "NUM_STREAMS": 1,
                               "PERFORMANCE_HINT": "LATENCY", "convert": "openvino.convert_model(torch module, "
                               "example_input 1x3xHxW, input [-1,3,H,W])",
                               "nncf": "nncf.quantize(model_type=TRANSFORMER, defaults otherwise), "
                                       f"{args.calib_batches * args.calib_batch} calibration images one at a time"},
           "omp": {k: v for k, v in sorted(os.environ.items()) if k.startswith(("OMP_", "GOMP_"))},
           "total_s": round((datetime.datetime.now(datetime.timezone.utc) - start).total_seconds(), 1)}
    print(f"# {env['date_utc']} UTC, {cpu}, {env['cores']} cores, threads {args.threads}; torch {env['torch']}, "
          f"onnxruntime {env['onnxruntime']}, onnx {env['onnx']}, timm {env['timm']}, openvino {env['openvino']}, "
          f"nncf {env['nncf']}; total {env['total_s']} s")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"env": env, "results": results}, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()

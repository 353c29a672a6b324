"""Checks gpusq's ONNX exports with their real consumers (run by tests/onnx_check.sh).

For every CASE.onnx beside a CASE.io.safetensors in the folder given (tests/export_bundle.c writes
them): onnx.checker passes (full check, shapes inferred); the graph is what docs/EXPORT.md
promises (LayerNormalization as one operator, exact GELU, a symbolic or the asked batch axis,
the input's description and, for RGB models, its normalisation in metadata_props); ONNX Runtime's logits on the case's
images match gpusq's — "fp32": within 1e-4 of the largest logit of each image, "agreement": the
same top-1 class on at least 99.5% of the images — and every weight the case names keeps its 2:4
or paired 4:8 pattern, read independently from the ONNX initializers. Q/DQ exports: symmetric
int8 zero points for TensorRT, uint8 zero point 128 on activations for ONNX Runtime, per-row
DequantizeLinear (axis 0) on the int8 weights. Exits 1 when any check fails.
"""
import glob
import json
import os
import struct
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

FP32_TOLERANCE = 1e-4
MIN_AGREEMENT = 0.995


def read_safetensors(path):
    """The F32 tensors and the metadata of a safetensors file."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {})
    tensors = {}
    for name, t in header.items():
        assert t["dtype"] == "F32", f"{path}: {name} is {t['dtype']}"
        a, b = t["data_offsets"]
        tensors[name] = np.frombuffer(data[8 + n + a:8 + n + b], dtype="<f4").reshape(t["shape"])
    return tensors, meta


def obeys(w, pattern):
    """1 when every row of w keeps the pattern along its input features (the last axis)."""
    nz = w.reshape(w.shape[0], -1) != 0
    if pattern == "2:4":
        return bool((nz.reshape(nz.shape[0], -1, 4).sum(-1) <= 2).all())
    pairs = nz.reshape(nz.shape[0], -1, 4, 2).any(-1)  # paired 4:8: nonzeros in at most 2 of 4 pairs
    return bool((pairs.sum(-1) <= 2).all())


def check_graph(name, model, meta, problems):
    ops = [n.op_type for n in model.graph.node]
    inits = {t.name: t for t in model.graph.initializer}
    opset = max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    if opset < 17:
        problems.append(f"opset {opset} < 17")
    if "LayerNormalization" not in ops or "Sqrt" in ops or "Pow" in ops:
        problems.append("LayerNorm is not one LayerNormalization operator")
    if "Gelu" not in ops and "Erf" not in ops or "Tanh" in ops:
        problems.append("GELU is not exact")
    props = {p.key: p.value for p in model.metadata_props}
    channels = model.graph.input[0].type.tensor_type.shape.dim[1].dim_value
    for key in ("gpusq.input", "gpusq.input_size") + (("gpusq.mean", "gpusq.std") if channels == 3 else ()):
        if key not in props:
            problems.append(f"metadata {key} missing")
    quantize = [n for n in model.graph.node if n.op_type == "QuantizeLinear"]
    ort_target = name.endswith("_ort")
    for q in quantize:
        zp = numpy_helper.to_array(inits[q.input[2]])
        want = (np.uint8, 128) if ort_target else (np.int8, 0)
        if zp.dtype != want[0] or (zp != want[1]).any():
            problems.append(f"{q.output[0]}: zero point {zp.dtype} {zp.ravel()[:3]} instead of {want[0].__name__} {want[1]}")
            break
    pattern, sparse = meta.get("pattern", ""), [s for s in meta.get("sparse_weights", "").split(",") if s]
    consumers = {}
    for n in model.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    for w in sparse:
        if w not in inits:
            problems.append(f"weight {w} missing")
            continue
        arr = numpy_helper.to_array(inits[w])
        if arr.ndim != 2 or not obeys(arr, pattern):
            problems.append(f"weight {w} {arr.shape} does not keep its {pattern} pattern")
        if arr.dtype == np.int8:
            dq = [n for n in consumers.get(w, []) if n.op_type == "DequantizeLinear"]
            axis = [a.i for n in dq for a in n.attribute if a.name == "axis"]
            if len(dq) != 1 or axis != [0] or numpy_helper.to_array(inits[dq[0].input[1]]).shape != (arr.shape[0],):
                problems.append(f"weight {w}: not one per-row DequantizeLinear (axis 0)")
    return len(sparse)


def run(path, images):
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    batch = session.get_inputs()[0].shape[0]
    step = batch if isinstance(batch, int) else 100
    outs = [session.run(["logits"], {"images": images[i:i + step]})[0] for i in range(0, len(images), step)]
    return np.concatenate(outs)


def main(folder):
    cases = sorted(glob.glob(os.path.join(folder, "*.io.safetensors")))
    if not cases:
        print(f"onnx_check: no cases in {folder}")
        return 1
    failed = 0
    for io in cases:
        name = os.path.basename(io)[:-len(".io.safetensors")]
        path = os.path.join(folder, name + ".onnx")
        tensors, meta = read_safetensors(io)
        problems = []
        model = onnx.load(path)
        try:
            onnx.checker.check_model(model, full_check=True)
        except Exception as e:  # the checker's own exceptions, whatever their class
            problems.append(f"onnx.checker: {e}")
        checked = check_graph(name, model, meta, problems)
        logits, want = run(path, tensors["images"]), tensors["logits"]
        if logits.shape != want.shape:
            problems.append(f"logits {logits.shape}, gpusq {want.shape}")
            result = ""
        elif meta["check"] == "fp32":
            rel = float((np.abs(logits - want).max(1) / np.abs(want).max(1)).max())
            result = f"max relative logit difference {rel:.2e}"
            if not rel <= FP32_TOLERANCE:
                problems.append(f"{result} > {FP32_TOLERANCE}")
        else:
            agree = float((logits.argmax(1) == want.argmax(1)).mean())
            result = f"top-1 agreement with the engine {100 * agree:.2f}%"
            if agree < MIN_AGREEMENT:
                problems.append(f"{result} < {100 * MIN_AGREEMENT}%")
        sparse = f", {checked} weights keep {meta['pattern']}" if checked else ""
        print(f"onnx_check: {name}: {len(want)} images, {result}{sparse}: {'FAILED' if problems else 'ok'}")
        for p in problems:
            print(f"onnx_check:   {p}")
        failed += bool(problems)
    print(f"onnx_check: {len(cases) - failed} of {len(cases)} exports passed "
          f"(onnx {onnx.__version__}, onnxruntime {ort.__version__})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

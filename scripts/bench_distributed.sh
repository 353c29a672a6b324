#!/usr/bin/env bash
# Data-parallel training throughput on one machine (docs/DISTRIBUTED.md): the same training run
# (a model, its global batch, synthetic data) as 1 process × T threads, as 1 process × 1 thread
# accumulating R micro-batches, and as R ranks × 1 thread under mpirun (TCP over loopback, as
# between machines), in one run; prints each one's training img/s (from the --log lines, the
# first step left out), the ranks' ratio to the one process with all threads, and the time a step
# waited for the other ranks' gradients.
# Usage: scripts/bench_distributed.sh [MODEL] [GLOBAL_BATCH] [STEPS] [RANKS]
#   defaults: gpusq_demo 64 40 2 (the demo's model and batch; RANKS × 1 thread should fill the cores)
set -euo pipefail
cd "$(dirname "$0")/.."
model="${1:-gpusq_demo}"
batch="${2:-64}"
steps="${3:-40}"
ranks="${4:-2}"
[ -x build/gpusq ] || cmake --build build --target gpusq_cli
command -v mpirun > /dev/null || { echo "bench: no mpirun (scripts/install-deps.sh installs Open MPI)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl=tcp,self OMPI_MCA_btl_tcp_if_include=lo OMPI_MCA_oob_tcp_if_include=lo
micro=$((batch / ranks))
common=(--model "$model" --train-size $((batch * (steps + 1))) --val-size 64 --epochs 1 --seed 1 --no-augment)
echo "# $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, $(date -u +%Y-%m-%d), $model, global batch $batch, $steps steps"
run() { # run NAME LOG COMMAND...: the command writes LOG
    local name=$1 log=$2; shift 2
    "$@" > "$work/$name.out" 2>&1 || { cat "$work/$name.out" >&2; exit 1; }
}
run one "$work/one.jsonl" build/gpusq train "${common[@]}" --batch "$batch" --threads "$(nproc)" \
    --out "$work/one.safetensors" --log "$work/one.jsonl"
run accum "$work/accum.jsonl" build/gpusq train "${common[@]}" --batch "$micro" --accum "$ranks" --threads 1 \
    --out "$work/accum.safetensors" --log "$work/accum.jsonl"
run ranks "$work/ranks.jsonl" mpirun -np "$ranks" --bind-to core build/gpusq train "${common[@]}" --batch "$micro" \
    --threads 1 --out "$work/ranks.safetensors" --log "$work/ranks.jsonl"
same=$(cmp -s "$work/accum.safetensors" "$work/ranks.safetensors" && echo "bitwise equal" || echo "DIFFERENT")
python3 - "$work" "$ranks" "$(nproc)" "$micro" "$same" <<'PY'
import json, sys
work, ranks, cores, micro, same = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
def rate(name):
    steps = [json.loads(l) for l in open(f"{work}/{name}.jsonl") if '"step"' in l and '"eval"' not in l]
    first, last = steps[0], steps[-1]
    images = last["images_per_second"] * last["elapsed"] - first["images_per_second"] * first["elapsed"]
    seconds = last["elapsed"] - first["elapsed"]
    comm = sum(s.get("comm_seconds", 0) for s in steps[1:]) / (len(steps) - 1)
    return images / seconds, seconds / (len(steps) - 1), comm
one, accum, multi = rate("one"), rate("accum"), rate("ranks")
print(f"1 process x {cores} threads, batch {micro * ranks}:      {one[0]:7.1f} img/s  {1000 * one[1]:7.1f} ms/step")
print(f"1 process x 1 thread, {micro} x accum {ranks}:   {accum[0]:7.1f} img/s  {1000 * accum[1]:7.1f} ms/step")
print(f"{ranks} ranks x 1 thread, batch {micro} each:     {multi[0]:7.1f} img/s  {1000 * multi[1]:7.1f} ms/step, "
      f"waiting for gradients {1000 * multi[2]:.2f} ms/step ({100 * multi[2] / multi[1]:.1f}%)")
print(f"ranks / one process with all threads: {multi[0] / one[0]:.2f}x; ranks / one thread accumulating: "
      f"{multi[0] / accum[0]:.2f}x; weights of the ranks vs the accumulating process: {same}")
PY

#!/usr/bin/env bash
# Data-parallel training under mpirun (docs/DISTRIBUTED.md), 2 ranks × 1 thread on TCP over
# loopback (what crosses machines): N ranks with --batch b write bitwise the weights of one
# process with --batch b --accum N, for train, prune (distillation), quantize (LSQ, INT4,
# quantized attention) and compress; a run resumes across shapes (2 ranks × accum 2 → 4 ranks →
# 1 process × accum 4) bitwise; a killed rank ends the job with a message naming it and leaves
# the last checkpoint whole; Ctrl-C stops every rank with a checkpoint.
# Usage: mpi_check.sh GPUSQ WORKDIR.
# Exits 77 (skipped) where mpirun is missing (a build without MPI registers a skip instead).
set -uo pipefail
gpusq=$1
work=$2
teacher=$(cd "$(dirname "$0")/.." && pwd)/assets/demo_teacher.safetensors
if ! command -v mpirun > /dev/null; then echo "mpi_check: skipped (no mpirun)"; exit 77; fi
rm -rf "$work" && mkdir -p "$work" && cd "$work" || exit 1
# root in CI, two cores, TCP on loopback only
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OMPI_MCA_btl=tcp,self OMPI_MCA_btl_tcp_if_include=lo OMPI_MCA_oob_tcp_if_include=lo
mpi() { local n=$1; shift; mpirun -np "$n" "$gpusq" "$@"; }
failures=0
check() { # check NAME CONDITION...
    local name=$1; shift
    if "$@"; then echo "ok: $name"; else echo "FAILED: $name"; failures=$((failures + 1)); fi
}
same() { cmp -s "$1" "$2"; }
data=(--train-size 480 --val-size 160 --threads 1 --seed 7)

# train: one process accumulating 2 micro-batches = 2 ranks; the sharded evaluation sums the same top-1
"$gpusq" train --model gpusq_demo "${data[@]}" --epochs 2 --batch 32 --accum 2 --out one.safetensors > one.log 2>&1
mpi 2 train --model gpusq_demo "${data[@]}" --epochs 2 --batch 32 --out two.safetensors > two.log 2>&1
check "train: 2 ranks = 1 process with --accum 2 (bitwise)" same one.safetensors two.safetensors
check "train: the same validation top-1" \
    test "$(grep -o 'validation: top-1 [0-9.]*' one.log)" = "$(grep -o 'validation: top-1 [0-9.]*' two.log)"
check "train: rank 0 alone reports" test "$(grep -c '^trained' two.log)" = 1

# prune: distillation from the teacher, permutation search
"$gpusq" prune --teacher "$teacher" "${data[@]}" --epochs 1 --batch 16 --accum 2 --out p1.safetensors > p1.log 2>&1
mpi 2 prune --teacher "$teacher" "${data[@]}" --epochs 1 --batch 16 --out p2.safetensors > p2.log 2>&1
check "prune: 2 ranks = 1 process with --accum 2 (bitwise)" same p1.safetensors p2.safetensors

# quantize: LSQ's learned scales are reduced with the weights
q=(--teacher p1.safetensors "${data[@]}" --epochs 1 --batch 16 --mode int4 --lsq --attention)
"$gpusq" quantize "${q[@]}" --accum 2 --out q1.gsq.safetensors > q1.log 2>&1
mpi 2 quantize "${q[@]}" --out q2.gsq.safetensors > q2.log 2>&1
check "quantize: 2 ranks = 1 process with --accum 2 (bitwise)" same q1.gsq.safetensors q2.gsq.safetensors

# compress: both stages in one command
cz=(--teacher "$teacher" "${data[@]}" --batch 16 --prune-epochs 1 --qat-epochs 1 --modes int8)
"$gpusq" compress "${cz[@]}" --accum 2 --out-dir c1 > cz1.log 2>&1
mpi 2 compress "${cz[@]}" --out-dir c2 > cz2.log 2>&1
check "compress: 2 ranks = 1 process with --accum 2 (bitwise)" same c1/int8.gsq.safetensors c2/int8.gsq.safetensors

# resume across shapes, the global step fixed at 4 micro-batches of 16
r=("${data[@]}" --epochs 2 --batch 16 --out r.safetensors --checkpoint r.ckpt.safetensors)
"$gpusq" train --model gpusq_demo "${data[@]}" --epochs 2 --batch 16 --accum 4 --out full.safetensors > full.log 2>&1
mpi 2 train --model gpusq_demo "${r[@]}" --accum 2 --max-steps 3 > r1.log 2>&1
mpi 4 train --resume r.ckpt.safetensors "${r[@]}" --max-steps 4 > r2.log 2>&1
"$gpusq" train --resume r.ckpt.safetensors "${r[@]}" --accum 4 > r3.log 2>&1
check "resume: 2 ranks × accum 2 → 4 ranks → 1 process × accum 4 = 1 process × accum 4 (bitwise)" \
    same full.safetensors r.safetensors
"$gpusq" train --resume r.ckpt.safetensors "${r[@]}" --accum 2 > r4.log 2>&1
check "resume: another global step is refused" grep -q "other settings" r4.log

# a rank killed mid-run: the job ends naming it; the last checkpoint is whole and resumes
k=("${data[@]}" --train-size 20000 --epochs 1 --batch 16 --checkpoint-every 2 --out k.safetensors --checkpoint k.ckpt.safetensors)
mpirun -np 2 "$gpusq" train --model gpusq_demo "${k[@]}" > k.log 2>&1 &
job=$!
for _ in $(seq 300); do [ -f k.ckpt.safetensors ] && break; sleep 0.1; done
sleep 0.5
pkill -KILL -n -P "$job" # the newest child of mpirun: a rank
wait $job
rc=$?
check "kill: the job fails" test "$rc" -ne 0
check "kill: the message names the killed rank" grep -q "rank [01].*signal 9" k.log
"$gpusq" train --resume k.ckpt.safetensors "${k[@]}" --accum 2 --max-steps 1 > k2.log 2>&1
check "kill: the last checkpoint resumes" grep -q "^stopped at step" k2.log

# Ctrl-C (the launcher sends every rank SIGTERM): every rank stops, rank 0 writes the checkpoint
rm -f c.ckpt.safetensors
mpirun -np 2 "$gpusq" train --model gpusq_demo "${k[@]/k./c.}" > c.log 2>&1 &
job=$!
for _ in $(seq 300); do grep -q "^training" c.log && break; sleep 0.1; done
sleep 1
kill -INT $job
wait $job
check "ctrl-c: every rank stops at the same step and rank 0 writes the checkpoint" grep -q "^stopped at step" c.log
check "ctrl-c: the checkpoint resumes" "$gpusq" train --resume c.ckpt.safetensors "${k[@]/k./c.}" --accum 2 --max-steps 1 \
    > c2.log 2>&1

if [ "$failures" -gt 0 ]; then
    echo "mpi_check: $failures failed; logs in $work"
    exit 1
fi
echo "mpi_check: all passed"

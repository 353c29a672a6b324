#!/usr/bin/env bash
# Training speed when the values go bad: times the diverging run of issue 15 (--lr 5, whose
# weights and gradients fall into denormal floats on CPUs that trap them) and the same run at a
# sane learning rate, with each gpusq binary given, the two runs alternating, ROUNDS times; prints the median
# img/s of each and the diverging / normal ratio (1 means no slow-down).
# Usage: scripts/bench_diverging.sh [ROUNDS] [GPUSQ...]   defaults: 3, build/gpusq
# e.g. with the code before the fix: git worktree add /tmp/old a62616e, build it there, then
#   scripts/bench_diverging.sh 3 /tmp/old/build/gpusq build/gpusq
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-3}"
shift $(( $# < 1 ? $# : 1 ))
bins=("$@")
[ ${#bins[@]} -gt 0 ] || bins=(build/gpusq)
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

run() {   # BINARY LR: prints the run's img/s
    "$1" train --model gpusq_demo --data synthetic --train-size 4000 --val-size 200 --epochs 1 \
        --batch 32 --lr "$2" --no-augment --out "$out/m.safetensors" 2>&1 |
        sed -n 's/^trained .*(\([0-9.]*\) img\/s)$/\1/p'
}
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }

echo "$(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, $(date -u +%F), $rounds rounds"
printf '%-40s %14s %14s %8s\n' binary "diverging img/s" "normal img/s" ratio
for b in "${bins[@]}"; do
    : >"$out/div"; : >"$out/norm"
    for _ in $(seq "$rounds"); do
        run "$b" 5 >>"$out/div"
        run "$b" 2e-3 >>"$out/norm"
    done
    d="$(median <"$out/div")"; n="$(median <"$out/norm")"
    printf '%-40s %14s %14s %8.2f\n' "$b" "$d" "$n" "$(awk -v d="$d" -v n="$n" 'BEGIN { print d / n }')"
done

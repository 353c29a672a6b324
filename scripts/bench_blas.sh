#!/usr/bin/env bash
# Builds bench/gemm_libs.c once per fp32 GEMM library (OpenBLAS OpenMP and pthread builds, oneDNN,
# BLIS: whichever are installed), runs them one after the other for each thread count, and prints
# a combined table: GFLOP/s per shape and library, the ratio against OpenBLAS (OpenMP build, the one
# libgpusq links), and the geometric mean of the ratios per thread count. Results: docs/BENCHMARKS.md.
#
# Usage: scripts/bench_blas.sh [--build-dir DIR] [--threads "1 2"] [--min-time S] [--rounds R]
#                              [--max-bg F] [--tries N] [--direct] [--no-run] [--markdown]
#   --rounds   run every library R times (default 2), in alternating order (forward, then
#              backward), and keep each row's best GFLOP/s, so that a slow drift of the machine
#              does not favour whichever library ran first
#   --max-bg   before each run, wait (up to 2 min) until other processes use less than this share
#              of the CPUs (default 0.10); a row measured while they used more is redone, up to
#              --tries times (default 5), keeping the quietest attempt; rows still above are
#              marked "*"
#   --direct   compile with cc here instead of the CMake targets gemm_* (used automatically when
#              CMake cannot configure or build them)
#   --no-run   only print the table again from the CSVs of the last run
#   --markdown print the table as Markdown (for docs/BENCHMARKS.md)
# The raw CSV of every run is kept in DIR/bench_blas/ (DIR defaults to build-blas).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="$root/build-blas"
threads="1 2"
min_time=0.1
rounds=2
max_bg=0.10
tries=5
direct=0
run=1
markdown=0
while [ $# -gt 0 ]; do
    case "$1" in
        --build-dir) build="$2"; shift 2 ;;
        --threads) threads="$2"; shift 2 ;;
        --min-time) min_time="$2"; shift 2 ;;
        --rounds) rounds="$2"; shift 2 ;;
        --max-bg) max_bg="$2"; shift 2 ;;
        --tries) tries="$2"; shift 2 ;;
        --direct) direct=1; shift ;;
        --no-run) run=0; shift ;;
        --markdown) markdown=1; shift ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "bench_blas: unknown argument $1" >&2; exit 2 ;;
    esac
done

targets=(gemm_openblas gemm_openblas_pthread gemm_dnnl gemm_blis)
bindir="$build/bench"
outdir="$build/bench_blas"
mkdir -p "$outdir"

# ---------------------------------------------------------------- build
build_cmake() {
    cmake -S "$root" -B "$build" -DGSQ_CUDA=OFF >"$outdir/cmake-configure.log" 2>&1 || return 1
    local built=0
    for t in "${targets[@]}"; do
        if cmake --build "$build" --target "$t" -j2 >"$outdir/build-$t.log" 2>&1; then
            built=1
        else
            echo "bench_blas: CMake target $t not built (see $outdir/build-$t.log)" >&2
            rm -f "$bindir/$t"
        fi
    done
    [ "$built" = 1 ]
}

build_direct() {
    local cc="${CC:-cc}" arch
    arch="$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)"
    local L="/usr/lib/$arch" I="/usr/include/$arch"
    local flags=(-O2 -march=native -std=c11 -D_POSIX_C_SOURCE=200809L -fopenmp -Wall -Wextra)
    bindir="$outdir/bin"
    mkdir -p "$bindir"
    one() { # name macro lib_path include_dir
        if [ -e "$3" ]; then
            "$cc" "${flags[@]}" -D"$2" -isystem "$4" "$root/bench/gemm_libs.c" -o "$bindir/$1" \
                "$3" -Wl,-rpath,"$(dirname "$3")" -lm ||
                echo "bench_blas: $1 failed to compile" >&2
        else
            echo "bench_blas: $3 not found, $1 skipped" >&2
        fi
    }
    one gemm_openblas GEMM_LIB_OPENBLAS "$L/openblas-openmp/libopenblas.so.0" "$I"
    one gemm_openblas_pthread GEMM_LIB_OPENBLAS "$L/openblas-pthread/libopenblas.so.0" "$I"
    one gemm_dnnl GEMM_LIB_DNNL "$L/libdnnl.so" /usr/include
    one gemm_blis GEMM_LIB_BLIS "$L/blis-openmp/libblis.so.4" "$I/blis-openmp"
}

# ---------------------------------------------------------------- run
cpu_busy() { # prints "busy total" jiffies of all CPUs
    awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat
}
wait_idle() { # waits (at most 2 minutes) until the CPUs are busy less than max_bg over 2 s
    local waited=0 b0 t0 b1 t1
    while :; do
        read -r b0 t0 < <(cpu_busy); sleep 2; read -r b1 t1 < <(cpu_busy)
        if awk -v b=$((b1 - b0)) -v t=$((t1 - t0)) -v m="$max_bg" 'BEGIN { exit !(t > 0 && b / t < m) }'; then
            return 0
        fi
        [ "$waited" = 0 ] && echo "bench_blas: machine busy, waiting for it to quieten" >&2
        waited=$((waited + 2))
        [ "$waited" -lt 120 ] || { echo "bench_blas: still busy after 2 min, running anyway" >&2; return 0; }
    done
}

if [ "$run" = 1 ]; then
    rm -f "$outdir"/gemm_*.csv
    if [ "$direct" = 0 ] && build_cmake; then
        echo "bench_blas: built with CMake in $build" >&2
    else
        [ "$direct" = 1 ] || echo "bench_blas: CMake build failed, compiling directly" >&2
        build_direct
    fi
    {
        echo "# date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
        echo "# machine: $(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1), $(nproc) cores," \
             "flags: $(grep -o -w -E 'avx512f|avx512_bf16|amx_tile|amx_bf16' /proc/cpuinfo | sort -u | tr '\n' ' ')"
        echo "# command: scripts/bench_blas.sh --threads \"$threads\" --min-time $min_time --rounds $rounds --max-bg $max_bg --tries $tries"
    } >"$outdir/header.txt"
    for r in $(seq 1 "$rounds"); do
        order=("${targets[@]}")
        if [ $((r % 2)) = 0 ]; then
            order=(); for ((i = ${#targets[@]} - 1; i >= 0; i--)); do order+=("${targets[i]}"); done
        fi
        for t in $threads; do
            for exe in "${order[@]}"; do
                [ -x "$bindir/$exe" ] || continue
                f="$outdir/$exe-t$t-r$r.csv"
                wait_idle
                echo "bench_blas: round $r, $exe, $t thread(s)" >&2
                if ! OMP_NUM_THREADS="$t" "$bindir/$exe" --threads "$t" --csv --min-time "$min_time" \
                        --max-bg "$max_bg" --tries "$tries" >"$f"; then
                    echo "bench_blas: $exe FAILED its correctness check (or crashed); see $f" >&2
                fi
            done
        done
    done
fi

csvs=()
for exe in "${targets[@]}"; do # library order of the table: the order of targets
    for f in "$outdir/$exe"-t*-r*.csv; do [ -e "$f" ] && csvs+=("$f"); done
done
[ "${#csvs[@]}" -gt 0 ] || { echo "bench_blas: no results in $outdir" >&2; exit 1; }
cat "$outdir/header.txt" 2>/dev/null || true
for f in "${csvs[@]}"; do # library description once, then every run's load and check lines
    case "$f" in *-r1.csv) head -1 "$f" ;; esac
done | awk '!seen[$0]++'
for f in "${csvs[@]}"; do
    tag="$(basename "$f" .csv)"
    grep -E '^# (check|background)' "$f" | sed "s/^# /# $tag: /" || true
done

# ---------------------------------------------------------------- combined table
awk -F, -v maxbg="$max_bg" -v md="$markdown" '
function cell(s, w) { return md ? " " s " |" : sprintf(" %" w "s", s) }
/^#/ || /^lib,/ { next }
{
    lib = $1; th = $2
    key = $3 SUBSEP $4 SUBSEP $5 SUBSEP $6 SUBSEP $7 SUBSEP $8 SUBSEP $9 SUBSEP $10
    if (!(lib in seenlib)) { seenlib[lib] = 1; libs[++nlib] = lib }
    if (!((th, key) in seenkey)) { seenkey[th, key] = 1; keys[th, ++nkey[th]] = key }
    if (!(th in seenth)) { seenth[th] = 1; ths[++nth] = th }
    if (gf[lib, th, key] == "" || $12 + 0 > gf[lib, th, key] + 0) {
        gf[lib, th, key] = $12; ms[lib, th, key] = $11; noisy[lib, th, key] = ($14 + 0 > maxbg)
    }
    heads[th, key] = ($5 ~ /^heads/)
    big[th, key] = ($4 == 32 && $3 != "attn") ? $3 : ""
}
END {
    base = ("openblas-omp" in seenlib) ? "openblas-omp" : libs[1]
    for (l = 1; l <= nlib; l++) if (libs[l] == base) bi = l
    split("model B layer pass tr M N K", hd, " ")
    split("-10 2 -9 -11 -2 5 5 5", wd, " ")
    for (ti = 1; ti <= nth; ti++) {
        th = ths[ti]
        printf "\n%s %d thread(s): GFLOP/s (best of the rounds) and ratio vs %s (>1: faster); * = measured while other processes used > %s of the CPUs\n\n", md ? "####" : "==", th, base, maxbg
        line = md ? "|" : ""
        for (c = 1; c <= 8; c++) line = line cell(hd[c], wd[c])
        for (l = 1; l <= nlib; l++) line = line cell(libs[l], 16)
        for (l = 1; l <= nlib; l++) if (libs[l] != base) line = line cell("x " libs[l], 18)
        print line
        if (md) {
            line = "|"
            for (c = 1; c <= 8 + nlib + nlib - 1; c++) line = line (c <= 3 || c == 4 || c == 5 ? "---|" : "--:|")
            print line
        }
        for (l = 1; l <= nlib; l++) { lsum[l] = 0; lcnt[l] = 0 }
        delete step
        nshape = 0
        for (i = 1; i <= nkey[th]; i++) {
            k = keys[th, i]
            if (!heads[th, k]) nshape++
            split(k, kf, SUBSEP)
            line = md ? "|" : ""
            for (c = 1; c <= 8; c++) line = line cell(kf[c], wd[c])
            for (l = 1; l <= nlib; l++) {
                v = gf[libs[l], th, k]
                line = line cell(v == "" ? "-" : sprintf("%.1f%s", v, noisy[libs[l], th, k] ? "*" : (md ? "" : " ")), 16)
            }
            b = gf[base, th, k]
            for (l = 1; l <= nlib; l++) {
                if (libs[l] == base) continue
                v = gf[libs[l], th, k]
                if (v == "" || b == "" || b <= 0) { line = line cell("-", 18); continue }
                line = line cell(sprintf("%.2f", v / b), 18)
                if (!heads[th, k]) { lsum[l] += log(v / b); lcnt[l]++ }
            }
            print line
            if (big[th, k] != "")
                for (l = 1; l <= nlib; l++) if (ms[libs[l], th, k] != "") step[big[th, k], l] += ms[libs[l], th, k]
        }
        printf "\n%sgeomean of the ratios vs %s over the %d GEMM shapes (heads rows excluded):", md ? "- " : "", base, nshape
        for (l = 1; l <= nlib; l++)
            if (libs[l] != base && lcnt[l] > 0) printf " %s %.3f;", libs[l], exp(lsum[l] / lcnt[l])
        printf "\n%ssum over the 15 batch-32 shapes (patch embed + one block\047s linears, fwd+bwd), ms (speed-up vs %s):\n", md ? "- " : "", base
        for (m = 0; m < 2; m++) {
            mo = m == 0 ? "deit_tiny" : "deit_small"
            printf "%s%-10s", md ? "  - " : "  ", mo
            for (l = 1; l <= nlib; l++)
                if ((mo, l) in step) printf "  %s %.1f (%.2f)", libs[l], step[mo, l], (step[mo, l] > 0 ? step[mo, bi] / step[mo, l] : 0)
            printf "\n"
        }
    }
}' "${csvs[@]}"

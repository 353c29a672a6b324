#!/usr/bin/env bash
# Fuzzes the file readers with libFuzzer for SECONDS each (default 60): the safetensors reader,
# the JPEG/PNG decoders, the compressed-model reader, the training-checkpoint reader, the CIFAR
# binary reader, the ImageFolder scan, the ADE20K scan and the COCO reader (tests/fuzz/). Configures a clang build
# in build-fuzz, seeds each harness's corpus in a temporary directory with files from its
# seed-writing twin (plus any tests/fixtures/*.safetensors small enough to mutate, for the
# safetensors reader), runs the harnesses one after another, or GSQ_FUZZ_JOBS at a time, and
# prints each one's executions and a summary. Before fuzzing, each harness replays its seeds once
# (the CTest tests NAME:seeds, label fuzz). Exits non-zero on a crash; crash inputs are kept in
# build-fuzz/artifacts/.
# Usage: scripts/fuzz.sh [SECONDS [HARNESS...]]   (HARNESS: fuzz_safetensors, fuzz_image,
# fuzz_compressed, fuzz_checkpoint, fuzz_cifar, fuzz_folder, fuzz_ade20k, fuzz_coco; default all, or
# GSQ_FUZZ_ONLY="...")
set -euo pipefail
seconds="${1:-60}"
if [ "$#" -gt 0 ]; then shift; fi
all="fuzz_safetensors fuzz_image fuzz_compressed fuzz_checkpoint fuzz_cifar fuzz_folder fuzz_ade20k fuzz_coco"
selected="${*:-${GSQ_FUZZ_ONLY:-$all}}"
parallel="${GSQ_FUZZ_JOBS:-1}"
case "$seconds$parallel" in
    ''|*[!0-9]*) echo "fuzz.sh: SECONDS and GSQ_FUZZ_JOBS must be whole numbers" >&2; exit 2 ;;
esac
targets=()
for name in $selected; do
    case " $all " in
        *" $name "*) targets+=("$name" "${name}_seeds") ;;
        *) echo "fuzz.sh: unknown harness '$name' (one of: $all)" >&2; exit 2 ;;
    esac
done
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="$root/build-fuzz"
jobs="$(nproc 2>/dev/null || echo 2)"

cmake -S "$root" -B "$build" -DCMAKE_C_COMPILER=clang -DGSQ_FUZZ=ON -DGSQ_CUDA=OFF -DGSQ_BENCH=OFF \
      -DGSQ_NATIVE=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$jobs" --target "${targets[@]}"
ctest --test-dir "$build" -L fuzz -R "^($(echo $selected | tr ' ' '|')):seeds\$" --output-on-failure

work="$(mktemp -d /tmp/gsq-fuzz.XXXXXX)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$build/artifacts"
shopt -s nullglob
export OMP_NUM_THREADS=1 # the model harnesses run one small image at a time
# The checkpoint and dataset harnesses write files on every input: on a RAM disk when there is one.
if [ -d /dev/shm ] && [ -w /dev/shm ]; then export TMPDIR=/dev/shm; fi

# Dictionaries: safetensors syntax, the model files' metadata and names, the tree inputs of the
# dataset harnesses (tests/fuzz/fuzz_tree.h), and those plus COCO's JSON keys.
cat >"$work/st.dict" <<'DICT'
"{"
"}"
"\"dtype\""
"\"shape\""
"\"data_offsets\""
"\"__metadata__\""
"\"F32\""
"\"F16\""
"\"BF16\""
"\"I64\""
"\"F8_E4M3\""
"\\u0000"
"\\ud800"
"-0"
"1e300"
"1.5"
"9007199254740992"
"18446744073709551615"
DICT
cp "$work/st.dict" "$work/model.dict"
cat >>"$work/model.dict" <<'DICT'
"\"U8\""
"\"I8\""
"\"U16\""
"\"int8\""
"\"int4\""
"\"w4a8\""
"\"2:4\""
"\"4:8\""
"\"avg\""
"\"token\""
".values"
".meta"
".qweight"
".weight_scale"
".input_scale"
".output_scale"
"optim.exp_avg."
"optim.exp_avg_sq."
"\"train.step\""
"\"quant.mode\""
"\"quant.lsq\""
"\"quant.lsq.steps\""
"\"quant.attention\""
"\"quant.weight_calibration\""
"quant.blocks.0."
"quant.lsq.exp_avg"
"\"num_heads\""
"\"class_names\""
"blocks.1."
DICT
cat >"$work/tree.dict" <<'DICT'
"\x0a--\x0a"
"/"
"*3073"
"*3074"
".png"
".jpg"
".JPEG"
"."
".."
"data_batch_1.bin"
"data_batch_5.bin"
"test_batch.bin"
"train.bin"
"test.bin"
"batches.meta.txt"
"fine_label_names.txt"
"images/training/"
"annotations/training/"
DICT
cp "$work/tree.dict" "$work/coco.dict"
cat >>"$work/coco.dict" <<'DICT'
"annotations/instances_val.json\x0a"
"val/"
"{"
"}"
"["
"]"
"\"images\""
"\"annotations\""
"\"categories\""
"\"id\""
"\"name\""
"\"file_name\""
"\"width\""
"\"height\""
"\"image_id\""
"\"category_id\""
"\"bbox\""
"\"area\""
"\"iscrowd\""
"1e999"
"-0"
"9007199254740993"
"2147483648"
"\\u0000"
"../"
DICT

# Seeds and flags per harness: a corpus directory seeded by the seed-writing twin, then the
# harness's -max_len and dictionary.
prepare() {
    local name="$1" corpus="$work/$1"
    mkdir -p "$corpus"
    "$build/tests/fuzz/${name}_seeds" "$corpus"
    case "$name" in
        fuzz_safetensors)
            for f in "$root"/tests/fixtures/*.safetensors; do # only fixtures that fit in -max_len
                if [ "$(stat -c %s "$f")" -le 4096 ]; then cp "$f" "$corpus/"; fi
            done
            echo "-max_len=4096 -dict=$work/st.dict" ;;
        fuzz_image) echo "-max_len=16384" ;;
        fuzz_compressed) echo "-max_len=16384 -dict=$work/model.dict" ;;
        fuzz_checkpoint) echo "-max_len=24576 -dict=$work/model.dict" ;;
        fuzz_cifar) echo "-max_len=8192 -dict=$work/tree.dict" ;;
        fuzz_folder) echo "-max_len=16384 -dict=$work/tree.dict" ;;
        fuzz_ade20k) echo "-max_len=16384 -dict=$work/tree.dict" ;;
        fuzz_coco) echo "-max_len=16384 -dict=$work/coco.dict" ;;
    esac
}

# run_fuzzer NAME: fuzzes for $seconds with its output in $work/NAME.log; writes "RC EXECUTIONS
# SECONDS" to $work/NAME.result
run_fuzzer() {
    local name="$1" flags start rc
    flags="$(prepare "$name")"
    echo "fuzz: $name: $(find "$work/$name" -type f | wc -l) seeds, ${seconds}s"
    start="$(date +%s)"
    set +e
    # shellcheck disable=SC2086 # flags are words
    "$build/tests/fuzz/$name" "$work/$name" $flags -max_total_time="$seconds" -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$build/artifacts/$name-" \
        >"$work/$name.log" 2>&1
    rc=$?
    set -e
    local execs
    execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$name.log")"
    echo "$rc ${execs:-?} $(($(date +%s) - start))" >"$work/$name.result"
    if [ "$rc" -ne 0 ]; then
        tail -n 40 "$work/$name.log" >&2
        echo "fuzz: $name FAILED (exit $rc); reproducer in $build/artifacts/" >&2
    else
        echo "fuzz: $name: ${execs:-?} executions, no crash"
    fi
}

for name in $selected; do
    if [ "$parallel" -le 1 ]; then
        run_fuzzer "$name"
        continue
    fi
    while [ "$(jobs -rp | wc -l)" -ge "$parallel" ]; do wait -n || true; done
    run_fuzzer "$name" &
done
wait

failed="" total=0 count=0
for name in $selected; do
    rc=1 execs="?" secs="?"
    if [ -f "$work/$name.result" ]; then read -r rc execs secs <"$work/$name.result"; fi
    printf 'fuzz: %-17s %4ss %12s executions  %s\n' "$name" "$secs" "$execs" \
        "$([ "$rc" -eq 0 ] && echo ok || echo "FAILED (exit $rc)")"
    [ "$rc" -eq 0 ] || failed="$failed $name"
    [ "$execs" = "?" ] || total=$((total + execs))
    count=$((count + 1))
done
if [ -n "$failed" ]; then
    echo "fuzz: FAILED:$failed; reproducers in $build/artifacts/" >&2
    exit 1
fi
echo "fuzz: $count harness(es), ${seconds}s each, $total executions in all, no crashes"

#!/usr/bin/env bash
# Fuzzes the safetensors reader, then the JPEG/PNG decoders, with libFuzzer for SECONDS each
# (default 60): configures a clang build in build-fuzz, seeds corpora in a temporary directory
# (files made by the safetensors writer and by libjpeg/libpng, plus any tests/fixtures/*.safetensors
# small enough to mutate), runs fuzz_safetensors and fuzz_image, and exits non-zero on a crash.
# Crash inputs are kept in build-fuzz/artifacts/. Usage: scripts/fuzz.sh [SECONDS]
set -euo pipefail
seconds="${1:-60}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="$root/build-fuzz"
jobs="$(nproc 2>/dev/null || echo 2)"

cmake -S "$root" -B "$build" -DCMAKE_C_COMPILER=clang -DGSQ_FUZZ=ON -DGSQ_CUDA=OFF -DGSQ_BENCH=OFF \
      -DGSQ_NATIVE=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$jobs" --target fuzz_safetensors fuzz_safetensors_seeds fuzz_image fuzz_image_seeds

work="$(mktemp -d /tmp/gsq-fuzz.XXXXXX)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus" "$build/artifacts"
"$build/tests/fuzz/fuzz_safetensors_seeds" "$work/corpus"
shopt -s nullglob
max_len=4096
for f in "$root"/tests/fixtures/*.safetensors; do   # only fixtures that fit in -max_len
    if [ "$(stat -c %s "$f")" -le "$max_len" ]; then cp "$f" "$work/corpus/"; fi
done
cat >"$work/dict" <<'DICT'
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
# run_fuzzer NAME CORPUS [EXTRA FLAGS...]: fuzzes for $seconds, fails the script on a crash
run_fuzzer() {
    local name="$1" corpus="$2"
    shift 2
    echo "fuzz: $name, $(ls "$corpus" | wc -l) seeds, ${seconds}s"
    set +e
    "$build/tests/fuzz/$name" "$corpus" "$@" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$build/artifacts/$name-"
    local rc=$?
    set -e
    if [ "$rc" -ne 0 ]; then
        echo "fuzz: $name FAILED (exit $rc); reproducer in $build/artifacts/" >&2
        exit "$rc"
    fi
}
run_fuzzer fuzz_safetensors "$work/corpus" -dict="$work/dict" -max_len="$max_len"
mkdir -p "$work/images"
"$build/tests/fuzz/fuzz_image_seeds" "$work/images"
run_fuzzer fuzz_image "$work/images" -max_len=16384
echo "fuzz: no crashes in ${seconds}s per harness"

#!/usr/bin/env bash
# Builds libgpusq, the gpusq program and the tests for 64-bit Arm Linux with Debian's cross
# compiler, runs the program under qemu-user, and the unit tests too where qemu-user can start
# threads: proves that the library builds and works off x86, where the engine runs its reference
# kernels (without MPI: the arm64 Open MPI is not installed). Installs what it needs (the cross compiler, qemu-user, the
# arm64 libraries through Debian multiarch) unless GSQ_CROSS_NO_INSTALL=1. Build: build-aarch64.
# Usage: scripts/cross-aarch64.sh [CTEST_ARGS...]   (default: -L unit)
set -euo pipefail
cd "$(dirname "$0")/.."
libs=(libopenblas-dev libcjson-dev libjpeg62-turbo-dev libpng-dev libprotobuf-c-dev)
if [ "${GSQ_CROSS_NO_INSTALL:-0}" != 1 ]; then
    arm=()
    for p in "${libs[@]}"; do arm+=("$p:arm64"); done
    need=()
    for p in gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user "${arm[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || need+=("$p")
    done
    if [ ${#need[@]} -gt 0 ]; then
        sudo=""
        [ "$(id -u)" -eq 0 ] || sudo=sudo
        dpkg --print-foreign-architectures | grep -qx arm64 || $sudo dpkg --add-architecture arm64
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    fi
    echo "cross-aarch64: toolchain and arm64 libraries present"
fi
cmake -S . -B build-aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake -DCMAKE_BUILD_TYPE=Release \
      -DGSQ_USE_DNNL=OFF -DGSQ_CUDA=OFF -DGSQ_BENCH=OFF -DGSQ_MPI=OFF >/dev/null
cmake --build build-aarch64 -j"$(nproc)"
readelf -h build-aarch64/gpusq | grep -q 'Machine: *AArch64' || { echo "cross-aarch64: build-aarch64/gpusq is not an aarch64 program" >&2; exit 1; }
# Under qemu-user: a smoke run of the program (one thread), then the unit tests where qemu can
# start threads (on some sandboxes its clone() never returns: a probe says so first).
run_arm() { OMP_NUM_THREADS=1 timeout 300 qemu-aarch64 -L /usr/aarch64-linux-gnu "$@"; }
run_arm build-aarch64/gpusq info --config gpusq_demo | head -n 4
probe="$(mktemp -d)"
trap 'rm -rf "$probe"' EXIT
printf '#include <pthread.h>\nstatic void *f(void *a) { return a; }\nint main(void) { pthread_t t;\n'\
'return pthread_create(&t, 0, f, 0) || pthread_join(t, 0); }\n' >"$probe/t.c"
aarch64-linux-gnu-gcc "$probe/t.c" -o "$probe/t" -lpthread
if ! timeout 10 qemu-aarch64 -L /usr/aarch64-linux-gnu "$probe/t"; then
    echo "cross-aarch64: built; unit tests not run: qemu-aarch64 cannot start a thread on this machine"
    exit 0
fi
if [ $# -eq 0 ]; then set -- -L unit; fi
ctest --test-dir build-aarch64 --output-on-failure "$@"

# Cross-compiling gpusq for 64-bit Arm Linux with Debian's cross compiler (gcc-aarch64-linux-gnu)
# and the arm64 libraries of a multiarch install (scripts/cross-aarch64.sh sets both up). Tests
# run under qemu-user through CMAKE_CROSSCOMPILING_EMULATOR.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64 -L /usr/aarch64-linux-gnu)
set(PKG_CONFIG_EXECUTABLE aarch64-linux-gnu-pkg-config CACHE FILEPATH "")
# -march=native means the build machine's CPU: never right for another architecture
set(GSQ_NATIVE OFF CACHE BOOL "")

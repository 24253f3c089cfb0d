# Cross-compiles kiln's runtime, kiln-rt and tests for 64-bit Arm (Raspberry Pi 4/5) with
# Debian's g++-aarch64-linux-gnu. Tests run through qemu-aarch64; QEMU_CPU picks the core model
# (cortex-a72 = Pi 4, cortex-a76 = Pi 5 class). The cross sysroot supplies libc/libstdc++, so
# nothing arm64 needs to be installed system-wide (that breaks threaded programs under qemu).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64;-L;/usr/aarch64-linux-gnu)

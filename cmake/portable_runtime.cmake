# The board runtime: libkiln_runtime.so and kiln-rt cross-built with zig (cmake/toolchains/zig.cmake)
# against glibc 2.17 and a static libc++, one build per architecture in KILN_PORTABLE_RUNTIMES, in
# <build>/portable-<arch>/. They need nothing beyond libc, libm, libpthread and libdl of any glibc
# since 2.17, so they run on Raspberry Pi OS bullseye as on bookworm. `kiln compile --bundle` ships
# them (tools/kiln/bundle.cpp), the kiln wheel carries them (kiln/runtimes/<arch>/, cmake/
# python_wheel.cmake), and so do the kiln-runtime wheels (scripts/build_runtime_wheel.py).
# build-aarch64/ stays the g++ build that the unit tests run under qemu; the pytest suites run
# bundles, and so these binaries, under qemu.
set(KILN_PORTABLE_RUNTIMES "" CACHE STRING
    "architectures (aarch64, x86_64) whose board runtime is built with zig; empty: none")
set(KILN_ZIG "" CACHE FILEPATH "zig (scripts/setup_zig.sh); empty: the ziglang Python package")
set(KILN_PORTABLE_GLIBC 2.17 CACHE STRING "the oldest glibc the board runtime loads on")

add_custom_target(kiln_portable_runtimes)  # the wheel build asks for it (pyproject.toml)
if(KILN_PORTABLE_RUNTIMES)
  if(NOT KILN_ZIG)
    # a wheel build: pip's isolated build env has ziglang (pyproject.toml's build requirements)
    find_package(Python COMPONENTS Interpreter REQUIRED)
    execute_process(
      COMMAND ${Python_EXECUTABLE} -c
              "import os, ziglang; print(os.path.join(os.path.dirname(ziglang.__file__), 'zig'))"
      OUTPUT_VARIABLE found OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE rc ERROR_QUIET)
    if(NOT rc EQUAL 0)
      message(FATAL_ERROR "KILN_PORTABLE_RUNTIMES needs zig: -DKILN_ZIG=$(scripts/setup_zig.sh | "
                          "tail -1), or the ziglang package for ${Python_EXECUTABLE}")
    endif()
    set(KILN_ZIG ${found} CACHE FILEPATH "" FORCE)
  endif()
  include(ExternalProject)
  foreach(arch IN LISTS KILN_PORTABLE_RUNTIMES)
    set(dir ${CMAKE_BINARY_DIR}/portable-${arch})
    ExternalProject_Add(kiln_portable_runtime_${arch}
      SOURCE_DIR ${PROJECT_SOURCE_DIR}
      BINARY_DIR ${dir}
      CMAKE_ARGS -DCMAKE_BUILD_TYPE=Release -DKILN_BUILD_TESTS=OFF -DKILN_BUILD_BENCH=OFF
                 -DCMAKE_TOOLCHAIN_FILE=${PROJECT_SOURCE_DIR}/cmake/toolchains/zig.cmake
                 -DKILN_ZIG=${KILN_ZIG} -DKILN_ZIG_TARGET=${arch}-linux-gnu.${KILN_PORTABLE_GLIBC}
      BUILD_COMMAND ${CMAKE_COMMAND} --build ${dir} --target kiln_runtime kiln-rt
      BUILD_ALWAYS ON  # its own ninja decides what changed in the shared sources
      INSTALL_COMMAND "")
    add_dependencies(kiln_portable_runtimes kiln_portable_runtime_${arch})
  endforeach()
endif()

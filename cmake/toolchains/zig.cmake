# Cross-compiles the board runtime (libkiln_runtime.so, kiln-rt) with zig against an old glibc and
# a static libc++, so that it loads on any glibc Linux of its architecture: cmake/portable_runtime.cmake
# configures it with KILN_ZIG (the zig executable, scripts/setup_zig.sh) and KILN_ZIG_TARGET (a zig
# target naming its glibc, e.g. aarch64-linux-gnu.2.17). Why not Debian's cross g++: see
# scripts/setup_zig.sh.
if(NOT KILN_ZIG OR NOT KILN_ZIG_TARGET)
  message(FATAL_ERROR "cmake/toolchains/zig.cmake needs -DKILN_ZIG=<zig> (scripts/setup_zig.sh) "
                      "and -DKILN_ZIG_TARGET=<arch>-linux-gnu.<glibc>")
endif()
# try_compile re-reads this file in its own dir: hand it the two settings
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES KILN_ZIG KILN_ZIG_TARGET)

string(REGEX MATCH "^[^-]+" KILN_ZIG_ARCH "${KILN_ZIG_TARGET}")
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR ${KILN_ZIG_ARCH})

# CMake wants one executable per tool: `zig cc`, `zig c++`, `zig ar`, `zig ranlib` get a script each.
set(wrappers ${CMAKE_BINARY_DIR}/zig-bin)
foreach(tool cc c++ ar ranlib)
  set(target_flag "")
  if(tool MATCHES "^c")
    set(target_flag "-target ${KILN_ZIG_TARGET}")
  endif()
  file(CONFIGURE OUTPUT ${wrappers}/zig-${tool}
       CONTENT "#!/bin/sh\nexec \"${KILN_ZIG}\" ${tool} ${target_flag} \"$@\"\n" @ONLY)
  file(CHMOD ${wrappers}/zig-${tool} PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ
       GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)
endforeach()
set(CMAKE_C_COMPILER ${wrappers}/zig-cc)
set(CMAKE_CXX_COMPILER ${wrappers}/zig-c++)
set(CMAKE_AR ${wrappers}/zig-ar CACHE FILEPATH "")
set(CMAKE_RANLIB ${wrappers}/zig-ranlib CACHE FILEPATH "")
# no debug info in what is copied to the board (else 15 MB instead of 1 MB)
set(CMAKE_SHARED_LINKER_FLAGS_INIT "-s")
set(CMAKE_EXE_LINKER_FLAGS_INIT "-s")

# Never the host's libraries; headers only through the project's own links (CMakeLists.txt).
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# Install rules of the `kiln` wheel (pyproject.toml, scikit-build-core: `pip install .`). The
# Python package python/kiln/ is copied by scikit-build-core; this adds the binaries and the headers
# that `kiln compile` hands to g++, all inside the package directory so that nothing depends on
# this source tree once installed (compiler/util/install_layout.h):
#   kiln/kiln, kiln/kiln-rt, kiln/libkiln_runtime.so      run path $ORIGIN (INSTALL_RPATH)
#   kiln/kiln-tune-probe                                  static: `kiln tune` on this machine
#   kiln/kernels/kiln/kernels/...  kiln/include/kiln/...  generated code's -I
#   kiln/share/infer.py                                   for `kiln compile --bundle`
#   kiln/runtimes/<arch>/libkiln_runtime.so, kiln-rt      the board runtime (portable_runtime.cmake)
# Component kiln_wheel, outside `cmake --install`'s default. Defined in every host build, not only
# in a wheel build: an installed target's build-tree link line differs (CMake pads its run path),
# so a wheel build reusing build/ (tests/python/test_wheels.py) would relink kiln otherwise.
set(KILN_WHEEL_DIR kiln)
install(TARGETS kiln kiln-rt kiln-tune-probe RUNTIME DESTINATION ${KILN_WHEEL_DIR} COMPONENT kiln_wheel
        EXCLUDE_FROM_ALL)
install(TARGETS kiln_runtime LIBRARY DESTINATION ${KILN_WHEEL_DIR} COMPONENT kiln_wheel
        EXCLUDE_FROM_ALL)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/kernels/ DESTINATION ${KILN_WHEEL_DIR}/kernels
        COMPONENT kiln_wheel EXCLUDE_FROM_ALL)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/ DESTINATION ${KILN_WHEEL_DIR}/include
        COMPONENT kiln_wheel EXCLUDE_FROM_ALL)
install(FILES ${PROJECT_SOURCE_DIR}/examples/infer.py DESTINATION ${KILN_WHEEL_DIR}/share
        COMPONENT kiln_wheel EXCLUDE_FROM_ALL)
foreach(arch IN LISTS KILN_PORTABLE_RUNTIMES)
  install(PROGRAMS ${CMAKE_BINARY_DIR}/portable-${arch}/runtime/libkiln_runtime.so
                   ${CMAKE_BINARY_DIR}/portable-${arch}/tools/kiln-rt/kiln-rt
          DESTINATION ${KILN_WHEEL_DIR}/runtimes/${arch} COMPONENT kiln_wheel EXCLUDE_FROM_ALL)
endforeach()

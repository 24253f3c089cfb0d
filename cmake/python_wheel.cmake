# Install rules of the `kiln` wheel (pyproject.toml, scikit-build-core: `pip install .`). The
# Python package python/kiln/ is copied by scikit-build-core; this adds the binaries and the headers
# that `kiln compile` hands to g++, all inside the package directory so that nothing depends on
# this source tree once installed (compiler/util/install_layout.h):
#   kiln/kiln, kiln/kiln-rt, kiln/libkiln_runtime.so      run path $ORIGIN
#   kiln/kernels/kiln/kernels/...  kiln/include/kiln/...  generated code's -I
#   kiln/share/infer.py                                   for `kiln compile --bundle`
set(KILN_WHEEL_DIR kiln)
set_target_properties(kiln kiln-rt PROPERTIES INSTALL_RPATH "$ORIGIN")
install(TARGETS kiln kiln-rt RUNTIME DESTINATION ${KILN_WHEEL_DIR})
install(TARGETS kiln_runtime LIBRARY DESTINATION ${KILN_WHEEL_DIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/kernels/ DESTINATION ${KILN_WHEEL_DIR}/kernels)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/ DESTINATION ${KILN_WHEEL_DIR}/include)
install(FILES ${PROJECT_SOURCE_DIR}/examples/infer.py DESTINATION ${KILN_WHEEL_DIR}/share)

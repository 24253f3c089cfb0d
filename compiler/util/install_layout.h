// Where the compiler finds its own files: the source and build tree it was built from, or an
// installed Python package (the `kiln` wheel), whose directory holds the binaries next to the
// headers that generated code includes:
//   kiln/kiln, kiln/kiln-rt, kiln/libkiln_runtime.so
//   kiln/kernels/kiln/kernels/...  kiln/include/kiln/...  kiln/share/infer.py
//   kiln/__init__.py, kiln/runtime.py (+ the rest of the Python package)
#pragma once

#include <string>

namespace kiln::util {

// The directory of the running executable when it runs from an installed package (the layout
// above: kernels/ and include/ beside it), else "" (a build tree: use the compiled-in paths).
std::string installed_package_dir();

}  // namespace kiln::util

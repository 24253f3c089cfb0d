// `kiln compile ... --bundle out.tar.gz`: one archive with everything a board needs to run the
// artifact: the artifact files, the target's libkiln_runtime.so and kiln-rt, the Python runtime
// (kiln/__init__.py, kiln/runtime.py), examples/infer.py, a README and SHA256SUMS.
#pragma once

#include <string>

#include "compiler/ir/status.h"

namespace kiln::tools {

struct BundleOptions {
  std::string artifact_dir;
  std::string output;       // out.tar.gz; the archive holds one directory named "out"
  std::string target_name;  // rpi5, native, ...
  std::string target_arch;  // x86_64 | aarch64
};

// Runtime binaries are looked up in $KILN_RUNTIME_DIR / $KILN_AARCH64_RUNTIME_DIR, else the board
// runtime built with zig (the kiln wheel's runtimes/<arch>/, a build tree's portable-<arch>/), else
// the g++ build (the host build tree; build-aarch64/ next to it). A directory may be a build tree
// (runtime/, tools/kiln-rt/) or flat.
// The Python files come from $KILN_PYTHON_DIR (the folder holding kiln/) or the source tree.
Status make_bundle(const BundleOptions& options, uint64_t* archive_bytes);

// The checks make_bundle starts with (runtime binaries for `arch`, Python files), so that
// `kiln compile --bundle` can fail before compiling.
Status check_bundle_inputs(const std::string& arch);

}  // namespace kiln::tools

// Drives the target's C++ compiler: compiles the generated sources (in parallel) and links
// model.so. Kernel and ABI headers come from KILN_KERNELS_DIR / KILN_INCLUDE_DIR if set, else
// from the installed package (compiler/util/install_layout.h) or else the source tree this
// compiler was built from; KILN_EXTRA_CXXFLAGS adds compile and link
// flags for a host-architecture model.so (scripts/test.sh --sanitize).
#pragma once

#include <string>
#include <vector>

#include "compiler/ir/status.h"
#include "compiler/target/target.h"

namespace kiln::codegen {

// Flags every generated translation unit is compiled with (before the target's flags).
std::vector<std::string> base_cxx_flags();

// Compiles each source to an object next to it, links `output` (written atomically) and
// removes the objects. At most `jobs` compiler processes run at once.
Status build_shared_library(const target::Target& target, const std::vector<std::string>& sources,
                            const std::string& output, int jobs);

}  // namespace kiln::codegen

// `kiln variants`: the FP32 and INT8 GEMM variants built for this machine's architecture, from
// the lists the dispatch tables are made of, and whether this CPU can run each one.
#pragma once

namespace kiln::tools {

int print_variants(bool json);

}  // namespace kiln::tools

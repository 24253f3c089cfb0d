// `kiln bench --compare`: forwards to bench/compare.py (kiln vs PyTorch / ONNX Runtime / TVM).
#pragma once

namespace kiln::tools {

// argv[1] is "bench": true when the rest asks for --compare.
bool wants_compare(int argc, char** argv);
// Execs /usr/bin/python3 bench/compare.py --systems kiln,PEERS ...; returns only on failure.
int bench_compare_main(int argc, char** argv);

}  // namespace kiln::tools

// The inputs INT8 calibration and `kiln quant-report` run the FP32 graph on: the user's where given
// (`--calibrate`), else generated. Generated: token ids uniform in [0, vocab) for the first
// integer input that indexes an embedding table, ones for inputs named *mask*, zeros for other
// integers, N(0, 1) for floats; seed 0. Symbols: "batch" -> batch, every other -> seq (at most
// its compiled maximum), except those a given array's dims fix.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "compiler/ir/graph.h"

namespace kiln::quantize {

struct CalibrationInputs {
  std::map<std::string, ir::Tensor> tensors;     // every graph input by name
  std::map<std::string, std::string> described;  // input -> "token ids in [0, 30522)", "given", ...
};

// `given` binds some inputs (dtype already the graph input's); the rest are generated.
Result<CalibrationInputs> calibration_inputs(const ir::Graph& g,
                                             const std::map<std::string, ir::Tensor>& given,
                                             int64_t seq, int64_t batch);

}  // namespace kiln::quantize

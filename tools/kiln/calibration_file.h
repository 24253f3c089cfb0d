// `--calibrate FILE` of `kiln compile --quantize int8` and `kiln quant-report`: an .npz from
// numpy.savez whose keys are graph input names, or an .npy for the first graph input, read into
// tensors of the graph inputs' dtypes (int32 / int64 ids interchangeable).
#pragma once

#include <map>
#include <string>

#include "compiler/ir/graph.h"

namespace kiln::tools {

Result<std::map<std::string, ir::Tensor>> read_calibration_file(const std::string& path,
                                                                const ir::Graph& g);

}  // namespace kiln::tools

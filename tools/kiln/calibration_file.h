// `--calibrate FILE` of `kiln compile --quantize int8` and `kiln quant-report`: an .npz from
// numpy.savez whose keys are graph input names, or an .npy for the first graph input, read into
// tensors of the graph inputs' dtypes (int32 / int64 ids interchangeable); or, for a compile with
// a tokenizer, a .txt with one text per line.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "compiler/ir/graph.h"

namespace kiln::tools {

// Texts to token ids: the special tokens included, at most max_len ids.
struct TextEncoder {
  std::function<std::vector<int64_t>(const std::string& text, int64_t max_len)> encode;
  int64_t pad_id = 0;
};

// A .txt (needs `text`): the first kMaxCalibrationTexts non-empty lines, each at most
// min(kCalibrationTextTokens, the compiled maximum) tokens, padded to the longest; they fill the
// token-id input (the first integer input not named *mask*) and inputs named *mask* (1 for
// tokens, 0 for padding); other inputs are generated (quantize/calibration.h).
constexpr int kMaxCalibrationTexts = 64;
constexpr int64_t kCalibrationTextTokens = 128;

Result<std::map<std::string, ir::Tensor>> read_calibration_file(const std::string& path,
                                                                const ir::Graph& g,
                                                                const TextEncoder* text = nullptr);

}  // namespace kiln::tools

// Where INT8 loses accuracy, measured per Dense of a pipeline-output graph (`kiln quant-report`):
// the graph runs once in FP32 on given inputs (reference evaluator, every value kept), then once
// per Dense with only that Dense emulating kiln's INT8 GEMM (activation rows quantized as
// kernels/kiln/kernels/gemm/s8_quantize.h does, weights as s8_pack.h's quantize_b_s8 with the
// node's weight_group, quantize.h: per output channel on a graph quantize_int8 has not marked;
// integer dot products in double, then the same epilogue), re-running only the nodes downstream
// of it. Host only, single-threaded; not the compiled kernels (the artifact-based
// comparison of those is `kiln quant-report --compiled`).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "compiler/ir/graph.h"

namespace kiln::quantize {

struct QuantReportOptions {
  int top = 8;                   // channels listed per Dense, largest input range first
  double outlier_ratio = 8.0;    // a channel whose range is >= this x the median's is an outlier
  bool per_layer_cosine = true;  // false: skip the one-Dense-quantized runs (statistics only)
};

struct ChannelRange {
  int64_t channel = 0;
  float max_abs = 0;           // max |x[., channel]| over every row of the Dense's input
  double ratio_to_median = 0;  // max_abs / the median channel's max_abs (inf if that is 0)
};

struct DenseQuantStats {
  std::string node, weight;  // node name after fusion, weight value name
  int64_t rows = 0, k = 0, n = 0;
  float median_range = 0;             // median over channels of max |x|
  std::vector<ChannelRange> top;      // options.top channels, largest range first
  int64_t outliers = 0;               // channels with ratio_to_median >= options.outlier_ratio
  bool smoothed = false;              // has act_smooth (smooth.h): errors are of x / s, W * s
  int64_t weight_group = 0;           // weight scales per group of this many k (0: per channel)
  double weight_error = 0;            // ||Wq - W||_F / ||W||_F, int8 with those scales
  double activation_error = 0;        // ||Xq - X||_F / ||X||_F, kiln's per-row int8
  double gemm_error = 0;              // ||Xq Wq - X W||_F / ||X W||_F (before the epilogue)
  double output_error = 0;            // the same for the Dense's output (bias, GELU, residual, LN)
  std::vector<double> output_cosine;  // per float model output, only this Dense int8
  double min_cosine = 1;              // min over output_cosine
};

struct QuantReport {
  std::vector<std::string> outputs;     // float model outputs compared (graph output names)
  std::vector<DenseQuantStats> layers;  // graph order
  std::vector<double> all_cosine;       // per output, every Dense int8 (embeddings stay FP32)
  double all_min_cosine = 1;
};

// `g` is a pipeline output (passes::run_pipeline); `inputs` binds every graph input by name with
// concrete dims (they fix the symbols). Errors name the node that could not be evaluated.
Result<QuantReport> quant_report(const ir::Graph& g,
                                 const std::map<std::string, ir::Tensor>& inputs,
                                 const QuantReportOptions& options = {});

// Calibration for smoothing (smooth.h): the graph once in FP32 on `inputs` (as above), and per
// Dense with a constant 2-D float32 weight the largest |x[., k]| of its input over every row, by
// node name.
Result<std::map<std::string, std::vector<float>>> dense_input_ranges(
    const ir::Graph& g, const std::map<std::string, ir::Tensor>& inputs);

}  // namespace kiln::quantize

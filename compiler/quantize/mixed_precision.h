// Automatic mixed precision for INT8 (`kiln compile --quantize int8 --min-cosine C`): the fewest
// layers left in FP32 for the INT8 model to stay within a cosine of the FP32 one on the
// calibration inputs (docs/architecture.md, "Mixed precision").
//
// Measured on the host INT8 emulation (emulate.h) of the marked, smoothed graph:
//   1. the FP32 run and the all-INT8 run; done if the latter already reaches the target;
//   2. per INT8 weight (Dense weight or embedding table), the run with only it in INT8 (only the
//      nodes downstream of it re-run): its loss 1 - cosine ranks the candidates;
//   3. binary search over k for the fewest most-damaging candidates to keep in FP32: each probe is
//      one run with every other candidate INT8. The answer is always a measured run (or all FP32).
// Cosine: per row of each float output's last axis (a token's or a sentence's vector), the mean
// over rows, the worst output counting. The chosen nodes lose their INT8 mark and weight group,
// and smoothed Dense among them get their original weight back (smooth.h).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "compiler/ir/graph.h"
#include "compiler/quantize/smooth.h"

namespace kiln::quantize {

struct MixedPrecisionOptions {
  double min_cosine = 0.9995;  // in (0, 1]
  int threads = 1;             // candidate runs at once (step 2)
};

struct Fidelity {
  double mean_cosine = 1;   // min over float outputs of the mean per-vector cosine
  double worst_cosine = 1;  // min over every vector of every float output
};

struct LayerChoice {
  std::string name;     // Dense node name, or "<node> (<table>)" for an embedding table
  std::string weight;   // the Dense's weight (before smoothing) or the table
  double alone_cosine;  // mean cosine with only this weight INT8
};

struct MixedPrecisionReport {
  Fidelity int8;                       // every candidate INT8
  Fidelity chosen;                     // the result (== int8 when nothing is kept)
  std::vector<LayerChoice> kept_fp32;  // most damaging first
  size_t candidates = 0;
  int runs = 0;  // emulated graph runs, the FP32 one included
};

// `g`: a pipeline output with INT8 marks (quantize.h), smoothed or not (`smoothing` may be null);
// `inputs` bind every graph input (calibration.h). Changes the marks of g (and `smoothing`).
Result<MixedPrecisionReport> keep_fp32_for_cosine(ir::Graph& g,
                                                  const std::map<std::string, ir::Tensor>& inputs,
                                                  SmoothReport* smoothing,
                                                  const MixedPrecisionOptions& options);

}  // namespace kiln::quantize

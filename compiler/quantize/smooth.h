// Activation smoothing for INT8 Dense layers (SmoothQuant, Xiao et al. 2022, folded into kiln's
// run-time quantizer; docs/architecture.md "Outlier channels").
//
// Trained BERT-family models carry a few input channels tens of times larger than the rest
// (LayerNorm gains and biases of "outlier dimensions", FFN neurons that fire on every token).
// Per-token INT8 then spends its 255 steps on those channels and rounds the others coarsely.
// For each INT8 Dense with calibrated input ranges a[k] = max |x[., k]| and weight ranges
// w[k] = max_n |W[k, n]|:
//   s[k] = a[k]^alpha / w[k]^(1 - alpha)        (1 where a or w is 0), normalised to median 1
//   W'[k, :] = W[k, :] * s[k]                   (a new constant; then per-channel int8 as before)
//   act_smooth[k] = 1 / s[k]                    (Dense input kActSmooth; the quantizer forms
//                                               x[., k] * act_smooth[k] before its min / max)
// so x' W' = x W exactly in real arithmetic while both x' and W' have flatter channel ranges.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "compiler/ir/graph.h"

namespace kiln::quantize {

constexpr double kDefaultSmoothAlpha = 0.5;

struct SmoothReport {
  std::vector<std::string> smoothed;  // Dense node names, graph order
  double largest_factor = 1;          // max over layers and channels of s[k] / min s[k]
  std::map<std::string, ir::Value*> original_weight;  // smoothed node -> its weight before
};

// `ranges`: node name -> a[k] for every Dense to smooth (dense_input_ranges, quant_report.h);
// every Dense marked int8 (quantize.h) with a constant 2-D float32 weight and K ranges, not all
// zero, is changed. Not only those with a channel far above the rest: on the real
// all-MiniLM-L6-v2 weights the QKV inputs (channels 4-6x the median) lose as much as the FFN ones
// (tests/quant/test_int8_pretrained.py: embedding cosine 0.99897 smoothing the 10 Dense with a
// channel >= 8x the median, 0.9993 smoothing all 24), and on flat inputs it costs nothing
// measurable (BERT-base INT8, random weights: 0.997-1.004x).
Result<SmoothReport> smooth_int8_activations(
    ir::Graph& g, const std::map<std::string, std::vector<float>>& ranges,
    double alpha = kDefaultSmoothAlpha);

// Undoes the smoothing of Dense `n` (a node of r.smoothed): its original weight again, no
// act_smooth (for a layer that stays FP32, whose GEMM has no quantizer to fold it into). No-op for
// a node that was not smoothed.
void remove_smoothing(ir::Node& n, SmoothReport& r);

}  // namespace kiln::quantize

// `kiln quant-report MODEL.onnx`: per Dense of the fused graph (the one --quantize int8 quantizes),
// the input channels with the largest range, weight / activation / output INT8 error and the
// model outputs' cosine to FP32 when only that Dense is INT8 (compiler/quantize/quant_report.h,
// the reference evaluator on the host). `--compiled` runs the older artifact comparison instead
// (quant_report.cpp: both artifacts compiled and run, errors accumulated layer after layer).
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "compiler/frontend/onnx/import.h"
#include "compiler/passes/pipeline.h"
#include "compiler/quantize/calibration.h"
#include "compiler/quantize/quant_report.h"
#include "compiler/quantize/quantize.h"
#include "compiler/quantize/smooth.h"
#include "compiler/quantize/weight_groups.h"
#include "kiln/kernels/gemm/s8_pack.h"
#include "tools/kiln/calibration_file.h"
#include "tools/kiln/compile.h"

namespace kiln::tools {
namespace {

using json = nlohmann::json;

struct LayerArgs {
  std::string model, calibrate, json_out;
  int64_t seq = 128, batch = 1;
  int top = 4;
  bool no_cosine = false, no_smoothing = false;
  int64_t weight_group = kernels::gemm::kS8WeightGroup;
};

// Graph inputs: from --calibrate where given, else generated (quantize/calibration.h). Prints one
// line per input.
Result<std::map<std::string, ir::Tensor>> make_inputs(const ir::Graph& g, const LayerArgs& a) {
  std::map<std::string, ir::Tensor> given;
  if (!a.calibrate.empty()) {
    KILN_ASSIGN_OR_RETURN(given, read_calibration_file(a.calibrate, g));
  }
  KILN_ASSIGN_OR_RETURN(quantize::CalibrationInputs in,
                        quantize::calibration_inputs(g, given, a.seq, a.batch));
  for (const ir::Value* v : g.inputs) {
    const std::string& what = in.described.at(v->name);
    std::printf("input  %-20s %s%s%s\n", v->name.c_str(), ir::dtype_name(v->dtype),
                what == "given" ? " from " : ", ",
                what == "given" ? a.calibrate.c_str() : what.c_str());
  }
  return std::move(in.tensors);
}

json to_json(const quantize::QuantReport& r) {
  json j;
  j["outputs"] = r.outputs;
  j["all_dense_int8_cosine"] = r.all_cosine;
  j["all_dense_int8_min_cosine"] = r.all_min_cosine;
  j["layers"] = json::array();
  for (const auto& l : r.layers) {
    json top = json::array();
    for (const auto& c : l.top)
      top.push_back(
          {{"channel", c.channel}, {"max_abs", c.max_abs}, {"ratio_to_median", c.ratio_to_median}});
    j["layers"].push_back({{"node", l.node},
                           {"weight", l.weight},
                           {"rows", l.rows},
                           {"k", l.k},
                           {"n", l.n},
                           {"median_range", l.median_range},
                           {"top_channels", top},
                           {"outlier_channels", l.outliers},
                           {"smoothed", l.smoothed},
                           {"weight_group", l.weight_group},
                           {"weight_error", l.weight_error},
                           {"activation_error", l.activation_error},
                           {"gemm_error", l.gemm_error},
                           {"output_error", l.output_error},
                           {"cosine", l.output_cosine},
                           {"min_cosine", l.min_cosine}});
  }
  return j;
}

void print(const quantize::QuantReport& r, const LayerArgs& a) {
  std::printf(
      "\nerrors are relative Frobenius norms of INT8 - FP32; cos: the model outputs' lowest"
      " cosine to FP32\nwith only that Dense INT8; top: input channels by max |x| (x the"
      " median channel's);\ns: the Dense is smoothed (as --quantize int8 compiles it; errors"
      " then are those of x / s and W * s)\n");
  if (a.weight_group > 0)
    std::printf(
        "weights: int8 scales per output channel and group of %lld input channels (per"
        " channel where K <= %lld; --int8-weight-group)\n",
        static_cast<long long>(a.weight_group), static_cast<long long>(a.weight_group));
  else
    std::printf("weights: int8, one scale per output channel (--int8-weight-group 0)\n");
  std::printf("\n%3s  %-46s %1s %10s %7s %7s %7s %7s %11s  %s\n", "#", "Dense (graph order)", "s",
              "K->N", "w err", "x err", "xW err", "out err", "cos", "top channels");
  int k = 0;
  for (const auto& l : r.layers) {
    std::string label = l.node;
    if (label.size() > 46) label = "..." + label.substr(label.size() - 43);
    std::string top;
    for (const auto& c : l.top) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%s%lld %.3g (%.1fx)", top.empty() ? "" : ", ",
                    static_cast<long long>(c.channel), c.max_abs, c.ratio_to_median);
      top += buf;
    }
    const std::string kn = std::to_string(l.k) + "->" + std::to_string(l.n);
    std::printf("%3d  %-46s %1s %10s %7.4f %7.4f %7.4f %7.4f %11.8f  %s\n", ++k, label.c_str(),
                l.smoothed ? "s" : "", kn.c_str(), l.weight_error, l.activation_error, l.gemm_error,
                l.output_error, a.no_cosine ? NAN : l.min_cosine, top.c_str());
  }
  std::printf("\nevery Dense INT8 (embeddings FP32):\n");
  for (size_t i = 0; i < r.outputs.size(); ++i)
    std::printf("  %-40s cosine %.8f\n", r.outputs[i].c_str(), r.all_cosine[i]);
}

}  // namespace

int quant_report_main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i)
    if (std::strcmp(argv[i], "--compiled") == 0) {
      std::vector<char*> rest(argv, argv + argc);
      rest.erase(rest.begin() + i);
      return quant_report_compiled_main(static_cast<int>(rest.size()), rest.data());
    }
  CLI::App app{
      "kiln quant-report: per Dense, input channel ranges, INT8 weight / activation / output "
      "error and the model's cosine to FP32 with only that Dense INT8 (host reference "
      "evaluator). --compiled [--quantize-exclude P --target T --threads N --keep]: compile and "
      "run FP32 and INT8 artifacts instead, errors accumulated layer by layer"};
  LayerArgs a;
  app.add_option("model", a.model, "ONNX model file")->required();
  app.add_option("--seq", a.seq, "sequence length of the generated inputs (default 128)");
  app.add_option("--batch", a.batch, "batch size of the generated inputs (default 1)");
  app.add_option("--calibrate", a.calibrate,
                 "inputs: FILE.npz (numpy.savez, keys = graph input names; others generated) or "
                 "FILE.npy (the first input, e.g. token ids [batch, seq])");
  app.add_option("--top", a.top, "input channels listed per Dense (default 4)");
  app.add_option("--json", a.json_out, "also write the report as JSON to this file");
  app.add_flag("--no-cosine", a.no_cosine,
               "skip the one-Dense-INT8 model runs (statistics only, one FP32 run)");
  app.add_flag("--no-smoothing", a.no_smoothing,
               "report INT8 without activation smoothing (default: smoothed on these inputs, as "
               "--quantize int8 compiles)");
  app.add_option("--int8-weight-group", a.weight_group,
                 "INT8 weight scales per group of N input channels, as kiln compile's; 0 = one "
                 "scale per output channel; default " +
                     std::to_string(kernels::gemm::kS8WeightGroup));
  app.name("kiln quant-report");
  CLI11_PARSE(app, argc, argv);
  if (a.seq < 1 || a.batch < 1 || a.top < 0) {
    std::fprintf(stderr, "kiln: error: quant-report: --seq and --batch must be >= 1, --top >= 0\n");
    return 1;
  }
  auto fail = [](const std::string& m) {
    std::fprintf(stderr, "kiln: error: quant-report: %s\n", m.c_str());
    return 1;
  };
  if (const std::string e = check_int8_weight_group(a.weight_group); !e.empty()) return fail(e);
  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  frontend::ImportOptions io;
  io.max_seq = a.seq;
  auto graph = frontend::import_onnx(a.model, io);
  if (!graph) return fail(graph.status().message());
  if (auto p = passes::run_pipeline(**graph); !p)
    return fail(a.model + ": " + p.status().message());
  std::printf("kiln quant-report %s\n", a.model.c_str());
  auto inputs = make_inputs(**graph, a);
  if (!inputs) return fail(inputs.status().message());
  // As the compile marks (each Dense's weight group) and smooths (ranges on these inputs).
  if (auto q = quantize::quantize_int8(**graph, {{}, a.weight_group}); !q)
    return fail(q.status().message());
  std::map<std::string, const ir::Value*> weight_before;  // smoothed Dense -> the model's weight
  if (!a.no_smoothing) {
    auto ranges = quantize::dense_input_ranges(**graph, *inputs);
    if (!ranges) return fail(ranges.status().message());
    auto smoothed = quantize::smooth_int8_activations(**graph, *ranges);
    if (!smoothed) return fail(smoothed.status().message());
    std::printf("smoothing: %zu Dense (--no-smoothing to see them without)\n",
                smoothed->smoothed.size());
    weight_before.insert(smoothed->original_weight.begin(), smoothed->original_weight.end());
  }
  if (a.weight_group > 0)
    std::printf("weight groups: %zu Dense keep them (where they pay, as the compile decides)\n",
                quantize::keep_weight_groups_that_pay(**graph).grouped.size());
  quantize::QuantReportOptions o;
  o.top = a.top;
  o.per_layer_cosine = !a.no_cosine;
  auto r = quantize::quant_report(**graph, *inputs, o);
  if (!r) return fail(r.status().message());
  for (quantize::DenseQuantStats& l : r->layers)  // the model's names, not W * s's
    if (auto it = weight_before.find(l.node); it != weight_before.end())
      l.weight = it->second->name;
  print(*r, a);
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  std::printf("%zu Dense layers in %.1f s\n", r->layers.size(), secs);
  if (!a.json_out.empty()) {
    json j = to_json(*r);
    j["model"] = a.model;
    j["seconds"] = secs;
    std::ofstream f(a.json_out);
    f << j.dump(1) << "\n";
    if (!f) return fail("cannot write " + a.json_out);
  }
  return 0;
}

}  // namespace kiln::tools

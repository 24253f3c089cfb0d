// `kiln quant-report MODEL.onnx`: per Dense of the fused graph (the one --quantize int8 quantizes),
// the input channels with the largest range, weight / activation / output INT8 error and the
// model outputs' cosine to FP32 when only that Dense is INT8 (compiler/quantize/quant_report.h,
// the reference evaluator on the host). `--compiled` runs the older artifact comparison instead
// (quant_report.cpp: both artifacts compiled and run, errors accumulated layer after layer).
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "compiler/frontend/onnx/import.h"
#include "compiler/passes/pipeline.h"
#include "compiler/quantize/quant_report.h"
#include "tools/kiln-rt/npy.h"
#include "tools/kiln/compile.h"

namespace kiln::tools {
namespace {

using json = nlohmann::json;

struct LayerArgs {
  std::string model, calibrate, json_out;
  int64_t seq = 128, batch = 1;
  int top = 4;
  bool no_cosine = false;
};

// The arrays of an .npz (a zip of .npy files) by name without ".npy"; numpy.savez's stored
// entries only (savez_compressed deflates: an error says so).
bool read_npz(const std::string& path, std::map<std::string, NpyArray>* out, std::string* error) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return *error = path + ": cannot open", false;
  std::stringstream ss;
  ss << f.rdbuf();
  const std::string z = ss.str();
  auto u16 = [&](size_t at) {
    return uint32_t(uint8_t(z[at])) | uint32_t(uint8_t(z[at + 1])) << 8;
  };
  auto u32 = [&](size_t at) { return u16(at) | u16(at + 2) << 16; };
  size_t at = 0;
  while (at + 30 <= z.size() && u32(at) == 0x04034b50) {  // local file header
    const uint32_t method = u16(at + 8), name_len = u16(at + 26), extra_len = u16(at + 28);
    uint64_t size = u32(at + 18);
    const std::string name = z.substr(at + 30, name_len);
    const size_t data = at + 30 + name_len + extra_len;
    if (size == 0xffffffffu && extra_len >= 20 && u16(at + 30 + name_len) == 1)  // zip64
      size = u32(at + 30 + name_len + 12) | uint64_t(u32(at + 30 + name_len + 16)) << 32;
    if (method != 0)
      return *error = path + ": entry '" + name +
                      "' is compressed (numpy.savez_compressed); save with numpy.savez",
             false;
    if (data + size > z.size()) return *error = path + ": entry '" + name + "' is cut off", false;
    std::string key = name.size() > 4 && name.compare(name.size() - 4, 4, ".npy") == 0
                          ? name.substr(0, name.size() - 4)
                          : name;
    if (!parse_npy(z.substr(data, size), path + ":" + name, &(*out)[key], error)) return false;
    at = data + size;
  }
  if (out->empty()) return *error = path + ": no arrays (not an .npz?)", false;
  return true;
}

Result<ir::Tensor> to_tensor(const NpyArray& a, ir::DType want, const std::string& what) {
  ir::Tensor t;
  t.dtype = want;
  t.dims = a.shape;
  t.bytes.resize(static_cast<size_t>(a.numel()) * ir::dtype_size(want));
  const bool int_in = a.dtype == KILN_INT64 || a.dtype == KILN_INT32;
  if (want == ir::DType::kFloat32 && a.dtype == KILN_FLOAT32) {
    std::memcpy(t.bytes.data(), a.data.data(), t.bytes.size());
  } else if ((want == ir::DType::kInt64 || want == ir::DType::kInt32) && int_in) {
    for (int64_t i = 0; i < a.numel(); ++i) {
      const int64_t v = a.dtype == KILN_INT64 ? reinterpret_cast<const int64_t*>(a.data.data())[i]
                                              : reinterpret_cast<const int32_t*>(a.data.data())[i];
      if (want == ir::DType::kInt64)
        t.data<int64_t>()[i] = v;
      else
        t.data<int32_t>()[i] = static_cast<int32_t>(v);
    }
  } else {
    return Status::error(what + ": dtype does not match the graph input (" + ir::dtype_name(want) +
                         ")");
  }
  return t;
}

// Rows of the embedding table that graph input v indexes (0 if none).
int64_t vocab_of(const ir::Graph& g, const ir::Value* v) {
  for (const ir::Node* n : g.consumers(v))
    for (size_t i = 1; i < n->inputs.size(); ++i) {
      const ir::Value* table = n->inputs[i - 1];
      if (n->inputs[i] == v && table && table->constant && table->constant->dims.size() == 2 &&
          (n->op == ir::Op::kGather || n->op == ir::Op::kEmbeddingLayerNorm))
        return table->constant->dims[0];
    }
  return 0;
}

// Graph inputs: from --calibrate where given, else generated (token ids uniform in [0, vocab)
// for the first integer input if it indexes an embedding table, ones for *mask*, zeros for other
// integers, N(0, 1) for floats; seed 0). Symbols: "batch" -> batch, others -> seq (or the
// calibration array's dims). Prints one line per input.
Result<std::map<std::string, ir::Tensor>> make_inputs(const ir::Graph& g, const LayerArgs& a) {
  std::map<std::string, NpyArray> given;
  std::string error;
  if (!a.calibrate.empty()) {
    const bool npz = a.calibrate.size() > 4 && a.calibrate.substr(a.calibrate.size() - 4) == ".npz";
    if (npz ? !read_npz(a.calibrate, &given, &error)
            : !read_npy(a.calibrate, &given[g.inputs.at(0)->name], &error))
      return Status::error(error);
  }
  std::vector<int64_t> sym(ir::kMaxSymbols, a.seq);
  if (int b = g.symbol_index("batch"); b >= 0) sym[b] = a.batch;
  for (const ir::Value* v : g.inputs)  // calibration arrays fix the symbols
    if (auto it = given.find(v->name);
        it != given.end() && v->shape && v->shape->size() == it->second.shape.size())
      for (size_t k = 0; k < v->shape->size(); ++k)
        for (int s = 0; s < ir::kMaxSymbols; ++s)
          if ((*v->shape)[k] == ir::Dim::symbol(s)) sym[s] = it->second.shape[k];
  std::mt19937 rng(0);
  std::map<std::string, ir::Tensor> inputs;
  bool ids_done = false;  // token ids for the first integer input only (token types stay 0)
  for (const ir::Value* v : g.inputs) {
    if (auto it = given.find(v->name); it != given.end()) {
      KILN_ASSIGN_OR_RETURN(inputs[v->name],
                            to_tensor(it->second, v->dtype, a.calibrate + ": '" + v->name + "'"));
      std::printf("input  %-20s %s from %s\n", v->name.c_str(), ir::dtype_name(v->dtype),
                  a.calibrate.c_str());
      continue;
    }
    ir::Tensor t;
    t.dtype = v->dtype;
    for (const ir::Dim& d : *v->shape) t.dims.push_back(d.eval(sym.data()));
    t.bytes.resize(static_cast<size_t>(t.numel()) * ir::dtype_size(t.dtype));
    const bool mask = v->name.find("mask") != std::string::npos;
    const bool is_int = v->dtype == ir::DType::kInt64 || v->dtype == ir::DType::kInt32;
    const int64_t vocab = mask || ids_done || !is_int ? 0 : vocab_of(g, v);
    ids_done = ids_done || (is_int && !mask);
    std::string what;
    if (v->dtype == ir::DType::kFloat32) {
      std::normal_distribution<float> nd;
      for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = mask ? 1.0f : nd(rng);
      what = mask ? "ones" : "N(0, 1)";
    } else if (is_int) {
      std::uniform_int_distribution<int64_t> id(0, std::max<int64_t>(vocab - 1, 0));
      for (int64_t i = 0; i < t.numel(); ++i) {
        const int64_t x = mask ? 1 : vocab > 0 ? id(rng) : 0;
        if (v->dtype == ir::DType::kInt64)
          t.data<int64_t>()[i] = x;
        else
          t.data<int32_t>()[i] = static_cast<int32_t>(x);
      }
      what = mask        ? "ones"
             : vocab > 0 ? "token ids in [0, " + std::to_string(vocab) + ")"
                         : "zeros";
    } else {
      return Status::error("input '" + v->name + "' has dtype " + ir::dtype_name(v->dtype) +
                           " (not generated; give it with --calibrate)");
    }
    std::printf("input  %-20s %s, %s\n", v->name.c_str(), ir::dtype_name(v->dtype), what.c_str());
    inputs[v->name] = std::move(t);
  }
  return inputs;
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
      " median channel's)\n");
  std::printf("\n%3s  %-46s %10s %7s %7s %7s %7s %11s  %s\n", "#", "Dense (graph order)", "K->N",
              "w err", "x err", "xW err", "out err", "cos", "top channels");
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
    std::printf("%3d  %-46s %10s %7.4f %7.4f %7.4f %7.4f %11.8f  %s\n", ++k, label.c_str(),
                kn.c_str(), l.weight_error, l.activation_error, l.gemm_error, l.output_error,
                a.no_cosine ? NAN : l.min_cosine, top.c_str());
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
  quantize::QuantReportOptions o;
  o.top = a.top;
  o.per_layer_cosine = !a.no_cosine;
  auto r = quantize::quant_report(**graph, *inputs, o);
  if (!r) return fail(r.status().message());
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

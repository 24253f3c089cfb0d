// `kiln quant-report --compiled MODEL.onnx`: where INT8 quantization loses accuracy in the compiled
// kernels (quant_report_cmd.cpp has the per-layer host analysis). Compiles the model twice
// (FP32 and --quantize int8) into temporary directories with every Dense output exposed as an
// extra graph output, runs both through the runtime C API on the same generated inputs and prints,
// per Dense in graph order, cosine similarity and max abs error of INT8 against FP32, then the
// same for the model's own outputs. Errors accumulate through the network, so the first layer
// whose cosine drops is the one to exclude (--quantize-exclude) or look at.
#include <CLI/CLI.hpp>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "kiln/c_api.h"
#include "tools/kiln/compile.h"

namespace kiln::tools {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

struct ReportArgs {
  std::string model, target = "native";
  std::vector<std::string> exclude;
  std::optional<int64_t> weight_group;  // --int8-weight-group: as for kiln compile
  int64_t seq = 128, batch = 1;
  int threads = 0;
  bool keep = false;
};

struct Loaded {
  kiln_model* m = nullptr;
  json desc;  // model.json
  ~Loaded() { kiln_model_free(m); }
};

bool load(const fs::path& dir, int threads, Loaded* out) {
  kiln_load_options o{};
  o.num_threads = threads;
  o.verify_params = 1;
  if (kiln_model_load(dir.c_str(), &o, &out->m) != KILN_OK) {
    std::fprintf(stderr, "kiln: error: quant-report: %s\n", kiln_last_error());
    return false;
  }
  std::ifstream f(dir / "model.json");
  out->desc = json::parse(f);
  return true;
}

// Concrete dims of a declared shape: "batch" -> batch, any other symbol -> seq.
std::vector<int64_t> concrete(const json& shape, int64_t batch, int64_t seq) {
  std::vector<int64_t> d;
  for (const auto& e : shape)
    d.push_back(e.is_number() ? e.get<int64_t>() : e == "batch" ? batch : seq);
  return d;
}

// Rows of the embedding table that graph input `tensor` indexes (0 if none).
int64_t vocab_of(const json& desc, int64_t tensor) {
  for (const auto& n : desc["nodes"]) {
    // A Gather(table, ids), or an EmbeddingLayerNorm whose inputs hold (table, ids) pairs.
    const json& ins = n["inputs"];
    size_t at = 0;
    if (n["op"] == "Gather" && ins.size() == 2 && ins[1] == tensor) at = 1;
    if (n["op"] == "EmbeddingLayerNorm")
      for (size_t i = 1; i < ins.size() && !at; ++i)
        if (ins[i] == tensor) at = i;
    if (!at) continue;
    const json& t = desc["tensors"][ins[at - 1].get<size_t>()];
    if (t["storage"] == "param" && t["shape"].size() == 2 && t["shape"][0].is_number())
      return t["shape"][0].get<int64_t>();
  }
  return 0;
}

// Generated inputs: token ids in [0, vocab) for the first input when it is integer and indexes
// an embedding table, ones for masks, zeros for other integer inputs, N(0, 1) for float ones.
bool set_inputs(const Loaded& fp32, const std::vector<kiln_model*>& models, const ReportArgs& a) {
  std::mt19937 rng(0);
  const json& desc = fp32.desc;
  for (size_t i = 0; i < desc["inputs"].size(); ++i) {
    const json& in = desc["inputs"][i];
    const json& t = desc["tensors"][in["tensor"].get<size_t>()];
    const std::string name = in["name"], dtype = t["dtype"];
    const std::vector<int64_t> dims = concrete(t["shape"], a.batch, a.seq);
    int64_t count = 1;
    for (int64_t d : dims) count *= d;
    const bool is_mask = name.find("mask") != std::string::npos;
    const int64_t vocab = i == 0 ? vocab_of(desc, in["tensor"]) : 0;
    std::vector<int64_t> ints(count, is_mask ? 1 : 0);
    std::vector<float> floats(count, is_mask ? 1.0f : 0.0f);
    std::string what = is_mask ? "ones" : "zeros";
    if (vocab > 0 && !is_mask) {
      std::uniform_int_distribution<int64_t> id(0, vocab - 1);
      for (auto& v : ints) v = id(rng);
      what = "token ids in [0, " + std::to_string(vocab) + ")";
    } else if (dtype == "float32" && !is_mask) {
      std::normal_distribution<float> nd;
      for (auto& v : floats) v = nd(rng);
      what = "N(0, 1)";
    }
    std::vector<int32_t> ints32(ints.begin(), ints.end());
    kiln_dtype kd;
    const void* data;
    if (dtype == "int64") {
      kd = KILN_INT64, data = ints.data();
    } else if (dtype == "int32") {
      kd = KILN_INT32, data = ints32.data();
    } else if (dtype == "float32") {
      kd = KILN_FLOAT32, data = floats.data();
    } else {
      std::fprintf(stderr, "kiln: error: quant-report: input '%s' has dtype %s (not generated)\n",
                   name.c_str(), dtype.c_str());
      return false;
    }
    for (kiln_model* m : models)
      if (kiln_model_set_input(m, static_cast<int32_t>(i), kd, dims.data(),
                               static_cast<int32_t>(dims.size()), data) != KILN_OK) {
        std::fprintf(stderr, "kiln: error: quant-report: input '%s': %s\n", name.c_str(),
                     kiln_last_error());
        return false;
      }
    std::printf("input  %-20s %s, %s\n", name.c_str(), dtype.c_str(), what.c_str());
  }
  return true;
}

struct Diff {
  double cosine = 1.0, max_abs = 0.0;
  bool ok = false;
};

Diff compare(const kiln_model* ref, const kiln_model* q, const std::string& name) {
  Diff d;
  const int32_t i = kiln_model_output_index(ref, name.c_str()),
                j = kiln_model_output_index(q, name.c_str());
  kiln_tensor_info a{}, b{};
  if (i < 0 || j < 0 || kiln_model_get_output(ref, i, &a) != KILN_OK ||
      kiln_model_get_output(q, j, &b) != KILN_OK || a.dtype != KILN_FLOAT32 ||
      b.dtype != KILN_FLOAT32 || a.nbytes != b.nbytes)
    return d;
  const float* x = static_cast<const float*>(a.data);
  const float* y = static_cast<const float*>(b.data);
  double xy = 0, xx = 0, yy = 0;
  for (size_t k = 0; k < a.nbytes / 4; ++k) {
    xy += double(x[k]) * y[k], xx += double(x[k]) * x[k], yy += double(y[k]) * y[k];
    d.max_abs = std::max(d.max_abs, std::fabs(double(x[k]) - y[k]));
  }
  d.cosine = xx > 0 && yy > 0 ? xy / std::sqrt(xx * yy) : (xx == yy ? 1.0 : 0.0);
  d.ok = true;
  return d;
}

}  // namespace

int quant_report_compiled_main(int argc, char** argv) {
  CLI::App app{
      "kiln quant-report --compiled: per-layer accuracy of --quantize int8 artifacts against FP32"};
  ReportArgs a;
  app.add_option("model", a.model, "ONNX model file")->required();
  app.add_option("--quantize-exclude", a.exclude, "as for kiln compile (repeatable)")
      ->allow_extra_args(false);
  app.add_option("--int8-weight-group", a.weight_group, "as for kiln compile");
  app.add_option("--seq", a.seq, "sequence length of the generated inputs (default 128)");
  app.add_option("--batch", a.batch, "batch size of the generated inputs (default 1)");
  app.add_option("--target", a.target, "x86 target to compile for (default native)");
  app.add_option("--threads", a.threads, "runtime threads (default: cores)");
  app.add_flag("--keep", a.keep, "keep the two artifacts (the paths are printed)");
  app.name("kiln quant-report --compiled");
  CLI11_PARSE(app, argc, argv);
  if (a.seq < 1 || a.batch < 1) {
    std::fprintf(stderr, "kiln: error: quant-report: --seq and --batch must be >= 1\n");
    return 1;
  }
  if (a.weight_group)  // before the FP32 compile, not after it
    if (const std::string e = check_int8_weight_group(*a.weight_group); !e.empty()) {
      std::fprintf(stderr, "kiln: error: quant-report: %s\n", e.c_str());
      return 1;
    }

  std::error_code ec;
  std::string tmpl = (fs::temp_directory_path() / "kiln-quant-report-XXXXXX").string();
  if (!mkdtemp(tmpl.data())) {
    std::fprintf(stderr, "kiln: error: quant-report: cannot create a temporary directory\n");
    return 1;
  }
  const fs::path tmp = tmpl;
  struct Cleanup {
    fs::path p;
    bool keep;
    ~Cleanup() {
      std::error_code e;
      if (!keep) fs::remove_all(p, e);
    }
  } cleanup{tmp, a.keep};

  CompileArgs c;
  c.model = a.model;
  c.target = a.target;
  c.max_seq = a.seq;
  c.expose_dense_outputs = true;
  c.quiet = true;
  std::vector<std::string> model_outputs;
  c.model_outputs = &model_outputs;
  c.output_dir = (tmp / "fp32").string();
  if (int rc = compile(c)) return rc;
  c.output_dir = (tmp / "int8").string();
  c.model_outputs = nullptr;
  c.int8.quantize = "int8";
  c.int8.exclude = a.exclude;
  c.int8.weight_group = a.weight_group;
  if (int rc = compile(c)) return rc;
  if (a.keep) std::printf("artifacts %s/{fp32,int8}\n", tmp.c_str());

  Loaded fp32, int8;
  if (!load(tmp / "fp32", a.threads, &fp32) || !load(tmp / "int8", a.threads, &int8)) return 1;
  std::printf("kiln quant-report %s: batch %lld, seq %lld\n", a.model.c_str(),
              static_cast<long long>(a.batch), static_cast<long long>(a.seq));
  const json kd = json::parse(kiln_model_describe(int8.m));
  if (kd.contains("kernel_variant"))
    std::printf("kernels %s\n", kd["kernel_variant"].get<std::string>().c_str());
  if (!set_inputs(fp32, {fp32.m, int8.m}, a)) return 1;
  for (Loaded* l : {&fp32, &int8})
    if (kiln_model_run(l->m) != KILN_OK) {
      std::fprintf(stderr, "kiln: error: quant-report: run: %s\n", kiln_last_error());
      return 1;
    }

  // Dense nodes of the INT8 artifact in graph order; the output tensor's name is the graph
  // output's (expose_dense_outputs).
  const json& desc = int8.desc;
  std::printf("\n%4s  %-52s %-5s %-18s %10s %12s\n", "#", "Dense (graph order)", "int8", "output",
              "cosine", "max abs err");
  int k = 0;
  double worst = 1.0;
  for (const auto& n : desc["nodes"]) {
    if (n["op"] != "Dense") continue;
    const json& t = desc["tensors"][n["outputs"][0].get<size_t>()];
    const std::string name = t["name"];
    const bool q = n["attrs"].contains("quantize") && n["attrs"]["quantize"] == "int8";
    const Diff d = compare(fp32.m, int8.m, name);
    kiln_tensor_info info{};
    std::string shape = "?";
    if (int32_t j = kiln_model_output_index(int8.m, name.c_str());
        j >= 0 && kiln_model_get_output(int8.m, j, &info) == KILN_OK) {
      shape = "[";
      for (int r = 0; r < info.rank; ++r) shape += (r ? "," : "") + std::to_string(info.shape[r]);
      shape += "]";
    }
    std::string label = n["name"];
    if (label.size() > 52) label = "..." + label.substr(label.size() - 49);
    if (!d.ok)
      std::printf("%4d  %-52s %-5s %-18s %10s\n", ++k, label.c_str(), q ? "yes" : "no",
                  shape.c_str(), "(not comparable)");
    else
      std::printf("%4d  %-52s %-5s %-18s %10.6f %12.4g\n", ++k, label.c_str(), q ? "yes" : "no",
                  shape.c_str(), d.cosine, d.max_abs);
    if (d.ok) worst = std::min(worst, d.cosine);
  }
  std::printf("\nmodel outputs\n");
  for (const std::string& name : model_outputs) {
    const Diff d = compare(fp32.m, int8.m, name);
    if (d.ok)
      std::printf("  %-40s cosine %.6f  max abs err %.4g\n", name.c_str(), d.cosine, d.max_abs);
    else
      std::printf("  %-40s (not a float32 output: not compared)\n", name.c_str());
  }
  std::printf("lowest per-layer cosine: %.6f\n", worst);
  return 0;
}

}  // namespace kiln::tools

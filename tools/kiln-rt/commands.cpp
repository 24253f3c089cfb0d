// kiln-rt's commands: run (npy in, npy out), bench (generated inputs, timing), embed (texts in,
// sentence embeddings out) and inspect (kiln_model_describe, printed for people); cli.cpp parses
// their arguments.
#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include <sys/stat.h>

#include <cerrno>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "kiln/runtime.hpp"
#include "npy.h"
#include "runtime/shape_expr.h"

namespace kiln::tools {
namespace {

// A --tuning-log artifact on a CPU other than the one it was tuned on runs the default
// schedules: said once, when the model is loaded.
void note_tuning(const Model& m) {
  const char* t = kiln_model_tuning(m.get());
  if (t && std::strncmp(t, "inactive: ", 10) == 0)
    std::fprintf(stderr, "kiln-rt: note: model %s\n", t + 10);
}

using nlohmann::json;

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

std::string declared_shape_str(const json& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    s += (i ? ", " : "") + (shape[i].is_string() ? shape[i].get<std::string>() : shape[i].dump());
  return s + "]";
}

std::string expected_inputs(const json& d) {
  std::string s;
  for (const auto& in : d["inputs"])
    s += "\n  " + in["name"].get<std::string>() + ": " + in["dtype"].get<std::string>() + " " +
         declared_shape_str(in["shape"]);
  return s;
}

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// Sum and sum of absolute values of a tensor's elements, as double.
void checksums(const TensorInfo& t, double* sum, double* sum_abs) {
  *sum = *sum_abs = 0;
  const int64_t n = t.numel();
  auto acc = [&](double v) {
    *sum += v;
    *sum_abs += std::fabs(v);
  };
  for (int64_t i = 0; i < n; ++i) {
    switch (t.dtype) {
      case KILN_FLOAT32:
        acc(static_cast<const float*>(t.data)[i]);
        break;
      case KILN_INT64:
        acc(static_cast<double>(static_cast<const int64_t*>(t.data)[i]));
        break;
      case KILN_INT32:
        acc(static_cast<const int32_t*>(t.data)[i]);
        break;
      case KILN_INT8:
        acc(static_cast<const int8_t*>(t.data)[i]);
        break;
      case KILN_UINT8:
      case KILN_BOOL:
        acc(static_cast<const uint8_t*>(t.data)[i]);
        break;
    }
  }
}

// The kernel variants model.so picked on this CPU (its optional kiln_model_kernel_variant).
std::string kernel_variant_str(const json& describe) {
  const auto it = describe.find("kernel_variant");
  return it != describe.end() && it->is_string() ? it->get<std::string>()
                                                 : "(not reported by this model.so)";
}

std::string file_name_for(const std::string& name) {
  std::string s = name;
  for (char& c : s)
    if (c == '/' || c == '\\' || c == ':') c = '_';
  if (s.empty() || s == "." || s == "..") s = "output_" + s;
  return s;
}

// --text: the artifact's tokenizer sets input_ids, attention_mask and token_type_ids.
void encode_texts(Model& m, const std::vector<std::string>& texts, bool verbose,
                  std::vector<bool>* given) {
  if (!kiln_model_has_tokenizer(m.get()))
    throw std::runtime_error(
        "--text: this artifact has no tokenizer (compile it with `kiln compile ... "
        "--tokenizer tokenizer.json` or `--vocab vocab.txt`), give --input NAME=FILE.npy "
        "instead");
  std::vector<const char*> ptrs;
  for (const std::string& t : texts) ptrs.push_back(t.c_str());
  kiln_encoding enc;
  check(kiln_model_encode(m.get(), ptrs.data(), static_cast<int32_t>(ptrs.size()), 0, &enc));
  if (enc.num_truncated > 0) std::fprintf(stderr, "kiln-rt: warning: %s\n", enc.warning);
  for (const char* name : {"input_ids", "attention_mask", "token_type_ids"}) {
    const int idx = kiln_model_input_index(m.get(), name);  // -1: the model lacks it
    if (idx < 0) continue;
    if ((*given)[idx])
      throw std::runtime_error(std::string("input '") + name + "' is given by --input and --text");
    (*given)[idx] = true;
  }
  if (verbose)
    for (int64_t b = 0; b < enc.batch; ++b) {
      std::printf("text %lld: input_ids", static_cast<long long>(b));
      for (int64_t k = 0; k < enc.seq; ++k)
        std::printf(" %lld", static_cast<long long>(enc.input_ids[b * enc.seq + k]));
      std::printf("\n");
    }
}

bool name_has(const std::string& name, const char* part) {
  std::string lower = name;
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return lower.find(part) != std::string::npos;
}

// Fills one generated input for bench.
std::vector<uint8_t> generate_input(const std::string& name, kiln_dtype dtype, int64_t numel,
                                    std::mt19937& rng) {
  std::vector<uint8_t> buf(static_cast<size_t>(numel) *
                           (dtype == KILN_INT64                            ? 8
                            : dtype == KILN_FLOAT32 || dtype == KILN_INT32 ? 4
                                                                           : 1));
  std::uniform_int_distribution<int> ids(0, 99);
  std::uniform_real_distribution<float> uni(-1.f, 1.f);
  const bool mask = name_has(name, "mask"), type = name_has(name, "type");
  for (int64_t i = 0; i < numel; ++i) {
    int64_t v = mask ? 1 : type ? 0 : ids(rng);
    switch (dtype) {
      case KILN_FLOAT32:
        reinterpret_cast<float*>(buf.data())[i] = mask ? 1.f : uni(rng);
        break;
      case KILN_INT64:
        reinterpret_cast<int64_t*>(buf.data())[i] = v;
        break;
      case KILN_INT32:
        reinterpret_cast<int32_t*>(buf.data())[i] = static_cast<int32_t>(v);
        break;
      case KILN_INT8:
        reinterpret_cast<int8_t*>(buf.data())[i] = static_cast<int8_t>(v);
        break;
      case KILN_UINT8:
        buf[i] = static_cast<uint8_t>(v);
        break;
      case KILN_BOOL:
        buf[i] = 1;
        break;
    }
  }
  return buf;
}

// The profile (kiln_model_profile JSON) as a table: per op type, then the 10 slowest nodes.
void print_profile(const json& p) {
  const double runs = std::max<int64_t>(1, p["runs"].get<int64_t>());
  const double run_ms = p["run_ms"].get<double>() / runs;
  auto pct = [&](double ms) { return run_ms > 0 ? 100.0 * ms / run_ms : 0.0; };
  std::printf("\nprofile: %lld runs, %d thread(s), %.3f ms/run in the node loop\n",
              static_cast<long long>(runs), p["threads"].get<int>(), run_ms);
  std::printf("%-28s %6s %10s %10s %9s\n", "op", "nodes", "calls/run", "ms/run", "% of run");
  int64_t nodes = 0;
  double total = 0;
  for (const auto& op : p["ops"]) {
    const double ms = op["ms"].get<double>() / runs;
    nodes += op["nodes"].get<int64_t>();
    total += ms;
    std::printf("%-28s %6lld %10.0f %10.3f %8.1f%%\n", op["op"].get<std::string>().c_str(),
                static_cast<long long>(op["nodes"].get<int64_t>()),
                op["calls"].get<double>() / runs, ms, pct(ms));
  }
  std::printf("%-28s %6lld %10lld %10.3f %8.1f%%\n", "all nodes", static_cast<long long>(nodes),
              static_cast<long long>(nodes), total, pct(total));
  std::vector<json> by_time(p["nodes"].begin(), p["nodes"].end());
  std::stable_sort(by_time.begin(), by_time.end(), [](const json& x, const json& y) {
    return x["ms"].get<double>() > y["ms"].get<double>();
  });
  std::printf("\n%-56s %-20s %10s %9s\n", "top nodes", "op", "ms/run", "% of run");
  for (size_t i = 0; i < by_time.size() && i < 10; ++i) {
    const double ms = by_time[i]["ms"].get<double>() / runs;
    std::string name = by_time[i]["name"];
    if (name.size() > 56) name = "..." + name.substr(name.size() - 53);
    std::printf("%-56s %-20s %10.3f %8.1f%%\n", name.c_str(),
                by_time[i]["op"].get<std::string>().c_str(), ms, pct(ms));
  }
}

std::string human_bytes(uint64_t b) {
  char buf[64];
  if (b >= (1ull << 20))
    std::snprintf(buf, sizeof buf, "%llu bytes (%.1f MiB)", static_cast<unsigned long long>(b),
                  b / 1048576.0);
  else if (b >= 1024)
    std::snprintf(buf, sizeof buf, "%llu bytes (%.1f KiB)", static_cast<unsigned long long>(b),
                  b / 1024.0);
  else
    std::snprintf(buf, sizeof buf, "%llu bytes", static_cast<unsigned long long>(b));
  return buf;
}

// model.json's optional "quantization" (kiln compile --quantize int8), read from the file: the
// runtime does not need it to run the model.
void print_quantization(const std::string& dir) {
  std::FILE* f = std::fopen((dir + "/model.json").c_str(), "rb");
  if (!f) return;
  std::string text;
  char buf[65536];
  for (size_t n; (n = std::fread(buf, 1, sizeof(buf), f)) > 0;) text.append(buf, n);
  std::fclose(f);
  const json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.contains("quantization") || !j["quantization"].is_object()) return;
  const json& q = j["quantization"];
  auto str = [&](const char* k) {
    return q.contains(k) && q[k].is_string() ? q[k].get<std::string>() : std::string("?");
  };
  std::printf("\nquantization %s: weights %s; activations %s", str("mode").c_str(),
              str("weights").c_str(), str("activations").c_str());
  if (q.contains("excluded") && q["excluded"].is_array()) {
    std::printf("; excluded (FP32): %zu", q["excluded"].size());
    for (const auto& e : q["excluded"])
      if (e.is_string()) std::printf(" %s", e.get<std::string>().c_str());
  }
  auto number = [](const json& o, const char* k) {
    return o.contains(k) && o[k].is_number() ? o[k].get<double>() : NAN;
  };
  if (q.contains("min_cosine") && q["min_cosine"].is_object()) {
    const json& m = q["min_cosine"];
    std::printf(
        "\n  mixed precision for min cosine %g: mean cosine %.6f, worst vector %.6f "
        "(INT8 everywhere: %.6f) on the calibration inputs",
        number(m, "target"), number(m, "cosine"), number(m, "worst_cosine"),
        number(m, "int8_everywhere"));
  }
  if (!q.contains("layers") || !q["layers"].is_array()) return;
  std::printf("\n  layer precision:");
  for (const json& l : q["layers"]) {
    if (!l.is_object()) continue;
    auto field = [&](const char* k) {
      return l.contains(k) && l[k].is_string() ? l[k].get<std::string>() : std::string();
    };
    const std::string name = field("name"), weight = field("weight");
    std::string note = field("note");
    // Absent in artifacts from before weight groups (and for per-channel layers).
    if (l.contains("weight_group") && l["weight_group"].is_number_integer())
      note += (note.empty() ? "K groups of " : ", K groups of ") +
              std::to_string(l["weight_group"].get<int64_t>());
    const bool show_weight = !weight.empty() && name.find(weight) == std::string::npos;
    std::printf("\n    %-5s %s%s%s%s%s%s", field("precision").c_str(), name.c_str(),
                show_weight ? " [" : "", show_weight ? weight.c_str() : "", show_weight ? "]" : "",
                note.empty() ? "" : " (", note.c_str());
    if (!note.empty()) std::printf(")");
  }
}

}  // namespace

int cmd_run(const RunArgs& a) {
  const std::string& out_dir = a.output_dir;
  const bool verbose = a.verbose;
  LoadOptions o;
  o.num_threads = a.threads;
  auto t0 = std::chrono::steady_clock::now();
  Model m(a.dir, o);
  note_tuning(m);
  const double load_ms = ms_since(t0);
  const json d = json::parse(m.describe());
  std::vector<bool> given(m.num_inputs(), false);
  for (const auto& in : a.inputs) {
    int idx = kiln_model_input_index(m.get(), in.first.c_str());
    if (idx < 0)
      throw std::runtime_error("unknown input '" + in.first +
                               "'; the model's inputs are:" + expected_inputs(d));
    if (given[idx]) throw std::runtime_error("input '" + in.first + "' is given twice");
    NpyArray arr;
    std::string err;
    if (!read_npy(in.second, &arr, &err)) throw std::runtime_error(err);
    m.set_input(idx, arr.dtype, arr.shape, arr.data.data());
    given[idx] = true;
    if (verbose)
      std::printf("input %s: %s %s from %s\n", in.first.c_str(), kiln_dtype_name(arr.dtype),
                  shape_str(arr.shape).c_str(), in.second.c_str());
  }
  if (!a.texts.empty()) encode_texts(m, a.texts, verbose, &given);
  for (int i = 0; i < m.num_inputs(); ++i)
    if (!given[i])
      throw std::runtime_error(
          "missing input '" + m.input_info(i).name +
          "' (give --input NAME=FILE.npy for each); the model's inputs are:" + expected_inputs(d));
  t0 = std::chrono::steady_clock::now();
  m.run();
  const double run_ms = ms_since(t0);
  if (verbose) {
    std::printf("loaded in %.2f ms, ran in %.3f ms on %d thread(s)\n", load_ms, run_ms,
                m.num_threads());
    std::printf("kernels: %s\n", kernel_variant_str(d).c_str());
  }
  if (out_dir != "." && out_dir != "") {
    // Create the output directory (one level; parents must exist).
    if (mkdir(out_dir.c_str(), 0777) != 0 && errno != EEXIST)
      throw std::runtime_error("cannot create output directory '" + out_dir +
                               "': " + std::strerror(errno));
  }
  for (int i = 0; i < m.num_outputs(); ++i) {
    TensorInfo t = m.get_output(i);
    const std::string path = out_dir + "/" + file_name_for(t.name) + ".npy";
    std::string err;
    if (!write_npy(path, t.dtype, t.shape.data(), static_cast<int>(t.shape.size()), t.data,
                   t.nbytes, &err))
      throw std::runtime_error(err);
    double sum, sum_abs;
    checksums(t, &sum, &sum_abs);
    std::printf("%s: shape %s dtype %s sum %.9g sum_abs %.9g -> %s\n", t.name.c_str(),
                shape_str(t.shape).c_str(), kiln_dtype_name(t.dtype), sum, sum_abs, path.c_str());
  }
  return 0;
}

int cmd_bench(const BenchArgs& a) {
  const int64_t batch = a.batch, seq = a.seq, runs = a.runs, warmup = a.warmup;
  bool profile = a.profile;
  LoadOptions o;
  o.num_threads = a.threads;
  Model m(a.dir, o);
  note_tuning(m);
  const json d = json::parse(m.describe());
  std::vector<std::string> names;
  int64_t sym[KILN_MAX_SYMBOLS] = {};
  int64_t seq_used = 0;
  for (size_t s = 0; s < d["symbols"].size() && s < KILN_MAX_SYMBOLS; ++s) {
    const std::string name = d["symbols"][s]["name"];
    const int64_t max = d["symbols"][s]["max"];
    names.push_back(name);
    if (name == "batch") {
      sym[s] = batch;
    } else {
      int64_t v = seq > 0 ? seq : (max > 0 ? std::min<int64_t>(128, max) : 128);
      if (seq <= 0 && max > 0) v = std::min(v, max);
      sym[s] = v;
      if (name == "seq" || seq_used == 0) seq_used = v;
    }
  }
  if (seq_used == 0) seq_used = seq > 0 ? seq : 0;
  std::mt19937 rng(1234);
  std::vector<std::vector<uint8_t>> bufs;
  for (int i = 0; i < m.num_inputs(); ++i) {
    const json& in = d["inputs"][i];
    std::vector<int64_t> shape;
    int64_t numel = 1;
    for (const auto& dim : in["shape"]) {
      int64_t v;
      if (dim.is_number_integer()) {
        v = dim.get<int64_t>();
      } else {
        rt::SymDim sd;
        std::string err;
        if (!rt::parse_sym_dim(dim.get<std::string>(), names, &sd, &err) || !sd.eval(sym, &v))
          throw std::runtime_error("input '" + in["name"].get<std::string>() + "': " + err);
      }
      shape.push_back(v);
      numel *= v;
    }
    TensorInfo info = m.input_info(i);
    bufs.push_back(generate_input(info.name, info.dtype, numel, rng));
    m.set_input(i, info.dtype, shape, bufs.back().data());
  }
  for (int64_t i = 0; i < warmup; ++i) m.run();
  profile = profile || json::parse(m.profile())["enabled"].get<bool>();  // KILN_PROFILE=1
  if (profile) m.set_profiling(true);  // count the timed runs only
  std::vector<double> times;
  for (int64_t i = 0; i < runs; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    m.run();
    times.push_back(ms_since(t0));
  }
  std::vector<double> sorted = times;
  std::sort(sorted.begin(), sorted.end());
  const size_t n = sorted.size();
  const double median = n % 2 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
  double mean = 0;
  for (double t : times) mean += t / n;
  if (a.json) {
    json j = {{"median_ms", median},
              {"min_ms", sorted.front()},
              {"mean_ms", mean},
              {"max_ms", sorted.back()},
              {"runs", runs},
              {"warmup", warmup},
              {"threads", m.num_threads()},
              {"batch", batch},
              {"seq", seq_used},
              {"target", d["target"]["name"]}};
    if (profile) j["profile"] = json::parse(m.profile());
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("%s: batch %lld seq %lld, %d thread(s), %lld runs (%lld warmup)\n", a.dir.c_str(),
                static_cast<long long>(batch), static_cast<long long>(seq_used), m.num_threads(),
                static_cast<long long>(runs), static_cast<long long>(warmup));
    std::printf("median %.3f ms  min %.3f ms  mean %.3f ms  max %.3f ms\n", median, sorted.front(),
                mean, sorted.back());
    if (profile) print_profile(json::parse(m.profile()));
  }
  return 0;
}

// A Dense's GEMM schedule for kiln inspect: the --tuning-log rows ("tuned (active|inactive):
// M<=40 avx512 mr14 p2 mc112 kc0 nc0 t1; ...") or "default (variant chosen at load)".
static std::string schedule_str(const json& node, const json& d) {
  if (!node.contains("schedule")) return "default (variant and blocking chosen at load)";
  const bool active =
      d["tuning"].is_string() && d["tuning"].get<std::string>().rfind("active", 0) == 0;
  std::string s = active ? "tuned: " : "tuned (inactive on this CPU, defaults run): ";
  for (const auto& r : node["schedule"]) {
    if (&r != &node["schedule"].front()) s += "; ";
    if (!r["max_m"].is_null()) s += "M<=" + std::to_string(r["max_m"].get<int64_t>()) + " ";
    s += r.value("variant", "?");
    for (const char* k : {"mr", "panels", "mc", "kc", "nc", "threads"})
      s += std::string(" ") + k + " " + std::to_string(r.value(k, 0));
    if (r.value("prefetch", 1) == 0) s += " prefetch off";
  }
  return s;
}

int cmd_inspect(const InspectArgs& a) {
  LoadOptions o;
  o.num_threads = 1;
  Model m(a.dir, o);
  note_tuning(m);
  if (a.json) {
    std::printf("%s\n", m.describe().c_str());
    return 0;
  }
  const json d = json::parse(m.describe());
  const json& t = d["target"];
  std::printf("artifact   %s (compiler %s, format %d)\n", a.dir.c_str(),
              d["compiler_version"].get<std::string>().c_str(), d["format_version"].get<int>());
  std::printf("target     %s: %s, cpu %s\n", t["name"].get<std::string>().c_str(),
              t["arch"].get<std::string>().c_str(), t["cpu"].get<std::string>().c_str());
  std::printf("features  ");
  if (t["features"].empty()) std::printf(" (none)");
  for (const auto& f : t["features"])
    std::printf(" %s(%s)", f["name"].get<std::string>().c_str(),
                f["host_has"].get<bool>() ? "this CPU: yes" : "this CPU: NO");
  std::printf("\nhost       %s:", d["host"]["arch"].get<std::string>().c_str());
  for (const auto& f : d["host"]["features"]) std::printf(" %s", f.get<std::string>().c_str());
  std::printf("\nkernels    %s", kernel_variant_str(d).c_str());
  if (d.contains("tuning") && d["tuning"].is_string())
    std::printf("\ntuning     %s", d["tuning"].get<std::string>().c_str());
  print_quantization(a.dir);
  std::printf("\nsymbols   ");
  for (const auto& s : d["symbols"]) {
    const int64_t max = s["max"];
    std::printf(" %s (max %s)", s["name"].get<std::string>().c_str(),
                max > 0 ? std::to_string(max).c_str() : "unbounded");
  }
  std::printf("\ninputs\n");
  for (const auto& in : d["inputs"])
    std::printf("  %-24s %-8s %s\n", in["name"].get<std::string>().c_str(),
                in["dtype"].get<std::string>().c_str(), declared_shape_str(in["shape"]).c_str());
  std::printf("outputs\n");
  for (const auto& out : d["outputs"])
    std::printf("  %-24s %-8s %s\n", out["name"].get<std::string>().c_str(),
                out["dtype"].get<std::string>().c_str(), declared_shape_str(out["shape"]).c_str());
  std::printf("ops (%zu nodes)\n", d["nodes"].size());
  for (const auto& op : d["ops"].items())
    std::printf("  %-24s %d\n", op.key().c_str(), op.value().get<int>());
  if (d.contains("fusions") && !d["fusions"].empty()) {
    std::printf("fusions (kiln op: nodes made, from how many graph nodes)\n");
    for (const auto& f : d["fusions"])
      std::printf("  %-24s %d from %d\n", f["op"].get<std::string>().c_str(), f["fused"].get<int>(),
                  f["replaced"].get<int>());
  }
  std::printf("nodes\n");
  for (const auto& n : d["nodes"]) {
    // Attributes as compact JSON (fusions show here: gelu, ln_epsilon, row_first, quantize...).
    const std::string attrs = n.contains("attrs") && !n["attrs"].empty() ? n["attrs"].dump() : "";
    std::printf("  %-40s %-20s %s%s%s\n", n["name"].get<std::string>().c_str(),
                n["op"].get<std::string>().c_str(), n["kernel"].get<std::string>().c_str(),
                attrs.empty() ? "" : " ", attrs.c_str());
    if (n["op"] == "Dense") std::printf("    schedule: %s\n", schedule_str(n, d).c_str());
  }
  const json& ar = d["arena"];
  std::printf("memory plan: arena %s per %s (at the other symbols' maxima), alignment %d\n",
              human_bytes(ar["bytes"].get<uint64_t>()).c_str(),
              ar["scale"].is_null() ? "run" : ar["scale"].get<std::string>().c_str(),
              ar["alignment"].get<int>());
  std::printf("  %-40s %-8s %-24s %12s %12s\n", "tensor", "dtype", "shape", "offset", "bytes");
  for (const auto& at : ar["tensors"])
    std::printf("  %-40s %-8s %-24s %12llu %12llu\n", at["name"].get<std::string>().c_str(),
                at["dtype"].get<std::string>().c_str(), declared_shape_str(at["shape"]).c_str(),
                static_cast<unsigned long long>(at["offset"].get<uint64_t>()),
                static_cast<unsigned long long>(at["bytes"].get<uint64_t>()));
  std::printf("params     %s: %d tensors, %s\n", d["params"]["file"].get<std::string>().c_str(),
              d["params"]["count"].get<int>(),
              human_bytes(d["params"]["bytes"].get<uint64_t>()).c_str());
  return 0;
}

namespace {

// --file: every line is a text (empty ones too); "\r\n" counts as a line end; a final newline
// ends the last line instead of starting an empty one.
void read_lines(const std::string& path, std::vector<std::string>* texts) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) throw std::runtime_error("--file: cannot open '" + path + "': " + std::strerror(errno));
  std::string text;
  char buf[65536];
  for (size_t n; (n = std::fread(buf, 1, sizeof(buf), f)) > 0;) text.append(buf, n);
  const bool failed = std::ferror(f) != 0;
  std::fclose(f);
  if (failed) throw std::runtime_error("--file: cannot read '" + path + "'");
  size_t begin = 0;
  while (begin < text.size()) {
    size_t end = text.find('\n', begin);
    if (end == std::string::npos) end = text.size();
    size_t stop = end;
    if (stop > begin && text[stop - 1] == '\r') --stop;
    texts->push_back(text.substr(begin, stop - begin));
    begin = end + 1;
  }
}

}  // namespace

Model load_text_model(const std::string& dir, int threads, const char* command) {
  LoadOptions o;
  o.num_threads = threads;
  Model m(dir, o);
  note_tuning(m);
  if (!kiln_model_has_tokenizer(m.get()))
    throw std::runtime_error(std::string(command) +
                             ": this artifact has no tokenizer (compile it with `kiln compile ... "
                             "--tokenizer tokenizer.json` or `--vocab vocab.txt`)");
  return m;
}

int cmd_embed(const EmbedArgs& a) {
  std::vector<std::string> texts = a.texts;
  if (!a.file.empty()) read_lines(a.file, &texts);
  if (texts.empty()) throw std::runtime_error("embed: no texts (give --text TEXT or --file FILE)");
  Model m = load_text_model(a.dir, a.threads, "embed");
  const int64_t dim = m.embedding_dim();
  kiln_embed_options opts{a.max_batch, 0};
  kiln_embed_stats stats{};
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<float> v = m.embed(texts, &opts, &stats);
  const double ms = ms_since(t0);
  if (stats.num_truncated > 0) std::fprintf(stderr, "kiln-rt: warning: %s\n", stats.warning);
  // %.9g: enough digits to read back every float exactly.
  auto print_row = [&](size_t i, const char* sep) {
    for (int64_t d = 0; d < dim; ++d)
      std::printf("%s%.9g", d ? sep : "", static_cast<double>(v[i * dim + d]));
  };
  if (a.json) {
    std::printf("{\"dim\": %lld, \"embeddings\": [", static_cast<long long>(dim));
    for (size_t i = 0; i < texts.size(); ++i) {
      std::printf("%s[", i ? ", " : "");
      print_row(i, ", ");
      std::printf("]");
    }
    std::printf(
        "], \"tokens\": %lld, \"padded_tokens\": %lld, \"runs\": %d, \"truncated\": %d, "
        "\"threads\": %d, \"ms\": %.3f}\n",
        static_cast<long long>(stats.tokens), static_cast<long long>(stats.padded_tokens),
        stats.runs, stats.num_truncated, m.num_threads(), ms);
  } else {
    for (size_t i = 0; i < texts.size(); ++i) {
      print_row(i, " ");
      std::printf("\n");
    }
    std::fprintf(stderr,
                 "kiln-rt: %zu texts, %lld tokens, %d runs over %lld positions, %.2f ms on %d "
                 "thread(s)\n",
                 texts.size(), static_cast<long long>(stats.tokens), stats.runs,
                 static_cast<long long>(stats.padded_tokens), ms, m.num_threads());
  }
  return 0;
}

}  // namespace kiln::tools

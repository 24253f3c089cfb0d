// Artifact writer: lowering -> memory plan -> model.params -> sources -> model.so -> model.json.
#include "compiler/codegen/emit_artifact.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "artifact/crc32.h"
#include "artifact/graph_checksum.h"
#include "compiler/codegen/emit_cpp.h"
#include "compiler/codegen/lowering.h"
#include "compiler/codegen/memory_plan.h"
#include "compiler/codegen/params_writer.h"
#include "compiler/codegen/toolchain.h"
#include "kiln/backend.h"
#include "kiln/c_api.h"

namespace kiln::codegen {

namespace {

using json = nlohmann::ordered_json;

Result<uint32_t> kiln_dtype_code(ir::DType t) {
  switch (t) {
    case ir::DType::kFloat32:
      return static_cast<uint32_t>(KILN_FLOAT32);
    case ir::DType::kInt64:
      return static_cast<uint32_t>(KILN_INT64);
    case ir::DType::kInt32:
      return static_cast<uint32_t>(KILN_INT32);
    case ir::DType::kInt8:
      return static_cast<uint32_t>(KILN_INT8);
    case ir::DType::kUInt8:
      return static_cast<uint32_t>(KILN_UINT8);
    case ir::DType::kBool:
      return static_cast<uint32_t>(KILN_BOOL);
    default:
      break;
  }
  return Status::error(std::string("dtype ") + ir::dtype_name(t) +
                       " cannot be stored in an artifact");
}

json shape_json(const ir::Shape& s, const std::vector<std::string>& names) {
  json a = json::array();
  for (const ir::Dim& d : s) {
    if (d.is_constant())
      a.push_back(d.coef);
    else
      a.push_back(d.str(names));
  }
  return a;
}

json attr_json(const ir::Attribute& a) {
  return std::visit(
      [](const auto& v) -> json {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, ir::Tensor>)
          return json{{"dtype", ir::dtype_name(v.dtype)}, {"dims", v.dims}};
        else
          return json(v);
      },
      a);
}

Status write_text(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary);
    f << text;
    if (!f.good()) return Status::error("cannot write '" + path + "'");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    return Status::error("cannot write '" + path + "': " + std::strerror(errno));
  return Status::ok();
}

Status read_binary(const std::string& path, std::string* out) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return Status::error("cannot read '" + path + "': " + std::strerror(errno));
  out->assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  if (f.bad()) return Status::error("cannot read '" + path + "'");
  return Status::ok();
}

// Compile-time scaling: a 12-layer BERT has ~1000 nodes; ~150 per translation unit keeps each
// g++ process short so `jobs` of them overlap.
constexpr size_t kNodesPerSourcePart = 150;

}  // namespace

Status emit_artifact(const ir::Graph& g, const CodegenOptions& opts) {
  if (opts.output_dir.empty()) return Status::error("no output directory");
  if (g.symbols.size() > static_cast<size_t>(KILN_MAX_SYMBOLS))
    return Status::error("the graph has " + std::to_string(g.symbols.size()) +
                         " symbols; the runtime supports at most " +
                         std::to_string(KILN_MAX_SYMBOLS));
  if (mkdir(opts.output_dir.c_str(), 0755) != 0 && errno != EEXIST)
    return Status::error("cannot create '" + opts.output_dir + "': " + std::strerror(errno));

  KILN_ASSIGN_OR_RETURN(auto lowered, lower(g));
  Lowering& L = lowered;
  KILN_ASSIGN_OR_RETURN(auto plan, plan_memory(g.symbols, L));
  const auto names = g.symbol_names();

  // model.params: every param tensor in table order.
  std::vector<ParamEntry> entries;
  for (const auto& t : L.tensors) {
    if (t.storage != Storage::kParam) continue;
    auto code = kiln_dtype_code(t.dtype);
    if (!code) return Status::error("constant '" + t.name + "': " + code.status().message());
    entries.push_back({t.name, *code, t.data->dims, t.data->bytes.data(), t.data->bytes.size()});
  }
  KILN_ASSIGN_OR_RETURN(auto params, write_params(opts.output_dir + "/model.params", entries));

  // model.json
  json j;
  j["format"] = "kiln";
  j["format_version"] = kFormatVersion;
  j["abi_version"] = KILN_ABI_VERSION;
  j["compiler"] = {{"name", "kiln"}, {"version", kCompilerVersion}};
  for (const passes::FusionCount& f : opts.fusions)
    j["compiler"]["fusions"].push_back(
        {{"op", f.op}, {"fused", f.fused}, {"replaced", f.replaced}});
  j["target"] = {{"name", opts.target.name},
                 {"arch", opts.target.arch},
                 {"cpu", opts.target.cpu},
                 {"features", opts.target.features}};
  j["source"] = {{"path", opts.source_path.empty() ? g.source_path : opts.source_path},
                 {"sha256", opts.source_sha256},
                 {"opset", g.opset},
                 {"producer", g.producer}};
  if (!opts.quantization.mode.empty()) {
    const QuantizationMetadata& q = opts.quantization;
    j["quantization"] = {{"mode", q.mode},
                         {"weights", q.weights},
                         {"activations", q.activations},
                         {"excluded", q.excluded}};
    json layers = json::array();
    for (const LayerPrecision& l : q.layers) {
      json e = {{"name", l.name}, {"weight", l.weight}, {"precision", l.precision}};
      if (!l.note.empty()) e["note"] = l.note;
      if (l.weight_group > 0) e["weight_group"] = l.weight_group;
      layers.push_back(std::move(e));
    }
    j["quantization"]["layers"] = std::move(layers);
    if (q.min_cosine > 0)
      j["quantization"]["min_cosine"] = {{"target", q.min_cosine},
                                         {"cosine", q.cosine},
                                         {"worst_cosine", q.worst_cosine},
                                         {"int8_everywhere", q.int8_cosine}};
  }
  if (opts.tuning) {
    const TuningPlan& t = *opts.tuning;
    j["tuning"] = {{"cpu", {{"key", t.cpu_key}, {"name", t.cpu_name}}},
                   {"log", {{"file", t.log_file}, {"sha256", t.log_sha256}}},
                   {"runner", t.runner},
                   {"threads", t.threads},
                   {"tuned_nodes", t.nodes.size()}};
  }
  j["library"] = "model.so";
  j["params"] = {{"file", "model.params"},
                 {"bytes", params.file_bytes},
                 {"count", params.count},
                 {"table_crc32", params.table_crc32}};
  json syms = json::array();
  for (const auto& s : g.symbols) syms.push_back({{"name", s.name}, {"max", s.max}});
  j["symbols"] = syms;
  j["arena"] = {
      {"bytes", plan.bytes},
      {"scale", plan.scale_symbol >= 0 ? json(g.symbols[plan.scale_symbol].name) : json()},
      {"alignment", kArenaAlignment}};
  json tensors = json::array();
  for (const auto& t : L.tensors) {
    auto code = kiln_dtype_code(t.dtype);
    if (!code) return Status::error("tensor '" + t.name + "': " + code.status().message());
    json e = {{"name", t.name},
              {"dtype", ir::dtype_name(t.dtype)},
              {"shape", shape_json(t.shape, names)},
              {"storage", storage_name(t.storage)}};
    if (t.storage == Storage::kArena)
      e["offset"] = t.offset;
    else
      e["index"] = t.index;
    tensors.push_back(e);
  }
  j["tensors"] = tensors;
  json ins = json::array(), outs = json::array();
  for (size_t i = 0; i < L.inputs.size(); ++i)
    ins.push_back({{"name", L.input_names[i]}, {"tensor", L.inputs[i]}});
  for (size_t i = 0; i < L.outputs.size(); ++i)
    outs.push_back({{"name", L.output_names[i]}, {"tensor", L.outputs[i]}});
  j["inputs"] = ins;
  j["outputs"] = outs;
  json nodes = json::array();
  for (size_t i = 0; i < L.nodes.size(); ++i) {
    const LoweredNode& n = L.nodes[i];
    json attrs = json::object();
    if (n.node)
      for (const auto& [k, v] : n.node->attrs) attrs[k] = attr_json(v);
    json node = {{"name", n.name},
                 {"op", n.op},
                 {"kernel", kernel_symbol(i)},
                 {"inputs", n.input_tensors},
                 {"outputs", n.output_tensors},
                 {"attrs", attrs}};
    // kiln compile --tuning-log: the rows model.so uses on the tuned CPU (kiln inspect).
    const auto* tuned = opts.tuning && n.node && opts.tuning->nodes.count(n.node)
                            ? &opts.tuning->nodes.at(n.node)
                            : nullptr;
    if (tuned) {
      json rows = json::array();
      for (const tune::TunedRow& r : *tuned) {
        json row = {{"max_m", r.max_m < 0 ? json() : json(r.max_m)}};
        row.update(tune::schedule_json(r.schedule));
        rows.push_back(std::move(row));
      }
      node["schedule"] = std::move(rows);
    }
    nodes.push_back(std::move(node));
  }
  j["nodes"] = nodes;
  const uint32_t graph_crc32 = artifact::graph_checksum(nlohmann::json::parse(j.dump()));
  j["graph_crc32"] = graph_crc32;

  // model.cpp (+ parts) and model.so
  const int parts =
      static_cast<int>((L.nodes.size() + kNodesPerSourcePart - 1) / kNodesPerSourcePart);
  KILN_ASSIGN_OR_RETURN(auto sources,
                        emit_sources(g, L, opts.target.name, std::max(parts, 1), opts.tuning));
  sources[0] +=
      "extern \"C\" __attribute__((visibility(\"default\"))) uint32_t "
      "kiln_model_graph_crc32() { return " +
      std::to_string(graph_crc32) + "u; }\n";
  std::vector<std::string> paths;
  for (size_t p = 0; p < sources.size(); ++p) {
    paths.push_back(opts.output_dir +
                    (p == 0 ? "/model.cpp" : "/model_" + std::to_string(p) + ".cpp"));
    KILN_RETURN_IF_ERROR(write_text(paths.back(), sources[p]));
  }
  const std::string library = opts.output_dir + "/model.so";
  Status built = build_shared_library(opts.target, paths, library, opts.jobs);
  if (!opts.keep_source)
    for (const auto& p : paths) std::remove(p.c_str());
  KILN_RETURN_IF_ERROR(built);

  // model.json last: it records model.so's size and CRC-32, which the runtime checks before
  // dlopen (a damaged library would crash the process inside dlopen instead of failing).
  std::string so;
  KILN_RETURN_IF_ERROR(read_binary(library, &so));
  j["library_bytes"] = so.size();
  j["library_crc32"] = artifact::crc32(so.data(), so.size());
  return write_text(opts.output_dir + "/model.json", j.dump(1) + "\n");
}

}  // namespace kiln::codegen

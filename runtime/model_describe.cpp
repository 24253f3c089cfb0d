// Model, what it reports about itself: kiln_model_describe()'s JSON (built once at load) and the
// per-node profile (kiln_model_profile). See runtime/README.md.
#include <algorithm>
#include <map>

#include <nlohmann/json.hpp>

#include "runtime/cpu_features.h"
#include "runtime/dtype.h"
#include "runtime/model.h"

namespace kiln::rt {

void Model::set_profiling(bool on) {
  profiling_ = on;
  if (!on) return;
  profile_runs_ = 0;
  profile_run_time_ = {};
  profile_node_time_.assign(node_fns_.size(), {});
}

const char* Model::profile_json() {
  using nlohmann::json;
  auto ms = [](std::chrono::steady_clock::duration d) {
    return std::chrono::duration<double, std::milli>(d).count();
  };
  struct OpTotal {
    int64_t nodes = 0;
    std::chrono::steady_clock::duration time{};
  };
  std::map<std::string, OpTotal> ops;
  json nodes = json::array();
  for (size_t n = 0; n < desc_.nodes.size(); ++n) {
    const NodeDesc& node = desc_.nodes[n];
    const auto t = n < profile_node_time_.size() ? profile_node_time_[n]
                                                 : std::chrono::steady_clock::duration{};
    OpTotal& op = ops[node.op];
    ++op.nodes;
    op.time += t;
    nodes.push_back(
        {{"name", node.name}, {"op", node.op}, {"calls", profile_runs_}, {"ms", ms(t)}});
  }
  json op_list = json::array();
  for (const auto& [name, op] : ops)
    op_list.push_back({{"op", name},
                       {"nodes", op.nodes},
                       {"calls", op.nodes * profile_runs_},
                       {"ms", ms(op.time)}});
  std::stable_sort(op_list.begin(), op_list.end(), [](const json& a, const json& b) {
    return a["ms"].get<double>() > b["ms"].get<double>();
  });
  json j = {
      {"enabled", profiling_},           {"runs", profile_runs_}, {"run_ms", ms(profile_run_time_)},
      {"threads", backend_.num_threads}, {"ops", op_list},        {"nodes", nodes}};
  profile_ = j.dump();
  return profile_.c_str();
}

void Model::build_describe() {
  using nlohmann::json;
  const auto& names = desc_.symbol_names;
  auto shape_json = [&](const std::vector<SymDim>& shape) {
    json a = json::array();
    for (const SymDim& d : shape) {
      if (d.is_constant())
        a.push_back(d.coef);
      else
        a.push_back(d.str(names));
    }
    return a;
  };
  json j;
  j["format_version"] = KILN_FORMAT_VERSION;
  j["compiler_version"] = desc_.compiler_version;
  json fusions = json::array();
  for (const ModelDesc::Fusion& f : desc_.fusions)
    fusions.push_back({{"op", f.op}, {"fused", f.fused}, {"replaced", f.replaced}});
  j["fusions"] = fusions;
  j["dir"] = dir_;
  json features = json::array();
  for (const std::string& f : desc_.features)
    features.push_back({{"name", f}, {"host_has", host_feature(f) == FeatureState::kPresent}});
  j["target"] = {{"name", desc_.target_name},
                 {"arch", desc_.target_arch},
                 {"cpu", desc_.target_cpu},
                 {"features", features}};
  j["host"] = {{"arch", host_arch()}, {"features", host_features()}};
  j["kernel_variant"] = kernel_variant_.empty() ? json(nullptr) : json(kernel_variant_);
  j["tuning"] = tuning_.empty() ? json(nullptr) : json(tuning_);
  json syms = json::array();
  for (const SymbolDesc& s : desc_.symbols) syms.push_back({{"name", s.name}, {"max", s.max}});
  j["symbols"] = syms;
  auto io_json = [&](const std::vector<IoDesc>& ios) {
    json a = json::array();
    for (const IoDesc& io : ios) {
      const TensorDesc& t = desc_.tensors[io.tensor];
      a.push_back(
          {{"name", io.name}, {"dtype", dtype_name(t.dtype)}, {"shape", shape_json(t.shape)}});
    }
    return a;
  };
  j["inputs"] = io_json(desc_.inputs);
  j["outputs"] = io_json(desc_.outputs);
  std::map<std::string, int> ops;
  json nodes = json::array();
  for (const NodeDesc& n : desc_.nodes) {
    ++ops[n.op];
    json ins = json::array(), outs = json::array();
    for (int t : n.inputs) ins.push_back(t >= 0 ? json(desc_.tensors[t].name) : json(nullptr));
    for (int t : n.outputs) outs.push_back(desc_.tensors[t].name);
    json node = {
        {"name", n.name},     {"op", n.op},
        {"kernel", n.kernel}, {"inputs", ins},
        {"outputs", outs},    {"attrs", n.attrs.empty() ? json::object() : json::parse(n.attrs)}};
    if (!n.schedule.empty()) node["schedule"] = json::parse(n.schedule);
    nodes.push_back(std::move(node));
  }
  j["ops"] = ops;
  j["nodes"] = nodes;
  // Arena tensors at the symbols' maxima with the scale symbol at 1 (the planner's view).
  int64_t sym[KILN_MAX_SYMBOLS] = {};
  for (size_t s = 0; s < desc_.symbols.size(); ++s)
    sym[s] = static_cast<int>(s) == desc_.arena_scale ? 1 : desc_.symbols[s].max;
  json arena_tensors = json::array();
  for (const TensorDesc& t : desc_.tensors) {
    if (t.storage != Storage::kArena) continue;
    int64_t numel = 0;
    shape_numel(t.shape, sym, &numel);
    arena_tensors.push_back({{"name", t.name},
                             {"dtype", dtype_name(t.dtype)},
                             {"shape", shape_json(t.shape)},
                             {"offset", t.offset},
                             {"bytes", static_cast<uint64_t>(numel) * dtype_size(t.dtype)}});
  }
  j["arena"] = {{"bytes", desc_.arena_bytes},
                {"scale", desc_.arena_scale >= 0 ? json(names[desc_.arena_scale]) : json(nullptr)},
                {"alignment", desc_.arena_alignment},
                {"tensors", arena_tensors}};
  j["params"] = {{"file", desc_.params_file},
                 {"count", params_.entries().size()},
                 {"bytes", params_.file_bytes()}};
  describe_ = j.dump(2);
}

}  // namespace kiln::rt

// Writes model.json's "pooling" section; see pack_pooling.h.
#include "tools/kiln/pack_pooling.h"

#include <fstream>
#include <sstream>
#include <vector>

#include <nlohmann/json.hpp>

namespace kiln::tools {
namespace {

using nlohmann::json;

constexpr const char* kModes[] = {"cls", "mean", "max", "last", "none"};

// The float32 outputs of `rank` whose last dimension is a number, by name.
std::vector<std::string> candidates(const json& model, size_t rank) {
  std::vector<std::string> names;
  const json& tensors = model.at("tensors");
  for (const json& out : model.at("outputs")) {
    const json& t = tensors.at(out.at("tensor").get<size_t>());
    const json& shape = t.at("shape");
    if (t.at("dtype") == "float32" && shape.size() == rank && shape.back().is_number_integer() &&
        shape.back().get<int64_t>() > 0)
      names.push_back(out.at("name").get<std::string>());
  }
  return names;
}

std::string outputs_list(const json& model) {
  std::string s;
  const json& tensors = model.at("tensors");
  for (const json& out : model.at("outputs")) {
    const json& t = tensors.at(out.at("tensor").get<size_t>());
    s += (s.empty() ? "" : ", ") + out.at("name").get<std::string>() + " " +
         t.at("dtype").get<std::string>() + " " + t.at("shape").dump();
  }
  return s;
}

}  // namespace

bool is_pooling_mode(const std::string& mode) {
  for (const char* m : kModes)
    if (mode == m) return true;
  return false;
}

Status pack_pooling(const std::string& artifact_dir, const std::string& mode, bool normalize,
                    const std::string& output) {
  if (!is_pooling_mode(mode))
    return Status::error("--pooling: unknown mode '" + mode +
                         "' (expected cls, mean, max, last or none)");
  const std::string json_path = artifact_dir + "/model.json";
  std::ifstream in(json_path, std::ios::binary);
  if (!in) return Status::error(json_path + ": cannot open");
  std::stringstream text;
  text << in.rdbuf();
  json model;
  std::string chosen = output;
  try {
    model = json::parse(text.str());
    const size_t rank = mode == "none" ? 2 : 3;
    const char* want = rank == 2 ? "float32 [batch, dim]" : "float32 [batch, seq, dim]";
    const std::vector<std::string> names = candidates(model, rank);
    auto has = [&](const std::string& n) {
      for (const std::string& c : names)
        if (c == n) return true;
      return false;
    };
    if (!chosen.empty() && !has(chosen))
      return Status::error("--pooling-output: '" + chosen + "' is not a " + want +
                           " output of the model (its outputs: " + outputs_list(model) + ")");
    if (chosen.empty() && rank == 3 && has("last_hidden_state")) chosen = "last_hidden_state";
    if (chosen.empty() && names.size() == 1) chosen = names[0];
    if (chosen.empty())
      return Status::error(std::string("--pooling ") + mode + ": " +
                           (names.empty() ? "the model has no " + std::string(want) + " output"
                                          : "several " + std::string(want) +
                                                " outputs: choose one with --pooling-output") +
                           " (its outputs: " + outputs_list(model) + ")");
  } catch (const std::exception& e) {
    return Status::error(json_path + ": " + e.what());
  }
  model["pooling"] = {{"mode", mode}, {"output", chosen}, {"normalize", normalize}};
  std::ofstream out(json_path, std::ios::binary | std::ios::trunc);
  out << model.dump(1) << "\n";
  if (!out) return Status::error(json_path + ": cannot write");
  return Status::ok();
}

}  // namespace kiln::tools

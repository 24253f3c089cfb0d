// Packs vocab.txt or tokenizer.json into an artifact; see pack_vocab.h.
#include "tools/kiln/pack_vocab.h"

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "artifact/crc32.h"

namespace kiln::tools {
namespace {

using nlohmann::json;

Status read_file(const std::string& path, std::string* out) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return Status::error(path + ": cannot open");
  std::stringstream ss;
  ss << f.rdbuf();
  if (f.bad()) return Status::error(path + ": cannot read");
  *out = ss.str();
  return Status::ok();
}

// Rows of the embedding table that input_ids indexes (a Gather of a [V, H] param, or the table
// just before the ids in an EmbeddingLayerNorm's inputs), or -1.
int64_t word_embedding_rows(const json& model) {
  int64_t ids = -1;
  for (const json& in : model.at("inputs"))
    if (in.at("name") == "input_ids") ids = in.at("tensor").get<int64_t>();
  if (ids < 0) return -1;
  const json& tensors = model.at("tensors");
  for (const json& n : model.at("nodes")) {
    const json& ins = n.at("inputs");
    size_t at = 0;
    if (n.at("op") == "Gather" && ins.size() == 2 && ins[1] == ids) at = 1;
    if (n.at("op") == "EmbeddingLayerNorm")
      for (size_t i = 1; i < ins.size() && !at; ++i)
        if (ins[i] == ids) at = i;
    if (!at || !ins[at - 1].is_number_integer()) continue;
    const json& table = tensors.at(ins[at - 1].get<size_t>());
    if (table.at("storage") == "param" && table.at("shape").size() == 2 &&
        table.at("shape")[0].is_number_integer())
      return table.at("shape")[0].get<int64_t>();
  }
  return -1;
}

// The shared half of packing: the model has input_ids, `count` ids fit its word embedding, the
// file is copied into the artifact as `packed_name` and `section` becomes model.json's
// "tokenizer".
Status pack_into_artifact(const std::string& artifact_dir, const std::string& source,
                          const std::string& contents, const char* flag, int64_t count,
                          const char* what, const std::string& packed_name, const json& section) {
  const std::string json_path = artifact_dir + "/model.json";
  std::string text;
  KILN_RETURN_IF_ERROR(read_file(json_path, &text));
  json model;
  try {
    model = json::parse(text);
    bool has_ids = false;
    for (const json& in : model.at("inputs")) has_ids |= in.at("name") == "input_ids";
    if (!has_ids)
      return Status::error(std::string(flag) +
                           ": the model has no input named 'input_ids' to tokenize into");
    const int64_t rows = word_embedding_rows(model);
    if (rows > 0 && count > rows)
      return Status::error(source + ": " + std::to_string(count) + " " + what +
                           ", but the model's word embedding has " + std::to_string(rows) +
                           " rows (a tokenizer of another model?)");
  } catch (const std::exception& e) {
    return Status::error(json_path + ": " + e.what());
  }
  const std::string packed = artifact_dir + "/" + packed_name;
  {
    std::ofstream out(packed, std::ios::binary | std::ios::trunc);
    out << contents;
    if (!out) return Status::error(packed + ": cannot write");
  }
  model["tokenizer"] = section;
  std::ofstream out(json_path, std::ios::binary | std::ios::trunc);
  out << model.dump(1) << "\n";
  if (!out) return Status::error(json_path + ": cannot write");
  return Status::ok();
}

// Largest id a tokenizer.json can produce, as the runtime counts them (runtime/tokenizer_json.cpp:
// the model's vocabulary, added_tokens and the post-processor's special tokens).
void max_post_processor_id(const json& p, int64_t* max_id) {
  if (!p.is_object()) return;
  const std::string type = p.value("type", "");
  if (type == "BertProcessing" || type == "RobertaProcessing") {
    for (const char* key : {"cls", "sep"})
      *max_id = std::max(*max_id, p.at(key).at(1).get<int64_t>());
  } else if (type == "TemplateProcessing") {
    for (const auto& [name, entry] : p.at("special_tokens").items())
      for (const json& id : entry.at("ids")) *max_id = std::max(*max_id, id.get<int64_t>());
  } else if (type == "Sequence") {
    for (const json& step : p.at("processors")) max_post_processor_id(step, max_id);
  }
}

}  // namespace

Status pack_vocab(const std::string& artifact_dir, const std::string& vocab_path, bool lower_case) {
  std::string vocab;
  KILN_RETURN_IF_ERROR(read_file(vocab_path, &vocab));
  std::set<std::string> tokens;
  int64_t count = 0;
  std::istringstream lines(vocab);
  for (std::string line; std::getline(lines, line); ++count) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    tokens.insert(line);
  }
  if (count == 0) return Status::error(vocab_path + ": empty vocabulary");
  for (const char* special : {"[CLS]", "[SEP]", "[UNK]", "[PAD]"})
    if (!tokens.count(special))
      return Status::error(vocab_path + ": special token '" + special +
                           "' is missing (a BERT vocab.txt has [PAD] [UNK] [CLS] [SEP])");
  const json section = {
      {"type", "bert_wordpiece"},
      {"vocab", "vocab.txt"},
      {"vocab_size", count},
      {"vocab_crc32", artifact::crc32_update(0, vocab.data(), vocab.size())},
      {"lower_case", lower_case},
      {"max_chars_per_word", 100},
      {"cls_token", "[CLS]"},
      {"sep_token", "[SEP]"},
      {"unk_token", "[UNK]"},
      {"pad_token", "[PAD]"},
  };
  return pack_into_artifact(artifact_dir, vocab_path, vocab, "--vocab", count, "tokens",
                            "vocab.txt", section);
}

Status read_tokenizer_json(const std::string& path, TokenizerJson* out) {
  KILN_RETURN_IF_ERROR(read_file(path, &out->text));
  int64_t max_id = -1;
  try {
    const json t = json::parse(out->text);
    const json& model = t.at("model");
    out->model_type = model.at("type").get<std::string>();
    if (out->model_type == "WordPiece" || out->model_type == "BPE") {
      for (const auto& [token, id] : model.at("vocab").items())
        max_id = std::max(max_id, id.get<int64_t>());
    } else if (out->model_type == "Unigram") {
      max_id = static_cast<int64_t>(model.at("vocab").size()) - 1;
    } else {
      return Status::error(path + ": model type '" + out->model_type +
                           "' is not supported (kiln supports WordPiece, BPE and Unigram)");
    }
    if (t.contains("added_tokens") && t["added_tokens"].is_array())
      for (const json& a : t["added_tokens"]) max_id = std::max(max_id, a.at("id").get<int64_t>());
    if (t.contains("post_processor")) max_post_processor_id(t["post_processor"], &max_id);
  } catch (const std::exception& e) {
    return Status::error(path + ": not a tokenizer.json: " + e.what());
  }
  if (max_id < 0) return Status::error(path + ": empty vocabulary");
  out->path = path;
  out->vocab_size = max_id + 1;
  return Status::ok();
}

Status pack_tokenizer_json(const std::string& artifact_dir, const TokenizerJson& t) {
  const json section = {
      {"type", "tokenizer_json"},
      {"file", "tokenizer.json"},
      {"model", t.model_type},
      {"vocab_size", t.vocab_size},
      {"crc32", artifact::crc32_update(0, t.text.data(), t.text.size())},
  };
  return pack_into_artifact(artifact_dir, t.path, t.text, "--tokenizer", t.vocab_size,
                            "ids (largest + 1)", "tokenizer.json", section);
}

}  // namespace kiln::tools

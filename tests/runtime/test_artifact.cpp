// Toy artifact writer for the runtime tests; see test_artifact.h.
#include "test_artifact.h"

#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "artifact/crc32.h"
#include "artifact/params_format.h"
#include "kiln/c_api.h"

namespace kiln::test {

using nlohmann::json;

const char* this_arch() {
#if defined(__x86_64__)
  return "x86_64";
#elif defined(__aarch64__)
  return "aarch64";
#else
  return "unknown";
#endif
}

float word_value(int64_t id, int h) {
  return static_cast<float>(id) * 0.5f + h;
}
float type_value(int64_t t, int h) {
  return static_cast<float>(t) * 100.f - h * 0.25f;
}
float bias_value(int h) {
  return 0.125f * h - 1.f;
}

json default_model_json() {
  const int64_t arena_tensor = kMaxSeq * kHidden * 4;
  return json{
      {"format", "kiln"},
      {"format_version", 1},
      {"abi_version", 1},
      {"compiler", {{"name", "kiln"}, {"version", "test"}}},
      {"target",
       {{"name", "test"}, {"arch", this_arch()}, {"cpu", "generic"}, {"features", json::array()}}},
      {"source", {{"path", "test.onnx"}, {"opset", 14}}},
      {"library", "model.so"},
      {"params", {{"file", "model.params"}, {"bytes", 0}, {"count", 3}}},
      {"symbols", {{{"name", "batch"}, {"max", kMaxBatch}}, {{"name", "seq"}, {"max", kMaxSeq}}}},
      {"arena", {{"bytes", 2 * arena_tensor}, {"scale", "batch"}, {"alignment", 64}}},
      {"tensors",
       {
           {{"name", "input_ids"},
            {"dtype", "int64"},
            {"shape", {"batch", "seq"}},
            {"storage", "input"},
            {"index", 0}},
           {{"name", "token_type_ids"},
            {"dtype", "int64"},
            {"shape", {"batch", "seq"}},
            {"storage", "input"},
            {"index", 1}},
           {{"name", "word_emb"},
            {"dtype", "float32"},
            {"shape", {kVocab, kHidden}},
            {"storage", "param"},
            {"index", 0}},
           {{"name", "type_emb"},
            {"dtype", "float32"},
            {"shape", {kTypes, kHidden}},
            {"storage", "param"},
            {"index", 1}},
           {{"name", "bias"},
            {"dtype", "float32"},
            {"shape", {kHidden}},
            {"storage", "param"},
            {"index", 2}},
           {{"name", "t_word"},
            {"dtype", "float32"},
            {"shape", {"batch", "seq", kHidden}},
            {"storage", "arena"},
            {"offset", 0}},
           {{"name", "t_type"},
            {"dtype", "float32"},
            {"shape", {"batch", "seq", kHidden}},
            {"storage", "arena"},
            {"offset", arena_tensor}},
           {{"name", "hidden"},
            {"dtype", "float32"},
            {"shape", {"batch", "seq", kHidden}},
            {"storage", "output"},
            {"index", 0}},
           {{"name", "pooled"},
            {"dtype", "float32"},
            {"shape", {"batch", kHidden}},
            {"storage", "output"},
            {"index", 1}},
       }},
      {"inputs",
       {{{"name", "input_ids"}, {"tensor", 0}}, {{"name", "token_type_ids"}, {"tensor", 1}}}},
      {"outputs", {{{"name", "hidden"}, {"tensor", 7}}, {{"name", "pooled"}, {"tensor", 8}}}},
      {"nodes",
       {
           {{"name", "/embeddings/word/Gather"},
            {"op", "Gather"},
            {"kernel", "kiln_node_0"},
            {"inputs", {2, 0}},
            {"outputs", {5}},
            {"attrs", {{"axis", 0}}}},
           {{"name", "/embeddings/type/Gather"},
            {"op", "Gather"},
            {"kernel", "kiln_node_1"},
            {"inputs", {3, 1}},
            {"outputs", {6}},
            {"attrs", {{"axis", 0}}}},
           {{"name", "/embeddings/Add"},
            {"op", "Add"},
            {"kernel", "kiln_node_2"},
            {"inputs", {5, 6, 4}},
            {"outputs", {7}}},
           {{"name", "/pooler/Slice"},
            {"op", "Slice"},
            {"kernel", "kiln_node_3"},
            {"inputs", {7}},
            {"outputs", {8}}},
       }},
  };
}

namespace {
std::vector<uint8_t> floats(const std::vector<float>& v) {
  std::vector<uint8_t> b(v.size() * 4);
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}
template <typename T>
void put(std::vector<uint8_t>* out, T v) {
  const auto* p = reinterpret_cast<const uint8_t*>(&v);
  out->insert(out->end(), p, p + sizeof v);
}
}  // namespace

std::vector<ParamTensor> default_params() {
  std::vector<float> word, type, bias;
  for (int v = 0; v < kVocab; ++v)
    for (int h = 0; h < kHidden; ++h) word.push_back(word_value(v, h));
  for (int t = 0; t < kTypes; ++t)
    for (int h = 0; h < kHidden; ++h) type.push_back(type_value(t, h));
  for (int h = 0; h < kHidden; ++h) bias.push_back(bias_value(h));
  return {{"word_emb", KILN_FLOAT32, {kVocab, kHidden}, floats(word)},
          {"type_emb", KILN_FLOAT32, {kTypes, kHidden}, floats(type)},
          {"bias", KILN_FLOAT32, {kHidden}, floats(bias)}};
}

std::vector<uint8_t> params_file_bytes(const std::vector<ParamTensor>& params) {
  namespace af = kiln::artifact;
  // Table first (offsets depend on its size), then aligned data.
  uint64_t table_bytes = 0;
  for (const auto& p : params)
    table_bytes += 4 + p.name.size() + 4 + 4 + 8 * p.dims.size() + 8 + 8 + 4;
  const uint64_t data_offset =
      af::align_up(af::kParamsHeaderBytes + table_bytes, af::kParamsAlignment);
  std::vector<uint8_t> table;
  uint64_t offset = data_offset;
  std::vector<uint64_t> offsets;
  for (const auto& p : params) {
    put<uint32_t>(&table, static_cast<uint32_t>(p.name.size()));
    table.insert(table.end(), p.name.begin(), p.name.end());
    put<uint32_t>(&table, p.dtype);
    put<uint32_t>(&table, static_cast<uint32_t>(p.dims.size()));
    for (int64_t d : p.dims) put<int64_t>(&table, d);
    put<uint64_t>(&table, offset);
    put<uint64_t>(&table, p.data.size());
    put<uint32_t>(&table, af::crc32(p.data.data(), p.data.size()));
    offsets.push_back(offset);
    offset = af::align_up(offset + p.data.size(), af::kParamsAlignment);
  }
  std::vector<uint8_t> file(offset, 0);
  af::ParamsHeader h{};
  std::memcpy(h.magic, af::kParamsMagic, 8);
  h.format_version = af::kParamsFormatVersion;
  h.count = static_cast<uint32_t>(params.size());
  h.table_offset = af::kParamsHeaderBytes;
  h.table_bytes = table.size();
  h.data_offset = data_offset;
  h.file_bytes = file.size();
  h.table_crc32 = af::crc32(table.data(), table.size());
  h.header_crc32 = af::crc32(&h, af::kParamsHeaderCrcSpan);
  std::memcpy(file.data(), &h, sizeof h);
  std::memcpy(file.data() + af::kParamsHeaderBytes, table.data(), table.size());
  for (size_t i = 0; i < params.size(); ++i)
    std::memcpy(file.data() + offsets[i], params[i].data.data(), params[i].data.size());
  return file;
}

// Writes a new file and renames it over `path`: a model.so that a loaded model still maps is
// never modified in place.
void write_file(const std::string& path, const std::string& bytes) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!f) throw std::runtime_error("cannot write " + tmp);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) throw std::runtime_error("cannot rename " + tmp);
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot read " + path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void write_artifact(const std::string& dir, const json& model, const std::vector<uint8_t>& params,
                    const std::string& so_path) {
  mkdir(dir.c_str(), 0777);
  json m = model;
  if (m.is_object() && m.contains("params") && m["params"].is_object()) {
    if (m["params"].value("bytes", json(0)) == json(0)) m["params"]["bytes"] = params.size();
    if (params.size() >= 64 && !m["params"].contains("table_crc32")) {
      artifact::ParamsHeader h;
      std::memcpy(&h, params.data(), sizeof h);
      m["params"]["table_crc32"] = h.table_crc32;
    }
  }
  std::string so;
  if (!so_path.empty()) {
    so = read_file(so_path);
    // What kiln compile records (the caller's own values, or their absence, are kept).
    if (m.is_object() && !m.contains("library_bytes") && !m.contains("library_crc32")) {
      m["library_bytes"] = so.size();
      m["library_crc32"] = artifact::crc32(so.data(), so.size());
    }
  }
  write_file(dir + "/model.json", m.dump(2));
  write_file(dir + "/model.params", std::string(params.begin(), params.end()));
  if (!so_path.empty()) write_file(dir + "/model.so", so);
}

void write_default_artifact(const std::string& dir, const std::string& so_path) {
  write_artifact(dir, default_model_json(), params_file_bytes(default_params()), so_path);
}

std::string make_temp_dir(const std::string& tag) {
  const char* base = std::getenv("TMPDIR");
  std::string templ = std::string(base && *base ? base : "/tmp") + "/kiln_rt_" + tag + "_XXXXXX";
  std::vector<char> buf(templ.begin(), templ.end());
  buf.push_back('\0');
  if (!mkdtemp(buf.data())) throw std::runtime_error("mkdtemp failed for " + templ);
  return buf.data();
}

void remove_tree(const std::string& dir) {
  if (dir.size() < 8 || dir.find("kiln_rt_") == std::string::npos) return;  // safety
  nftw(
      dir.c_str(),
      [](const char* path, const struct stat*, int, struct FTW*) { return ::remove(path); }, 16,
      FTW_DEPTH | FTW_PHYS);
}

std::string make_vocab_artifact(const std::string& tag, const std::string& so_path,
                                const std::string& vocab, bool lower_case,
                                const nlohmann::json& extra) {
  const std::string dir = make_temp_dir(tag);
  write_default_artifact(dir, so_path);
  write_file(dir + "/vocab.txt", vocab);
  nlohmann::json model = nlohmann::json::parse(read_file(dir + "/model.json"));
  model["tokenizer"] = {{"type", "bert_wordpiece"},
                        {"vocab", "vocab.txt"},
                        {"vocab_size", std::count(vocab.begin(), vocab.end(), '\n')},
                        {"vocab_crc32", artifact::crc32_update(0, vocab.data(), vocab.size())},
                        {"lower_case", lower_case}};
  model.update(extra);
  write_file(dir + "/model.json", model.dump());
  return dir;
}

std::vector<float> expected_hidden(const std::vector<int64_t>& ids,
                                   const std::vector<int64_t>& types) {
  std::vector<float> out;
  for (size_t i = 0; i < ids.size(); ++i)
    for (int h = 0; h < kHidden; ++h)
      out.push_back((word_value(ids[i], h) + type_value(types[i], h)) + bias_value(h));
  return out;
}

}  // namespace kiln::test

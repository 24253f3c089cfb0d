// Writes the runtime tests' toy artifact (fixtures/test_model.cpp + model.json + model.params)
// into a directory, with hooks to corrupt any part of it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace kiln::test {

constexpr int kHidden = 8;
constexpr int kVocab = 100;
constexpr int kTypes = 2;
constexpr int64_t kMaxBatch = 4;
constexpr int64_t kMaxSeq = 16;

// "x86_64" or "aarch64": the architecture this test binary runs on.
const char* this_arch();

// Parameter values (deterministic, exactly representable).
float word_value(int64_t id, int h);
float type_value(int64_t t, int h);
float bias_value(int h);

nlohmann::json default_model_json();

struct ParamTensor {
  std::string name;
  uint32_t dtype;
  std::vector<int64_t> dims;
  std::vector<uint8_t> data;
};
std::vector<ParamTensor> default_params();
// Serializes params in the model.params layout (artifact/params_format.h).
std::vector<uint8_t> params_file_bytes(const std::vector<ParamTensor>& params);

// Writes model.json (with params.bytes/table_crc32 filled from `params`, and library_bytes /
// library_crc32 from `so_path` unless `model` has either), model.params and a copy of `so_path`
// as model.so into `dir` (created if needed).
void write_artifact(const std::string& dir, const nlohmann::json& model,
                    const std::vector<uint8_t>& params, const std::string& so_path);
// The default artifact with the default fixture library.
void write_default_artifact(const std::string& dir, const std::string& so_path);

void write_file(const std::string& path, const std::string& bytes);
std::string read_file(const std::string& path);
// A fresh empty directory under $TMPDIR.
std::string make_temp_dir(const std::string& tag);
void remove_tree(const std::string& dir);

// The default artifact (library so_path) in a fresh directory with `vocab` (one token per line)
// packed as its BERT WordPiece tokenizer (vocab.txt + model.json "tokenizer"), and `extra`'s
// fields merged into model.json.
std::string make_vocab_artifact(const std::string& tag, const std::string& so_path,
                                const std::string& vocab, bool lower_case,
                                const nlohmann::json& extra = nlohmann::json::object());

// Expected outputs for given ids.
std::vector<float> expected_hidden(const std::vector<int64_t>& ids,
                                   const std::vector<int64_t>& types);

}  // namespace kiln::test

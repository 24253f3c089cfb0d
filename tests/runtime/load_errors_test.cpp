// Loading broken artifacts: every failure returns a status and a message naming the file and the
// problem, never crashes. Includes fuzz-like truncations, byte flips and JSON edits.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "artifact/crc32.h"
#include "artifact/params_format.h"
#include "kiln/c_api.h"
#include "kiln/runtime.hpp"
#include "test_artifact.h"

namespace kiln::test {
namespace {

using nlohmann::json;

class LoadErrorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = make_temp_dir("load");
    params_ = params_file_bytes(default_params());
  }
  void TearDown() override { remove_tree(dir_); }

  // Loads dir_; returns the status and stores the message.
  // run_after: also run a model that loads. Off for edits that keep model.json well-formed but
  // contradict the shapes model.so has baked in: this hand-written fixture exports no graph
  // checksum, so they load here; compiled artifacts refuse them (tests/e2e/test_bad_input.py).
  kiln_status load(bool verify = true, bool run_after = true) {
    kiln_model* m = nullptr;
    kiln_load_options o{1, verify ? 1 : 0};
    kiln_status s = kiln_model_load(dir_.c_str(), &o, &m);
    message_ = kiln_last_error();
    if (s == KILN_OK) {
      EXPECT_NE(m, nullptr);
      if (run_after) try_run(m);
      kiln_model_free(m);
    } else {
      EXPECT_EQ(m, nullptr);
      EXPECT_FALSE(message_.empty());
    }
    return s;
  }
  // A loaded (possibly edited) model must still run or fail cleanly.
  static void try_run(kiln_model* m) {
    std::vector<int64_t> ids(64, 3), shape = {2, 8};
    for (int i = 0; i < kiln_model_num_inputs(m); ++i)
      kiln_model_set_input(m, i, KILN_INT64, shape.data(), 2, ids.data());
    kiln_model_run(m);
  }
  void write(const json& j) { write_artifact(dir_, j, params_, KILN_TEST_MODEL_SO); }
  void write_params(const std::vector<uint8_t>& p) {
    write_file(dir_ + "/model.params", std::string(p.begin(), p.end()));
  }
  void expect(kiln_status want, const std::string& fragment) {
    EXPECT_EQ(load(), want) << message_;
    EXPECT_NE(message_.find(fragment), std::string::npos)
        << "message: " << message_ << "\nexpected to contain: " << fragment;
  }

  std::string dir_, message_;
  std::vector<uint8_t> params_;
};

TEST_F(LoadErrorTest, DefaultArtifactLoads) {
  write(default_model_json());
  EXPECT_EQ(load(), KILN_OK) << message_;
}

TEST_F(LoadErrorTest, MissingDirectoryAndFiles) {
  std::string real = dir_;
  dir_ = real + "/does_not_exist";
  expect(KILN_ERROR_IO, "does_not_exist");
  dir_ = real;
  expect(KILN_ERROR_IO, "model.json");  // empty directory
  write(default_model_json());
  std::remove((dir_ + "/model.params").c_str());
  expect(KILN_ERROR_IO, "model.params");
  write(default_model_json());
  std::remove((dir_ + "/model.so").c_str());
  expect(KILN_ERROR_IO, "model.so");
  write_file(dir_ + "/file", "x");
  dir_ = real + "/file";
  expect(KILN_ERROR_IO, "is not a directory");
  dir_ = real;
}

TEST_F(LoadErrorTest, TruncatedParams) {
  write(default_model_json());
  const size_t n = params_.size();
  for (size_t size : {size_t{0}, size_t{1}, size_t{8}, size_t{51}, size_t{63}, size_t{64},
                      size_t{100}, size_t{200}, n / 2, n - 64, n - 1}) {
    SCOPED_TRACE("size " + std::to_string(size));
    write_params(std::vector<uint8_t>(params_.begin(), params_.begin() + size));
    kiln_status s = load();
    EXPECT_TRUE(s == KILN_ERROR_IO || s == KILN_ERROR_CORRUPT) << message_;
    EXPECT_NE(message_.find("model.params"), std::string::npos) << message_;
  }
  write_params(std::vector<uint8_t>(params_.begin(), params_.begin() + n - 1));
  expect(KILN_ERROR_IO, "truncated: " + std::to_string(n - 1) +
                            " bytes, model.json's params.bytes says " + std::to_string(n));
  auto longer = params_;
  longer.resize(n + 64);
  write_params(longer);
  expect(KILN_ERROR_CORRUPT, "wrong size");
}

TEST_F(LoadErrorTest, CorruptedParams) {
  write(default_model_json());
  auto p = params_;
  p[0] = 'X';
  write_params(p);
  expect(KILN_ERROR_CORRUPT, "bad magic");

  p = params_;
  p[12] ^= 1;  // count, covered by the header crc
  write_params(p);
  expect(KILN_ERROR_CORRUPT, "header checksum mismatch");

  p = params_;
  p[artifact::kParamsHeaderBytes + 5] ^= 0x40;  // inside the first entry's name
  write_params(p);
  expect(KILN_ERROR_CORRUPT, "table checksum mismatch");

  p = params_;
  artifact::ParamsHeader h;
  std::memcpy(&h, p.data(), sizeof h);
  p[h.data_offset + 17] ^= 0x10;  // word_emb data
  write_params(p);
  expect(KILN_ERROR_CORRUPT, "table entry 0 'word_emb': data checksum mismatch");
  EXPECT_EQ(load(/*verify=*/false), KILN_OK) << message_;  // crc of data skipped on request
}

// Params whose table is self-consistent (crcs recomputed) but disagrees with model.json.
TEST_F(LoadErrorTest, ParamsDisagreeWithModelJson) {
  auto params = default_params();
  params[2].dims = {4, 2};
  params_ = params_file_bytes(params);
  write(default_model_json());
  expect(KILN_ERROR_CORRUPT,
         "param 2 'bias' is float32[4, 2] but model.json tensor 'bias' is "
         "float32[8]");

  params = default_params();
  params[0].dtype = KILN_INT32;
  params_ = params_file_bytes(params);
  write(default_model_json());
  expect(KILN_ERROR_CORRUPT, "'word_emb' is int32");

  params = default_params();
  params.pop_back();
  params_ = params_file_bytes(params);
  write(default_model_json());
  expect(KILN_ERROR_CORRUPT, "2 tensors, model.json says 3");

  params_ = params_file_bytes(default_params());
  json j = default_model_json();
  j["params"]["bytes"] = 12345;
  write(j);
  expect(KILN_ERROR_IO, "truncated: " + std::to_string(params_.size()) +
                            " bytes, model.json's params.bytes says 12345");

  j = default_model_json();
  j["params"]["table_crc32"] = 7;
  write(j);
  expect(KILN_ERROR_CORRUPT, "table_crc32");

  // A table entry with a misaligned offset (crcs valid).
  auto p = params_file_bytes(default_params());
  artifact::ParamsHeader h;
  std::memcpy(&h, p.data(), sizeof h);
  // entry 0: name_len(4) "word_emb"(8) dtype(4) rank(4) dims(16) -> offset at +36
  uint64_t off;
  std::memcpy(&off, p.data() + h.table_offset + 36, 8);
  off += 4;
  std::memcpy(p.data() + h.table_offset + 36, &off, 8);
  h.table_crc32 = kiln::artifact::crc32(p.data() + h.table_offset, h.table_bytes);
  h.header_crc32 = kiln::artifact::crc32(&h, kiln::artifact::kParamsHeaderCrcSpan);
  std::memcpy(p.data(), &h, sizeof h);
  params_ = p;
  write(default_model_json());
  expect(KILN_ERROR_CORRUPT, "is not 64-byte aligned");
}

TEST_F(LoadErrorTest, InvalidModelJson) {
  write(default_model_json());
  write_file(dir_ + "/model.json", "{\n  \"format\": \"kiln\",\n  \"format_version\": 1,,\n}");
  expect(KILN_ERROR_CORRUPT, "model.json: invalid JSON at line 3");

  std::string text = default_model_json().dump(2);
  write_file(dir_ + "/model.json", text.substr(0, text.size() / 2));
  expect(KILN_ERROR_CORRUPT, "model.json: invalid JSON at line");

  write_file(dir_ + "/model.json", "");
  expect(KILN_ERROR_CORRUPT, "model.json: invalid JSON");

  write_file(dir_ + "/model.json", "[1, 2]");
  expect(KILN_ERROR_CORRUPT, "not an object");
}

TEST_F(LoadErrorTest, FormatVersion) {
  json j = default_model_json();
  j["format_version"] = 2;
  j["compiler"] = {{"name", "kiln"}, {"version", "9.8.7"}};
  write(j);
  expect(KILN_ERROR_INCOMPATIBLE, "model.json: format version 2, this runtime reads 1");
  expect(KILN_ERROR_INCOMPATIBLE, "compiled by kiln 9.8.7: upgrade the runtime");
  j["format_version"] = 0;
  write(j);
  expect(KILN_ERROR_INCOMPATIBLE, "recompile the model with kiln " KILN_VERSION);
  j = default_model_json();
  j["format"] = "onnx";
  write(j);
  expect(KILN_ERROR_CORRUPT, "not a kiln artifact");
  j = default_model_json();
  j["abi_version"] = 9;
  write(j);
  expect(KILN_ERROR_INCOMPATIBLE, "ABI version 9");
}

TEST_F(LoadErrorTest, WrongArchitecture) {
  json j = default_model_json();
  const bool x86 = std::string(this_arch()) == "x86_64";
  j["target"]["arch"] = x86 ? "aarch64" : "x86_64";
  j["target"]["name"] = x86 ? "rpi4" : "x86-64-v3";
  write(j);
  expect(KILN_ERROR_INCOMPATIBLE, x86 ? "artifact is built for aarch64 (target rpi4), this "
                                        "runtime is x86_64"
                                      : "artifact is built for x86_64 (target x86-64-v3), this "
                                        "runtime is aarch64");
}

TEST_F(LoadErrorTest, MissingCpuFeature) {
  write(default_model_json());
  Model m(dir_);
  json host = json::parse(m.describe())["host"]["features"];
  const std::vector<std::string> candidates =
      std::string(this_arch()) == "x86_64"
          ? std::vector<std::string>{"avx512f",    "avx512bw", "avx512vnni", "avx512fp16",
                                     "avx512bf16", "avxvnni",  "avx2",       "fma"}
          : std::vector<std::string>{"asimddp", "sve", "sve2", "i8mm", "bf16", "asimdhp"};
  std::string missing;
  for (const auto& c : candidates)
    if (std::find(host.begin(), host.end(), c) == host.end()) missing = c;
  json j = default_model_json();
  if (!host.empty()) {
    j["target"]["features"] = {host[0]};
    write(j);
    EXPECT_EQ(load(), KILN_OK) << message_;
  }
  j["target"]["features"] = {"no_such_feature"};
  write(j);
  expect(KILN_ERROR_INCOMPATIBLE, "CPU feature 'no_such_feature' which this runtime does not know");
  if (missing.empty()) GTEST_SKIP() << "this CPU has every candidate feature";
  j["target"]["features"] = {missing};
  write(j);
  expect(KILN_ERROR_INCOMPATIBLE,
         "artifact needs CPU feature '" + missing + "' which this CPU lacks");
}

TEST_F(LoadErrorTest, AbiMismatch) {
  write_artifact(dir_, default_model_json(), params_, KILN_TEST_MODEL_ABI2_SO);
  expect(KILN_ERROR_INCOMPATIBLE, "ABI version 2, this runtime implements 1");
}

TEST_F(LoadErrorTest, LibraryProblems) {
  json j = default_model_json();
  j["nodes"][2]["kernel"] = "kiln_node_42";
  write(j);
  expect(KILN_ERROR_CORRUPT, "does not export kernel 'kiln_node_42' of node '/embeddings/Add'");

  j = default_model_json();
  j["target"]["name"] = "rpi5";
  write(j);
  expect(KILN_ERROR_CORRUPT, "built for target 'test' but model.json says 'rpi5'");

  write(default_model_json());
  write_file(dir_ + "/model.so", "not an elf file");
  expect(KILN_ERROR_CORRUPT, "model.so is damaged");

  j = default_model_json();
  j["library"] = "../model.so";
  write(j);
  expect(KILN_ERROR_CORRUPT, "not a file name inside the artifact directory");
}

struct JsonEdit {
  const char* pointer;
  json value;
  const char* fragment;
};

TEST_F(LoadErrorTest, StructureErrorsNameTheField) {
  const std::vector<JsonEdit> edits = {
      {"/tensors/0/dtype", "float16", "tensors[0] 'input_ids'.dtype: unknown dtype 'float16'"},
      {"/tensors/0/shape/1", "seq*", "ends with '*'"},
      {"/tensors/0/shape/1", "sequence", "unknown symbol 'sequence'"},
      {"/tensors/0/shape/1", 1.5, "expected an integer or a symbolic expression"},
      {"/tensors/0/storage", "heap", "unknown storage 'heap'"},
      {"/tensors/5/offset", 4096, "arena offset 4096 + size does not fit arena.bytes 1024"},
      {"/tensors/5/offset", -64, "out of range"},
      {"/tensors/5/shape/0", "batch^2", "not linear in the scale symbol 'batch'"},
      {"/tensors/2/index", 7, "param index 7 is out of range"},
      {"/tensors/4/shape/0", 9, "model.json tensor 'bias' is float32[9]"},
      {"/tensors/7/index", 1, "does not have storage output with index 0"},
      {"/inputs/1/tensor", 99, "inputs[1].tensor: value 99 is out of range"},
      {"/inputs/1/name", "input_ids", "duplicate name 'input_ids'"},
      {"/nodes/0/inputs/1", 9, "nodes[0] '/embeddings/word/Gather'.inputs[1]: value 9 is out of"},
      {"/nodes/0/outputs/0", 2, "is a read-only param"},
      {"/nodes/1/kernel", "kiln node", "is not a symbol name"},
      {"/nodes/1/op", 5, "nodes[1] '/embeddings/type/Gather'.op: expected a string"},
      {"/symbols/1/max", -1, "symbols[1].max: value -1 is out of range"},
      {"/symbols/1/name", "batch", "duplicate symbol 'batch'"},
      {"/arena/scale", "heads", "arena.scale: unknown symbol 'heads'"},
      {"/arena/alignment", 48, "not a power of two"},
      {"/params/count", 2, "param index 2 is out of range"},
      {"/params/file", "", "not a file name"},
      {"/tensors", json::object(), "tensors: expected an array"},
      {"/nodes", nullptr, "nodes: expected an array"},
      {"/target/features", "asimd", "target.features: expected an array"},
  };
  for (const auto& e : edits) {
    SCOPED_TRACE(std::string(e.pointer) + " = " + e.value.dump());
    json j = default_model_json();
    j[json::json_pointer(e.pointer)] = e.value;
    write(j);
    expect(KILN_ERROR_CORRUPT, e.fragment);
  }
  json j = default_model_json();
  j.erase("tensors");
  write(j);
  expect(KILN_ERROR_CORRUPT, "missing field 'tensors'");
  // A symbol no input binds.
  j = default_model_json();
  j["symbols"].push_back({{"name", "heads"}, {"max", 12}});
  j["tensors"][6]["shape"] = {"batch", "heads*seq", 8};
  write(j);
  expect(KILN_ERROR_CORRUPT, "symbol 'heads' is not a dimension of any input");
}

TEST_F(LoadErrorTest, FuzzParamsByteFlips) {
  write(default_model_json());
  std::mt19937 rng(42);
  std::uniform_int_distribution<size_t> pos(0, params_.size() - 1);
  std::uniform_int_distribution<int> bit(0, 7);
  const size_t table_end = artifact::kParamsHeaderBytes + 120;  // a little past the table
  for (size_t i = 0; i < table_end + 150; ++i) {
    auto p = params_;
    size_t at = i < table_end ? i : pos(rng);  // every header and table byte, then random
    p[at] ^= static_cast<uint8_t>(1u << bit(rng));
    write_params(p);
    kiln_status s = load();
    // Checksums cover the header, table and data; the rest must be zero: every flip is caught.
    EXPECT_TRUE(s == KILN_ERROR_CORRUPT || s == KILN_ERROR_IO || s == KILN_ERROR_INCOMPATIBLE)
        << "flip at " << at << ": " << message_;
    EXPECT_NE(message_.find("model.params"), std::string::npos) << message_;
  }
}

TEST_F(LoadErrorTest, FuzzModelJsonText) {
  write(default_model_json());
  const std::string text = read_file(dir_ + "/model.json");
  std::mt19937 rng(7);
  std::uniform_int_distribution<size_t> pos(0, text.size() - 1);
  std::uniform_int_distribution<int> chr(32, 126);
  for (int i = 0; i < 120; ++i) {
    std::string t = text;
    switch (i % 4) {
      case 0:
        t.resize(pos(rng));
        break;
      case 1:
        t.erase(pos(rng), 1);
        break;
      case 2:
        t[pos(rng)] = static_cast<char>(chr(rng));
        break;
      case 3:
        t.insert(pos(rng), 1, "{}[],:\"0-e"[i % 10]);
        break;
    }
    write_file(dir_ + "/model.json", t);
    kiln_status s = load(true, false);
    if (s != KILN_OK) {
      EXPECT_NE(message_.find("model"), std::string::npos) << message_;
    }
  }
}

TEST_F(LoadErrorTest, FuzzModelJsonValues) {
  // Replace every scalar in the document, in turn, with hostile values.
  const json base = default_model_json();
  std::vector<std::string> pointers;
  std::function<void(const json&, const std::string&)> walk = [&](const json& j,
                                                                  const std::string& at) {
    if (j.is_object()) {
      for (auto it = j.begin(); it != j.end(); ++it) walk(it.value(), at + "/" + it.key());
    } else if (j.is_array()) {
      for (size_t k = 0; k < j.size(); ++k) walk(j[k], at + "/" + std::to_string(k));
    } else {
      pointers.push_back(at);
    }
  };
  walk(base, "");
  const std::vector<json> hostile = {-1,      int64_t{1} << 62, "",
                                     nullptr, json::array(),    "batch*batch*batch*batch*seq^60"};
  int failures = 0;
  for (const auto& p : pointers) {
    for (const auto& v : hostile) {
      json j = base;
      j[json::json_pointer(p)] = v;
      write(j);
      if (load(true, false) != KILN_OK) {
        ++failures;
      } else if (std::getenv("KILN_TEST_VERBOSE")) {
        std::printf("loads: %s = %s\n", p.c_str(), v.dump().c_str());
      }
    }
  }
  EXPECT_GT(failures, static_cast<int>(pointers.size()));
}

}  // namespace
}  // namespace kiln::test

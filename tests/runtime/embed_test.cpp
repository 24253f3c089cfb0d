// kiln_model_embed through the C API on the toy artifact with a packed vocab.txt: its output
// `hidden` is word + type + bias per token (expected_hidden), so each text's embedding is known
// exactly from its own ids. Checks every pooling mode with and without normalisation against a
// double reference over the text's tokens, that sorting, run sizes and the given order give the
// same vectors in input order, the stats, the fallback to a [batch, dim] output, and the errors.
// Runs natively and, in the cross build, under qemu (Cortex-A72 and A76).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kiln/c_api.h"
#include "kiln/runtime.hpp"
#include "test_artifact.h"

namespace kiln::test {
namespace {

const char kVocab[] = "[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\nworld\na\n!\n.\nun\n##believ\n##able\n";

// The toy artifact + vocab.txt; `pooling` becomes model.json's section unless it is null.
std::string make_artifact(const std::string& tag, const nlohmann::json& pooling) {
  nlohmann::json extra = nlohmann::json::object();
  if (!pooling.is_null()) extra["pooling"] = pooling;
  return make_vocab_artifact(tag, KILN_TEST_MODEL_SO, kVocab, true, extra);
}

// Lengths 2 ("") to 16 (truncated from 22), so every run but a single text's pads.
const std::vector<std::string> kTexts = {"hello world",
                                         "",
                                         "Hello, world! a a a",
                                         "unbelievable",
                                         "a . a . a . a . a . a . a . a . a . a",
                                         "world"};

std::vector<int64_t> ids_of(Model& m, const std::string& text) {
  const char* texts[] = {text.c_str()};
  kiln_encoding enc;
  check(kiln_model_encode(m.get(), texts, 1, 0, &enc));
  return std::vector<int64_t>(enc.input_ids, enc.input_ids + enc.seq);
}

std::vector<double> reference(const std::string& mode, bool normalize,
                              const std::vector<int64_t>& ids) {
  const std::vector<float> h = expected_hidden(ids, std::vector<int64_t>(ids.size(), 0));
  const size_t n = ids.size();
  std::vector<double> v(kHidden, 0);
  for (int d = 0; d < kHidden; ++d) {
    if (mode == "cls") v[d] = h[d];
    if (mode == "last") v[d] = h[(n - 1) * kHidden + d];
    if (mode == "mean") {
      for (size_t t = 0; t < n; ++t) v[d] += h[t * kHidden + d];
      v[d] /= static_cast<double>(n);
    }
    if (mode == "max") {
      v[d] = h[d];
      for (size_t t = 1; t < n; ++t) v[d] = std::max(v[d], static_cast<double>(h[t * kHidden + d]));
    }
  }
  if (normalize) {
    double norm = 0;
    for (double x : v) norm += x * x;
    for (double& x : v) x /= std::max(std::sqrt(norm), 1e-12);
  }
  return v;
}

TEST(Embed, EveryModeMatchesTheReference) {
  for (const char* mode : {"cls", "mean", "max", "last"})
    for (bool normalize : {false, true}) {
      SCOPED_TRACE(std::string(mode) + (normalize ? " normalized" : ""));
      const std::string dir = make_artifact(
          "embed_mode", {{"mode", mode}, {"output", "hidden"}, {"normalize", normalize}});
      Model m(dir);
      ASSERT_EQ(m.embedding_dim(), kHidden);
      kiln_embed_stats stats;
      const std::vector<float> got = m.embed(kTexts, nullptr, &stats);
      const std::string warning = stats.warning;  // valid until the next encode / embed
      ASSERT_EQ(got.size(), kTexts.size() * kHidden);
      int64_t tokens = 0;
      for (size_t i = 0; i < kTexts.size(); ++i) {
        const std::vector<int64_t> ids = ids_of(m, kTexts[i]);
        tokens += static_cast<int64_t>(ids.size());
        const std::vector<double> want = reference(mode, normalize, ids);
        for (int d = 0; d < kHidden; ++d)
          ASSERT_NEAR(got[i * kHidden + d], want[d], 1e-5 * (1 + std::fabs(want[d])))
              << "text " << i << " d " << d;
      }
      // 6 texts in runs of at most kMaxBatch (the batch symbol's maximum) = 4
      EXPECT_EQ(stats.runs, 2);
      EXPECT_EQ(stats.tokens, tokens);
      EXPECT_EQ(stats.num_truncated, 1);
      EXPECT_NE(warning.find("text 4 has "), std::string::npos) << warning;
      remove_tree(dir);
    }
}

TEST(Embed, RunSizesAndOrderGiveTheSameVectors) {
  const std::string dir =
      make_artifact("embed_order", {{"mode", "mean"}, {"output", "hidden"}, {"normalize", true}});
  Model m(dir);
  kiln_embed_stats one, sorted, given;
  const kiln_embed_options single{1, 0}, pairs{2, 0}, in_order{2, 1};
  const std::vector<float> base = m.embed(kTexts, &single, &one);
  EXPECT_EQ(m.embed(kTexts, &pairs, &sorted), base);
  EXPECT_EQ(m.embed(kTexts, &in_order, &given), base);
  EXPECT_EQ(one.runs, 6);
  EXPECT_EQ(one.padded_tokens, one.tokens);  // one text per run: nothing padded
  EXPECT_EQ(sorted.runs, 3);
  EXPECT_EQ(given.runs, 3);
  EXPECT_LT(sorted.padded_tokens, given.padded_tokens);  // neighbours by length pad less
  remove_tree(dir);
}

TEST(Embed, WithoutPoolingAnOutputThatIsAlreadyAnEmbeddingIsServed) {
  const std::string dir = make_artifact("embed_as_is", nullptr);  // toy: `pooled` [batch, 8]
  Model m(dir);
  ASSERT_EQ(m.embedding_dim(), kHidden);
  const std::vector<float> got = m.embed(kTexts);
  for (size_t i = 0; i < kTexts.size(); ++i) {
    const std::vector<int64_t> ids = ids_of(m, kTexts[i]);
    const std::vector<int64_t> shape = {1, static_cast<int64_t>(ids.size())};
    const std::vector<int64_t> types(ids.size(), 0);
    m.set_input("input_ids", shape, ids.data());
    m.set_input("token_type_ids", shape, types.data());
    m.run();
    const TensorInfo pooled = m.get_output("pooled");
    const float* want = static_cast<const float*>(pooled.data);
    for (int d = 0; d < kHidden; ++d) ASSERT_EQ(got[i * kHidden + d], want[d]) << i;
  }
  remove_tree(dir);
}

kiln_status embed_status(kiln_model* m, const std::vector<const char*>& texts, float* out,
                         int64_t out_floats, const kiln_embed_options* opts = nullptr) {
  return kiln_model_embed(m, texts.data(), static_cast<int32_t>(texts.size()), opts, out,
                          out_floats, nullptr);
}

void expect_error(kiln_status got, kiln_status want, const std::string& part) {
  EXPECT_EQ(got, want) << kiln_last_error();
  EXPECT_NE(std::string(kiln_last_error()).find(part), std::string::npos) << kiln_last_error();
}

TEST(Embed, BadCallsAreErrors) {
  const std::string dir =
      make_artifact("embed_bad", {{"mode", "cls"}, {"output", "hidden"}, {"normalize", false}});
  Model m(dir);
  float out[2 * kHidden];
  const std::vector<const char*> two = {"hello", "world"};
  expect_error(embed_status(nullptr, two, out, 16), KILN_ERROR_INVALID_ARGUMENT, "model is NULL");
  expect_error(kiln_model_embed(m.get(), two.data(), 0, nullptr, out, 16, nullptr),
               KILN_ERROR_INVALID_ARGUMENT, "n < 1 (no texts)");
  expect_error(kiln_model_embed(m.get(), nullptr, 2, nullptr, out, 16, nullptr),
               KILN_ERROR_INVALID_ARGUMENT, "texts is NULL");
  expect_error(embed_status(m.get(), two, nullptr, 16), KILN_ERROR_INVALID_ARGUMENT, "out is NULL");
  expect_error(embed_status(m.get(), two, out, 15), KILN_ERROR_INVALID_ARGUMENT,
               "out holds 15 floats, 2 embeddings of 8 need 16");
  expect_error(embed_status(m.get(), {"a", nullptr}, out, 16), KILN_ERROR_INVALID_ARGUMENT,
               "text 1 is NULL");
  const kiln_embed_options negative{-1, 0};
  expect_error(embed_status(m.get(), two, out, 16, &negative), KILN_ERROR_INVALID_ARGUMENT,
               "max_batch -1");
  EXPECT_EQ(embed_status(m.get(), two, out, 16), KILN_OK) << kiln_last_error();
  remove_tree(dir);
}

TEST(Embed, TokensPerTextOfTheLastEmbed) {
  const std::string dir =
      make_artifact("embed_tokens", {{"mode", "mean"}, {"output", "hidden"}, {"normalize", true}});
  Model m(dir);
  int64_t tokens[6];
  expect_error(kiln_model_embed_text_tokens(m.get(), 6, tokens, nullptr), KILN_ERROR_STATE,
               "did not succeed (or none ran)");
  m.embed(kTexts);
  std::vector<int64_t> full;
  const std::vector<int64_t> got = m.embed_text_tokens(kTexts.size(), &full);
  for (size_t i = 0; i < kTexts.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(got[i], static_cast<int64_t>(ids_of(m, kTexts[i]).size()));
    EXPECT_EQ(full[i], i == 4 ? 21 : got[i]);  // text 4 is cut from 21 tokens to 16
  }
  expect_error(kiln_model_embed_text_tokens(m.get(), 5, tokens, nullptr), KILN_ERROR_STATE,
               "embedded 6 texts, not 5");
  // kiln_model_count_tokens: the same untruncated counts, from the tokenizer alone
  std::vector<const char*> ptrs;
  for (const std::string& t : kTexts) ptrs.push_back(t.c_str());
  EXPECT_EQ(m.count_tokens(ptrs), full);
  const char* null_text[] = {nullptr};
  expect_error(kiln_model_count_tokens(m.get(), null_text, 1, tokens), KILN_ERROR_INVALID_ARGUMENT,
               "text 0 is NULL");
  expect_error(kiln_model_count_tokens(m.get(), ptrs.data(), 0, tokens),
               KILN_ERROR_INVALID_ARGUMENT, "n < 1");
  expect_error(kiln_model_count_tokens(m.get(), ptrs.data(), 1, nullptr),
               KILN_ERROR_INVALID_ARGUMENT, "full_tokens is NULL");
  // a failed embed leaves nothing to read
  float out[kHidden];
  const std::vector<const char*> bad = {nullptr};
  EXPECT_NE(embed_status(m.get(), bad, out, kHidden), KILN_OK);
  expect_error(kiln_model_embed_text_tokens(m.get(), 1, tokens, nullptr), KILN_ERROR_STATE,
               "did not succeed");
  remove_tree(dir);
}

TEST(Embed, CallsOfSeveralChunksGiveTheSameVectorsAndNameTextsByTheirIndex) {
  // 2,500 texts: embed tokenizes and sorts them in chunks of 1,024 (two full, one partial)
  const std::string dir =
      make_artifact("embed_chunks", {{"mode", "mean"}, {"output", "hidden"}, {"normalize", true}});
  Model m(dir);
  const std::vector<float> base = m.embed(kTexts);  // one chunk
  std::vector<std::string> many;
  for (size_t i = 0; i < 2500; ++i) many.push_back(kTexts[i * 5 % kTexts.size()]);
  kiln_embed_stats stats{};
  const kiln_embed_options pairs{2, 0};
  const std::vector<float> v = m.embed(many, &pairs, &stats);
  std::vector<int64_t> full;
  const std::vector<int64_t> tokens = m.embed_text_tokens(many.size(), &full);
  const std::vector<int64_t> base_tokens = m.count_tokens({"hello world"});
  int truncated = 0;
  for (size_t i = 0; i < many.size(); ++i) {
    SCOPED_TRACE(i);
    const size_t t = i * 5 % kTexts.size();
    ASSERT_TRUE(std::equal(v.begin() + i * kHidden, v.begin() + (i + 1) * kHidden,
                           base.begin() + t * kHidden));
    EXPECT_EQ(full[i], t == 4 ? 21 : tokens[i]);
    truncated += t == 4;
  }
  EXPECT_EQ(tokens[0], base_tokens[0]);
  EXPECT_EQ(stats.num_truncated, truncated);
  EXPECT_EQ(stats.runs, 1250);  // chunks are whole runs: none is cut short at a chunk's end
  // warnings and errors name a text by its index in the call, not in its chunk
  size_t late = many.size() - 1;  // the last copy of text 4, in the third chunk
  while (late * 5 % kTexts.size() != 4) --late;
  ASSERT_GT(late, 2048u);
  EXPECT_NE(std::string(stats.warning).find("text " + std::to_string(late) + " has 21 tokens"),
            std::string::npos);
  std::vector<const char*> ptrs;
  for (const std::string& t : many) ptrs.push_back(t.c_str());
  ptrs[1500] = nullptr;
  std::vector<float> out(many.size() * kHidden);
  expect_error(embed_status(m.get(), ptrs, out.data(), static_cast<int64_t>(out.size())),
               KILN_ERROR_INVALID_ARGUMENT, "text 1500 is NULL");
  remove_tree(dir);
}

TEST(Embed, ArtifactsThatCannotEmbed) {
  // no tokenizer
  std::string dir = make_temp_dir("embed_no_tok");
  write_default_artifact(dir, KILN_TEST_MODEL_SO);
  {
    Model m(dir);
    float out[kHidden];
    expect_error(embed_status(m.get(), {"hello"}, out, kHidden), KILN_ERROR_STATE,
                 "the artifact has no tokenizer");
    const char* hello[] = {"hello"};
    int64_t full = 0;
    expect_error(kiln_model_count_tokens(m.get(), hello, 1, &full), KILN_ERROR_STATE,
                 "the artifact has no tokenizer");
  }
  remove_tree(dir);
  // pooling sections the runtime refuses at load, naming the field
  const std::vector<std::pair<nlohmann::json, std::string>> bad = {
      {{{"mode", "avg"}, {"output", "hidden"}, {"normalize", false}},
       "pooling.mode: 'avg' is not supported"},
      {{{"mode", "mean"}, {"output", "nope"}, {"normalize", false}},
       "pooling.output: the model has no output 'nope'"},
      {{{"mode", "mean"}, {"output", "pooled"}, {"normalize", false}},
       "output 'pooled' is float32 of rank 2; pooling 'mean' needs float32 [batch, seq, dim]"},
      {{{"mode", "none"}, {"output", "hidden"}, {"normalize", true}},
       "pooling 'none' needs float32 [batch, dim]"},
      {{{"mode", "cls"}, {"output", "hidden"}, {"normalize", "yes"}},
       "pooling.normalize: expected true or false"},
      {{{"mode", "cls"}, {"normalize", false}}, "missing field 'output'"},
  };
  for (const auto& [section, message] : bad) {
    dir = make_artifact("embed_bad_section", section);
    kiln_model* m = nullptr;
    EXPECT_NE(kiln_model_load(dir.c_str(), nullptr, &m), KILN_OK) << section.dump();
    EXPECT_NE(std::string(kiln_last_error()).find(message), std::string::npos) << kiln_last_error();
    kiln_model_free(m);
    remove_tree(dir);
  }
}

}  // namespace
}  // namespace kiln::test

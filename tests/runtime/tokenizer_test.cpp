// The WordPiece tokenizer through the C API (kiln_model_encode) on the toy artifact with a packed
// vocabulary: runs natively and, in the cross build, under qemu (char is unsigned on aarch64).
// Expected ids come from tests/python/wordpiece_ref.py, which tests/python/test_tokenizer.py
// checks the runtime against on many more strings.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "artifact/crc32.h"
#include "kiln/c_api.h"
#include "kiln/runtime.hpp"
#include "test_artifact.h"

namespace kiln::test {
namespace {

const char kVocab[] =
    "[PAD]\n[UNK]\n[CLS]\n[SEP]\ncafe\nnaive\nangstrom\n!\n.\n中\n文\nun\n##believ\n##able\na\n"
    "##a\nhello\nCafé\n,\nи\n##д\nй\n##о\n";

std::string make_artifact(bool lower_case, const std::string& tag) {
  const std::string dir = make_temp_dir(tag);
  write_default_artifact(dir, KILN_TEST_MODEL_SO);
  write_file(dir + "/vocab.txt", kVocab);
  nlohmann::json model = nlohmann::json::parse(read_file(dir + "/model.json"));
  const std::string vocab = kVocab;
  model["tokenizer"] = {{"type", "bert_wordpiece"},
                        {"vocab", "vocab.txt"},
                        {"vocab_size", 23},
                        {"vocab_crc32", artifact::crc32_update(0, vocab.data(), vocab.size())},
                        {"lower_case", lower_case}};
  write_file(dir + "/model.json", model.dump());
  return dir;
}

std::vector<int64_t> encode_one(Model& m, const std::string& text, kiln_encoding* enc) {
  const char* texts[] = {text.c_str()};
  check(kiln_model_encode(m.get(), texts, 1, 0, enc));
  return std::vector<int64_t>(enc->input_ids, enc->input_ids + enc->seq);
}

TEST(Tokenizer, LowerCaseMatchesTheReference) {
  const std::string dir = make_artifact(true, "tok_lower");
  Model m(dir);
  ASSERT_EQ(kiln_model_has_tokenizer(m.get()), 1);
  kiln_encoding enc;
  const std::vector<std::pair<std::string, std::vector<int64_t>>> cases = {
      {"Café, naïve Ångström!", {2, 4, 18, 5, 6, 7, 3}},
      {"中文!!..", {2, 9, 10, 7, 7, 8, 8, 3}},
      {"unbelievable", {2, 11, 12, 13, 3}},
      {"", {2, 3}},
      {"hello\x07\xe2\x80\x8b\tworld", {2, 16, 1, 3}},  // BEL and U+200B dropped
      {"йод", {2, 19, 22, 20, 3}},                      // й -> и + breve -> и
      {std::string(101, 'a'), {2, 1, 3}},               // > 100 chars: [UNK]
      {"hello \xff\xfe", {2, 16, 3}},                   // invalid UTF-8 dropped
  };
  for (const auto& [text, want] : cases) {
    EXPECT_EQ(encode_one(m, text, &enc), want) << text;
    EXPECT_EQ(enc.num_truncated, 0) << text;
  }
  remove_tree(dir);
}

TEST(Tokenizer, CasedKeepsCaseAndAccents) {
  const std::string dir = make_artifact(false, "tok_cased");
  Model m(dir);
  kiln_encoding enc;
  EXPECT_EQ(encode_one(m, "Café, naïve Ångström!", &enc),
            (std::vector<int64_t>{2, 17, 18, 1, 1, 7, 3}));
  EXPECT_EQ(encode_one(m, "йод", &enc), (std::vector<int64_t>{2, 21, 22, 20, 3}));
  remove_tree(dir);
}

TEST(Tokenizer, TruncatesToTheCompiledMaximumAndSaysSo) {
  const std::string dir = make_artifact(true, "tok_trunc");
  Model m(dir);
  kiln_encoding enc;
  std::vector<int64_t> want(kMaxSeq, 15);  // [CLS] a ##a ... [SEP]
  want.front() = 2;
  want[1] = 14;
  want.back() = 3;
  EXPECT_EQ(encode_one(m, std::string(100, 'a'), &enc), want);
  EXPECT_EQ(enc.num_truncated, 1);
  EXPECT_STREQ(enc.warning, "text 0 has 102 tokens, truncated to the maximum sequence length 16");
  remove_tree(dir);
}

TEST(Tokenizer, EncodeSetsTheInputsAndPads) {
  const std::string dir = make_artifact(true, "tok_run");
  Model m(dir);
  const char* texts[] = {"hello", "cafe naive angstrom !"};
  kiln_encoding enc;
  check(kiln_model_encode(m.get(), texts, 2, 0, &enc));
  ASSERT_EQ(enc.batch, 2);
  ASSERT_EQ(enc.seq, 6);
  const std::vector<int64_t> ids(enc.input_ids, enc.input_ids + 12);
  EXPECT_EQ(ids, (std::vector<int64_t>{2, 16, 3, 0, 0, 0, 2, 4, 5, 6, 7, 3}));
  const std::vector<int64_t> mask(enc.attention_mask, enc.attention_mask + 12);
  EXPECT_EQ(mask, (std::vector<int64_t>{1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 1, 1}));
  m.run();  // the inputs are set
  TensorInfo hidden = m.get_output(0);
  EXPECT_EQ(hidden.shape, (std::vector<int64_t>{2, 6, kHidden}));
  const std::vector<float> want = expected_hidden(ids, std::vector<int64_t>(12, 0));
  for (size_t i = 0; i < want.size(); ++i) ASSERT_EQ(hidden.as<float>()[i], want[i]) << i;
  remove_tree(dir);
}

TEST(Tokenizer, Errors) {
  const std::string plain = make_temp_dir("tok_plain");
  write_default_artifact(plain, KILN_TEST_MODEL_SO);
  Model m(plain);
  const char* texts[] = {"hello"};
  EXPECT_EQ(kiln_model_has_tokenizer(m.get()), 0);
  EXPECT_EQ(kiln_model_encode(m.get(), texts, 1, 0, nullptr), KILN_ERROR_STATE);
  EXPECT_NE(std::string(kiln_last_error()).find("has no tokenizer"), std::string::npos);
  EXPECT_EQ(kiln_model_encode(m.get(), nullptr, 1, 0, nullptr), KILN_ERROR_INVALID_ARGUMENT);
  remove_tree(plain);

  const std::string dir = make_artifact(true, "tok_bad");
  write_file(dir + "/vocab.txt", std::string(kVocab) + "extra\n");
  kiln_model* bad = nullptr;
  EXPECT_EQ(kiln_model_load(dir.c_str(), nullptr, &bad), KILN_ERROR_CORRUPT);
  EXPECT_NE(std::string(kiln_last_error()).find("tokenizer.vocab_crc32"), std::string::npos);
  remove_tree(dir);
}

}  // namespace
}  // namespace kiln::test

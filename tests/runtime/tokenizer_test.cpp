// The tokenizers through the C API (kiln_model_encode) on the toy artifact with a packed
// vocab.txt or tokenizer.json: runs natively and, in the cross build, under qemu (char is
// unsigned on aarch64). Expected WordPiece ids come from tests/python/wordpiece_ref.py, which
// tests/python/test_tokenizer.py checks the runtime against on many more strings; the
// tokenizer.json ids were computed with the `tokenizers` package, which
// tests/tokenizers/test_tokenizer_json.py checks the runtime against on many more strings.
// Bad tokenizer.json files must fail to load with an error naming the file and the field.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdio>

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
  return make_vocab_artifact(tag, KILN_TEST_MODEL_SO, kVocab, lower_case);
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

// An artifact whose tokenizer is `tokenizer_json` (vocab_size: largest id + 1).
std::string make_json_artifact(const std::string& tokenizer_json, int64_t vocab_size,
                               const std::string& tag) {
  const std::string dir = make_temp_dir(tag);
  write_default_artifact(dir, KILN_TEST_MODEL_SO);
  write_file(dir + "/tokenizer.json", tokenizer_json);
  nlohmann::json model = nlohmann::json::parse(read_file(dir + "/model.json"));
  model["tokenizer"] = {
      {"type", "tokenizer_json"},
      {"file", "tokenizer.json"},
      {"model", "test"},
      {"vocab_size", vocab_size},
      {"crc32", artifact::crc32_update(0, tokenizer_json.data(), tokenizer_json.size())}};
  write_file(dir + "/model.json", model.dump());
  return dir;
}

// The three model kinds, small enough to read; ids as `tokenizers` 0.23 gives them.
const char kWordPieceJson[] = R"({"added_tokens": [{"id": 0, "content": "[PAD]",
   "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
  {"id": 4, "content": "[MASK]",
   "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}],
  "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true,
                 "strip_accents": null, "lowercase": true},
  "pre_tokenizer": {"type": "BertPreTokenizer"},
  "post_processor": {"type": "BertProcessing", "sep": ["[SEP]", 3], "cls": ["[CLS]", 2]},
  "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
            "max_input_chars_per_word": 100,
            "vocab": {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "[MASK]": 4, "cafe": 5,
                      "un": 6, "##believ": 7, "##able": 8, "!": 9, "中": 10}}})";

const char kBpeJson[] = R"({"added_tokens": [{"id": 0, "content": "<s>",
   "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
  {"id": 2, "content": "</s>",
   "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
  {"id": 3, "content": "<mask>",
   "single_word": false, "lstrip": true, "rstrip": false, "normalized": false, "special": true}],
  "normalizer": null,
  "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true,
                    "use_regex": true},
  "post_processor": {"type": "RobertaProcessing", "sep": ["</s>", 2], "cls": ["<s>", 0],
                     "trim_offsets": true, "add_prefix_space": false},
  "model": {"type": "BPE", "dropout": null, "unk_token": null,
            "vocab": {"<s>": 0, "<pad>": 1, "</s>": 2, "<mask>": 3, "h": 4, "i": 5, "Ġ": 6,
                      "hi": 7, "Ġhi": 8, "!": 9},
            "merges": [["h", "i"], ["Ġ", "hi"]]}})";

const char kUnigramJson[] = R"({"added_tokens": [{"id": 0, "content": "<s>",
   "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
  {"id": 2, "content": "</s>",
   "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}],
  "normalizer": {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "},
  "pre_tokenizer": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always",
                    "split": true},
  "post_processor": {"type": "TemplateProcessing",
    "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
               {"Sequence": {"id": "A", "type_id": 0}},
               {"SpecialToken": {"id": "</s>", "type_id": 0}}],
    "pair": [{"Sequence": {"id": "A", "type_id": 0}}],
    "special_tokens": {"<s>": {"id": "<s>", "ids": [0], "tokens": ["<s>"]},
                       "</s>": {"id": "</s>", "ids": [2], "tokens": ["</s>"]}}},
  "model": {"type": "Unigram", "unk_id": 3, "byte_fallback": false,
            "vocab": [["<s>", 0.0], ["<pad>", 0.0], ["</s>", 0.0], ["<unk>", 0.0],
                      ["▁", -2.0], ["▁he", -3.0], ["llo", -3.0], ["▁hello", -7.0],
                      ["h", -4.0], ["e", -4.0], ["l", -4.0], ["o", -4.0]]}})";

TEST(TokenizerJson, ThreeKindsMatchTokenizers) {
  struct Case {
    const char* json;
    int64_t vocab_size;
    std::vector<std::pair<std::string, std::vector<int64_t>>> texts;
  };
  const std::vector<Case> cases = {
      {kWordPieceJson,
       11,
       {{"Café unbelievable!", {2, 5, 6, 7, 8, 9, 3}},
        {"中 [MASK] x", {2, 10, 4, 1, 3}},
        {"", {2, 3}}}},
      {kBpeJson, 10, {{"hi hi!", {0, 7, 8, 9, 2}}, {"hi <mask>", {0, 7, 3, 2}}, {"", {0, 2}}}},
      {kUnigramJson,
       12,
       {{"hello", {0, 5, 6, 2}},           // ▁he llo (-6) beats ▁hello (-7)
        {"hello  x", {0, 5, 6, 4, 3, 2}},  // x: <unk>
        {"hellohe", {0, 5, 6, 8, 9, 2}},
        {"", {0, 2}}}},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string dir =
        make_json_artifact(cases[i].json, cases[i].vocab_size, "tokjson" + std::to_string(i));
    Model m(dir);
    ASSERT_EQ(kiln_model_has_tokenizer(m.get()), 1);
    kiln_encoding enc;
    for (const auto& [text, want] : cases[i].texts)
      EXPECT_EQ(encode_one(m, text, &enc), want) << "case " << i << ": " << text;
    remove_tree(dir);
  }
}

// A precompiled charsmap made by sentencepiece 0.2.2 from five rules (A -> a, U+FB01 -> fi,
// e U+0301 -> U+00E9, U+2460 -> 1, U+FF21 -> A): the trie walk runs natively and under qemu.
const char kSmallCharsmap[] =
    "AAQAAAAAAQBBDQAABAAAgMwYAgCBBQAACQAAgJGEAgCgPQAAAAAAgKwIAgCBBQAABgAAgKEFAAACAACADwAAAA4AAA"
    "ARAAAAEAAAABMAAAASAAAAFQAAABQAAAAXAAAAFgAAABkAAAC80AIAGwAAABoAAAAdAAAAHAAAAB8AAAAeAAAAIQAA"
    "ACAAAAAjAAAAIgAAACUAAABlqAMAJwAAACYAAAApAAAAKAAAACsAAAAqAAAALQAAACwAAAAvAAAALgAAADEAAAAwAA"
    "AAMwAAADIAAAA1AAAANAAAADcAAAA2AAAAOQAAADgAAAA7AAAAOgAAAD0AAAA8AAAAPwAAAD4AAABBAAAAQAAAAEMA"
    "AABCAAAARQAAAEQAAABHAAAARgAAAEkAAABIAAAASwAAAEoAAABNAAAATAAAAE8AAABOAAAAUQAAAFAAAABTAAAAUg"
    "AAAFUAAABUAAAAVwAAAFYAAABZAAAAWAAAAFsAAABaAAAAXQAAAFwAAABfAAAAXgAAAGEAAABgAAAAYwAAAGIAAABl"
    "AAAAZAAAAGcAAABmAAAAaQAAAGgAAABrAAAAagAAAG0AAABsAAAAbwAAAG4AAABxAAAAcAAAAHMAAAByAAAAdQAAAH"
    "QAAAB3AAAAdgAAAHkAAAB4AAAAewAAAHoAAAB9AAAAfAAAAH8AAAB+AAAAgQAAAIAAAACDAAAAggAAAIUAAACEAAAA"
    "hwAAAIYAAACJAAAAiAAAAIsAAACKAAAAjQAAAIwAAACPAAAAjgAAAJEAAACQAAAAkwAAAJIAAACVAAAAlAAAAJcAAA"
    "CWAAAAmQAAAJgAAACbAAAAmgAAAJ0AAACcAAAAnwAAAJ4AAAChAAAAoAAAAOLUAACiAAAApQAAAKQAAACnAAAApgAA"
    "AKkAAACoAAAAqwAAAKoAAACtAAAArAAAAK8AAADvKAAAsQAAALAAAACzAAAAsgAAALUAAAC0AAAAtwAAALYAAAC5AA"
    "AAuAAAALsAAAC6AAAAvQAAALwAAAC/AAAAvgAAAMEAAADAAAAAwwAAAMIAAADFAAAAxAAAAMcAAADGAAAAyQAAAMgA"
    "AADLAAAAygAAAM0AAADMAAAAzwAAAM4AAADRAAAA0AAAANMAAADSAAAA1QAAANQAAADXAAAA1gAAANkAAADYAAAA2w"
    "AAANoAAADdAAAA3AAAAN8AAADeAAAA4QAAAOAAAADjAAAA4gAAAOUAAADkAAAA5wAAAOYAAADpAAAA6AAAAOsAAADq"
    "AAAA7QAAAOwAAADvAAAA7gAAAPEAAADwAAAA8wAAAPIAAAD1AAAA9AAAAPcAAAD2AAAA+QAAAPgAAAD7AAAA+gAAAP"
    "0AAAD8AAAA/wAAAP4AAAAxAEEAYQBmaQDDqQA=";

TEST(TokenizerJson, PrecompiledCharsmap) {
  nlohmann::json t = nlohmann::json::parse(kUnigramJson);
  t["normalizer"] = {
      {"type", "Sequence"},
      {"normalizers",
       {{{"type", "Precompiled"}, {"precompiled_charsmap", kSmallCharsmap}}, t["normalizer"]}}};
  for (const char* piece : {"a", "fi", "\u00e9", "1", "A"})
    t["model"]["vocab"].push_back({piece, std::string(piece) == "a" ? -4.0 : -3.0});
  const std::string dir = make_json_artifact(t.dump(), 17, "tokjson_precompiled");
  Model m(dir);
  kiln_encoding enc;
  const std::vector<std::pair<std::string, std::vector<int64_t>>> cases = {
      // ids as tokenizers 0.23 gives them
      {"A \uFB01 \u2460", {0, 4, 12, 4, 13, 4, 15, 2}},
      {"\uFF21", {0, 4, 16, 2}},  // -> A, not normalized again
      {"he\u0301llo", {0, 4, 8, 14, 6, 2}},
      {"AA  \uFB01", {0, 4, 12, 12, 4, 13, 2}},
  };
  for (const auto& [text, want] : cases) EXPECT_EQ(encode_one(m, text, &enc), want) << text;
  remove_tree(dir);
}

// Loading must fail with `status` and an error containing `what`.
void expect_load_error(const std::string& tokenizer_json, kiln_status status,
                       const std::string& what, int64_t vocab_size = 11) {
  const std::string dir = make_json_artifact(tokenizer_json, vocab_size, "tokjson_bad");
  kiln_model* m = nullptr;
  EXPECT_EQ(kiln_model_load(dir.c_str(), nullptr, &m), status) << what;
  const std::string message = kiln_last_error();
  EXPECT_NE(message.find(what), std::string::npos) << message;
  EXPECT_NE(message.find("tokenizer.json"), std::string::npos) << message;
  if (m) kiln_model_free(m);
  remove_tree(dir);
}

std::string replaced(std::string s, const std::string& from, const std::string& to) {
  const size_t at = s.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  return s.replace(at, from.size(), to);
}

TEST(TokenizerJson, BadFilesAreNamedErrors) {
  const std::string wp = kWordPieceJson;
  expect_load_error(wp.substr(0, wp.size() / 2), KILN_ERROR_CORRUPT, "not valid JSON");
  expect_load_error("", KILN_ERROR_CORRUPT, "not valid JSON");
  expect_load_error("[1, 2]", KILN_ERROR_CORRUPT, "top level: expected an object, got array");
  expect_load_error("{}", KILN_ERROR_CORRUPT, "top level: missing field 'model'");
  expect_load_error(replaced(wp, R"("type": "WordPiece")", R"("type": "WordLevel")"),
                    KILN_ERROR_CORRUPT, "model: model type 'WordLevel' is not supported");
  expect_load_error(replaced(wp, R"("type": "WordPiece")", R"("type": 7)"), KILN_ERROR_CORRUPT,
                    "model.type: expected a string, got number");
  expect_load_error(replaced(wp, R"("[SEP]": 3,)", R"("[SEP]": "3",)"), KILN_ERROR_CORRUPT,
                    R"(model.vocab["[SEP]"]: expected a token id)");
  expect_load_error(replaced(wp, R"("[SEP]": 3,)", R"("[SEP]": -3,)"), KILN_ERROR_CORRUPT,
                    R"(model.vocab["[SEP]"]: expected a token id)");
  expect_load_error(replaced(wp, R"("unk_token": "[UNK]")", R"("unk_token": "<unk>")"),
                    KILN_ERROR_CORRUPT, "model.unk_token: '<unk>' is not in the vocabulary");
  expect_load_error(replaced(wp, R"("lowercase": true)", R"("lowercase": "yes")"),
                    KILN_ERROR_CORRUPT, "normalizer.lowercase: expected true or false, got string");
  expect_load_error(replaced(wp, R"({"type": "BertNormalizer")", R"({"type": "NFKC")"),
                    KILN_ERROR_CORRUPT, "normalizer: normalizer type 'NFKC' is not supported");
  expect_load_error(replaced(wp, R"({"type": "BertPreTokenizer"})", R"({"type": "Digits"})"),
                    KILN_ERROR_CORRUPT, "pre_tokenizer: pre-tokenizer type 'Digits' is not");
  expect_load_error(replaced(wp, R"("type": "BertProcessing")", R"("type": "Frobnicate")"),
                    KILN_ERROR_CORRUPT, "post_processor: post-processor type 'Frobnicate'");
  expect_load_error(replaced(wp, R"("cls": ["[CLS]", 2])", R"("cls": "[CLS]")"), KILN_ERROR_CORRUPT,
                    "post_processor.cls: expected [\"token\", id]");
  expect_load_error(replaced(wp, R"("content": "[MASK]",)", ""), KILN_ERROR_CORRUPT,
                    "added_tokens[1]: missing field 'content'");
  // Sequences nested 40 deep: refused before the recursion gets deep
  std::string nested = R"({"type": "Lowercase"})";
  for (int i = 0; i < 40; ++i) nested = R"({"type": "Sequence", "normalizers": [)" + nested + "]}";
  nlohmann::json deep = nlohmann::json::parse(kWordPieceJson);
  deep["normalizer"] = nlohmann::json::parse(nested);
  expect_load_error(deep.dump(), KILN_ERROR_CORRUPT, "Sequences nested more than 16 deep");
  // a FIFO in place of the file: an error, not a load that blocks forever
  {
    const std::string dir = make_json_artifact(kWordPieceJson, 11, "tokjson_fifo");
    const std::string path = dir + "/tokenizer.json";
    ASSERT_EQ(std::remove(path.c_str()), 0);
    ASSERT_EQ(mkfifo(path.c_str(), 0600), 0);
    kiln_model* m = nullptr;
    EXPECT_EQ(kiln_model_load(dir.c_str(), nullptr, &m), KILN_ERROR_IO);
    EXPECT_NE(std::string(kiln_last_error()).find("not a regular file"), std::string::npos)
        << kiln_last_error();
    EXPECT_NE(std::string(kiln_last_error()).find("(model.json tokenizer.file)"), std::string::npos)
        << kiln_last_error();
    if (m) kiln_model_free(m);
    remove_tree(dir);
  }
  // a vocabulary larger than model.json says (another model's tokenizer.json)
  expect_load_error(wp, KILN_ERROR_CORRUPT, "11 ids (largest + 1), model.json's", 10);

  const std::string bpe = kBpeJson;
  expect_load_error(replaced(bpe, R"(["h", "i"])", R"(["h", "x"])"), KILN_ERROR_CORRUPT,
                    "model.merges[0]: 'x' is not in the vocabulary", 10);
  expect_load_error(replaced(bpe, R"(["h", "i"])", R"(["h"])"), KILN_ERROR_CORRUPT,
                    "model.merges[0]: expected \"left right\"", 10);
  expect_load_error(replaced(bpe, R"("dropout": null)", R"("dropout": 0.1)"), KILN_ERROR_CORRUPT,
                    "model.dropout: BPE dropout is not supported", 10);

  const std::string uni = kUnigramJson;
  expect_load_error(replaced(uni, R"(["e", -4.0])", R"(["e", "-4"])"), KILN_ERROR_CORRUPT,
                    "model.vocab[9]: expected [\"piece\", score]", 12);
  expect_load_error(replaced(uni, R"("unk_id": 3)", R"("unk_id": 12)"), KILN_ERROR_CORRUPT,
                    "model.unk_id: 12 is outside the vocabulary of 12", 12);
  expect_load_error(replaced(uni, R"({"Regex": " {2,}"})", R"({"Regex": "\\s+"})"),
                    KILN_ERROR_CORRUPT, "normalizer.pattern: Regex pattern '\\s+' is not supported",
                    12);
  // a Precompiled normalizer (its pattern and content fields are ignored)
  const std::string replace = R"("type": "Replace")";
  const std::string precompiled = R"("type": "Precompiled", "precompiled_charsmap": )";
  expect_load_error(replaced(uni, replace, precompiled + R"("AB*D")"), KILN_ERROR_CORRUPT,
                    "normalizer.precompiled_charsmap: is not base64", 12);
  expect_load_error(replaced(uni, replace, precompiled + R"("AAEAAAAAAAA=")"),  // 256 trie bytes
                    KILN_ERROR_CORRUPT,
                    "normalizer.precompiled_charsmap: trie size 256 does not fit its 8 bytes", 12);
  expect_load_error(replaced(uni, R"("prepend_scheme": "always")", R"("prepend_scheme": "both")"),
                    KILN_ERROR_CORRUPT, "pre_tokenizer.prepend_scheme: 'both' is not always", 12);
}

}  // namespace
}  // namespace kiln::test

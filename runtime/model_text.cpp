// Model's text side: loads and validates the tokenizer packed with the artifact (model.json
// "tokenizer" + vocab.txt or tokenizer.json) and turns texts into the BERT inputs
// (kiln_model_encode).
#include <algorithm>
#include <cstdint>
#include <string>

#include "artifact/crc32.h"
#include "runtime/artifact_file.h"
#include "runtime/dtype.h"
#include "runtime/model.h"
#include "runtime/tokenizer_json.h"

namespace kiln::rt {
namespace {

// Largest tokenizer file the loader reads: XLM-R's tokenizer.json is 17 MB, the largest common
// ones ~35 MB; BERT's vocab.txt 0.2 MB.
constexpr uint64_t kMaxTokenizerBytes = uint64_t{256} << 20;

}  // namespace

Status Model::load_tokenizer() {
  const TokenizerDesc& d = desc_.tokenizer;
  if (!d.present) return ok_status();
  const bool json_file = d.type == "tokenizer_json";
  const char* field = json_file ? "tokenizer.file" : "tokenizer.vocab";
  const char* crc_field = json_file ? "tokenizer.crc32" : "tokenizer.vocab_crc32";
  const std::string path = dir_ + "/" + d.vocab_file;
  std::string text;
  if (Status s = read_artifact_file(path, kMaxTokenizerBytes, &text); !s.ok())
    return error(s.code, s.message + " (model.json " + field + ")");
  const uint32_t crc = artifact::crc32_update(0, text.data(), text.size());
  if (crc != d.vocab_crc32)
    return error(KILN_ERROR_CORRUPT, path + ": checksum " + std::to_string(crc) +
                                         " differs from model.json's " + crc_field + " " +
                                         std::to_string(d.vocab_crc32) +
                                         " (tokenizer edited or from another model?)");
  if (input_index("input_ids") < 0)
    return error(KILN_ERROR_CORRUPT,
                 dir_ + "/model.json: has a tokenizer but no input named 'input_ids'");
  if (json_file) {
    KILN_RT_TRY(parse_tokenizer_json(text, path, &tokenizer_));
  } else {
    TokenizerOptions o;
    o.lower_case = d.lower_case;
    o.max_chars_per_word = d.max_chars_per_word;
    o.cls = d.cls;
    o.sep = d.sep;
    o.unk = d.unk;
    o.pad = d.pad;
    std::unique_ptr<Tokenizer> wordpiece;
    KILN_RT_TRY(Tokenizer::load(path, o, &wordpiece));
    tokenizer_ = std::move(wordpiece);
  }
  if (tokenizer_->vocab_size() != d.vocab_size) {
    const int64_t size = tokenizer_->vocab_size();
    tokenizer_.reset();
    return error(KILN_ERROR_CORRUPT, path + ": " + std::to_string(size) +
                                         (json_file ? " ids (largest + 1)" : " tokens") +
                                         ", model.json's " + "tokenizer.vocab_size says " +
                                         std::to_string(d.vocab_size));
  }
  return ok_status();
}

Status Model::need_tokenizer() const {
  if (tokenizer_) return ok_status();
  return error(KILN_ERROR_STATE,
               dir_ +
                   ": the artifact has no tokenizer (compile it with "
                   "`kiln compile ... --tokenizer tokenizer.json` or `--vocab vocab.txt`)");
}

int64_t Model::max_text_tokens() const {
  // load_tokenizer checked that a model with a tokenizer has input_ids
  const TensorDesc& ids_tensor = desc_.tensors[desc_.inputs[input_index("input_ids")].tensor];
  const int seq_symbol = ids_tensor.shape.empty() ? -1 : ids_tensor.shape.back().single_symbol();
  return seq_symbol >= 0 ? desc_.symbols[seq_symbol].max : 0;
}

Status Model::count_tokens(const char* const* texts, int n, int64_t* full_tokens) const {
  KILN_RT_TRY(need_tokenizer());
  const int64_t limit = max_text_tokens();  // encode stops storing ids there, still counts
  for (int i = 0; i < n; ++i) {
    if (!texts[i])
      return error(KILN_ERROR_INVALID_ARGUMENT, "text " + std::to_string(i) + " is NULL");
    tokenizer_->encode(texts[i], limit, &full_tokens[i]);
  }
  return ok_status();
}

Status Model::tokenize(const char* const* texts, int n, int64_t max_len,
                       std::vector<std::vector<int64_t>>* rows, int32_t* truncated,
                       int64_t* full_tokens, int first) {
  KILN_RT_TRY(need_tokenizer());
  const int64_t limit = max_text_tokens();
  if (max_len < 0 || max_len == 1)
    return error(KILN_ERROR_INVALID_ARGUMENT, "max_len " + std::to_string(max_len) +
                                                  ": must be 0 (the compiled maximum) or >= 2");
  if (max_len > 0 && limit > 0 && max_len > limit)
    return error(KILN_ERROR_INVALID_ARGUMENT, "max_len " + std::to_string(max_len) +
                                                  " exceeds the compiled maximum sequence length " +
                                                  std::to_string(limit));
  if (max_len == 0) max_len = limit;
  rows->assign(n, {});
  for (int i = 0; i < n; ++i) {
    if (!texts[i])
      return error(KILN_ERROR_INVALID_ARGUMENT, "text " + std::to_string(first + i) + " is NULL");
    int64_t full = 0;
    (*rows)[i] = tokenizer_->encode(texts[i], max_len, &full);
    if (full_tokens) full_tokens[i] = full;
    if (static_cast<int64_t>((*rows)[i].size()) < full) {
      ++*truncated;
      enc_warning_ += (enc_warning_.empty() ? "" : "; ") + std::string("text ") +
                      std::to_string(first + i) + " has " + std::to_string(full) +
                      " tokens, truncated to the maximum sequence length " +
                      std::to_string(max_len);
    }
  }
  return ok_status();
}

Status Model::set_text_inputs(const std::vector<std::vector<int64_t>>& rows, const int* order,
                              int count, size_t seq) {
  const size_t cells = static_cast<size_t>(count) * seq;
  enc_ids_.assign(cells, tokenizer_->pad_id());
  enc_mask_.assign(cells, 0);
  enc_types_.assign(cells, 0);
  for (int i = 0; i < count; ++i) {
    const std::vector<int64_t>& row = rows[order[i]];
    for (size_t k = 0; k < row.size(); ++k) {
      enc_ids_[i * seq + k] = row[k];
      enc_mask_[i * seq + k] = 1;
    }
  }
  const int64_t shape[2] = {count, static_cast<int64_t>(seq)};
  const std::pair<const char*, const std::vector<int64_t>*> feeds[] = {
      {"input_ids", &enc_ids_}, {"attention_mask", &enc_mask_}, {"token_type_ids", &enc_types_}};
  for (const auto& feed : feeds) {
    const int index = input_index(feed.first);
    if (index < 0) continue;
    const TensorDesc& t = desc_.tensors[desc_.inputs[index].tensor];
    if (t.shape.size() != 2)
      return error(KILN_ERROR_INVALID_ARGUMENT, std::string("input '") + feed.first +
                                                    "' has rank " + std::to_string(t.shape.size()) +
                                                    ", the tokenizer makes [batch, seq]");
    if (t.dtype == KILN_INT64) {
      KILN_RT_TRY(set_input(index, KILN_INT64, shape, 2, feed.second->data()));
    } else if (t.dtype == KILN_INT32) {
      std::vector<int32_t> narrow(feed.second->begin(), feed.second->end());
      KILN_RT_TRY(set_input(index, KILN_INT32, shape, 2, narrow.data()));
    } else {
      return error(KILN_ERROR_INVALID_ARGUMENT, std::string("input '") + feed.first + "' is " +
                                                    dtype_name(t.dtype) +
                                                    ", the tokenizer makes int64 or int32");
    }
  }
  return ok_status();
}

Status Model::encode(const char* const* texts, int n, int64_t max_len, kiln_encoding* out) {
  std::vector<std::vector<int64_t>> rows;
  int32_t truncated = 0;
  enc_warning_.clear();
  KILN_RT_TRY(tokenize(texts, n, max_len, &rows, &truncated));
  size_t seq = 0;
  for (const auto& row : rows) seq = std::max(seq, row.size());
  std::vector<int> order(n);
  for (int i = 0; i < n; ++i) order[i] = i;
  KILN_RT_TRY(set_text_inputs(rows, order.data(), n, seq));
  if (out)
    *out = kiln_encoding{
        n,         static_cast<int64_t>(seq), enc_ids_.data(), enc_mask_.data(), enc_types_.data(),
        truncated, enc_warning_.c_str()};
  return ok_status();
}

}  // namespace kiln::rt

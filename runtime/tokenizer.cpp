// BERT WordPiece tokenizer; see tokenizer.h for the algorithm and its Unicode coverage.
#include "runtime/tokenizer.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>

#include "runtime/unicode_text.h"

namespace kiln::rt {
namespace {

using text::append_lower;
using text::append_stripped;
using text::append_utf8;
using text::decode_utf8;
using text::encode_utf8;
using text::is_cjk;
using text::is_control;
using text::is_punctuation;
using text::is_whitespace;

// Python's str.split() also splits on these, which survive cleaning (they are Zl / Zp).
bool is_split_space(char32_t c) {
  return c == ' ' || c == 0x2028 || c == 0x2029;
}

// Splits on is_split_space, dropping empty pieces.
std::vector<std::u32string> split_whitespace(const std::u32string& s) {
  std::vector<std::u32string> out;
  std::u32string cur;
  for (char32_t c : s) {
    if (is_split_space(c)) {
      if (!cur.empty()) out.push_back(std::move(cur));
      cur.clear();
    } else {
      cur.push_back(c);
    }
  }
  if (!cur.empty()) out.push_back(std::move(cur));
  return out;
}

// The basic tokenizer, on code points.
std::vector<std::u32string> basic_tokens(const std::string& text, bool lower_case) {
  std::u32string clean;
  for (char32_t c : decode_utf8(text)) {
    if (c == 0 || c == 0xFFFD || is_control(c)) continue;
    if (is_whitespace(c)) {
      clean.push_back(' ');
    } else if (is_cjk(c)) {
      clean.push_back(' ');
      clean.push_back(c);
      clean.push_back(' ');
    } else {
      clean.push_back(c);
    }
  }
  std::vector<std::u32string> out;
  for (const std::u32string& word : split_whitespace(clean)) {
    std::u32string w = word;
    if (lower_case) {
      std::u32string lowered, stripped;
      for (char32_t c : word) append_lower(c, &lowered);
      for (char32_t c : lowered) append_stripped(c, &stripped);
      w = std::move(stripped);
    }
    std::u32string cur;
    for (char32_t c : w) {
      if (is_punctuation(c)) {
        if (!cur.empty()) out.push_back(std::move(cur));
        cur.clear();
        out.push_back(std::u32string(1, c));
      } else if (is_split_space(c)) {  // only from stripping: never, but keep words whole
        if (!cur.empty()) out.push_back(std::move(cur));
        cur.clear();
      } else {
        cur.push_back(c);
      }
    }
    if (!cur.empty()) out.push_back(std::move(cur));
  }
  return out;
}

}  // namespace

Status Tokenizer::load(const std::string& vocab_path, const TokenizerOptions& options,
                       std::unique_ptr<Tokenizer>* out) {
  std::ifstream f(vocab_path, std::ios::binary);
  if (!f) return error(KILN_ERROR_IO, "cannot open '" + vocab_path + "': " + std::strerror(errno));
  std::unique_ptr<Tokenizer> t(new Tokenizer());
  t->options_ = options;
  std::string line;
  int64_t id = 0;
  while (std::getline(f, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    t->vocab_[line] = id++;
  }
  if (f.bad()) return error(KILN_ERROR_IO, "cannot read '" + vocab_path + "'");
  t->vocab_size_ = id;
  if (options.max_chars_per_word < 1)
    return error(KILN_ERROR_CORRUPT, vocab_path + ": max_chars_per_word must be >= 1");
  const std::pair<const std::string*, int64_t*> specials[] = {{&options.cls, &t->cls_id_},
                                                              {&options.sep, &t->sep_id_},
                                                              {&options.unk, &t->unk_id_},
                                                              {&options.pad, &t->pad_id_}};
  for (const auto& s : specials) {
    *s.second = t->lookup(*s.first);
    if (*s.second < 0)
      return error(KILN_ERROR_CORRUPT,
                   vocab_path + ": special token '" + *s.first + "' is not in the vocabulary");
  }
  *out = std::move(t);
  return ok_status();
}

int64_t Tokenizer::lookup(const std::string& piece) const {
  auto it = vocab_.find(piece);
  return it == vocab_.end() ? -1 : it->second;
}

std::vector<std::string> Tokenizer::basic_tokenize(const std::string& text) const {
  std::vector<std::string> out;
  for (const std::u32string& w : basic_tokens(text, options_.lower_case))
    out.push_back(encode_utf8(w));
  return out;
}

void wordpiece_word(const std::u32string& word, const WordPieceVocab& vocab,
                    const std::string& prefix, int64_t max_chars, int64_t unk,
                    std::vector<int64_t>* ids) {
  if (static_cast<int64_t>(word.size()) > max_chars) {
    ids->push_back(unk);
    return;
  }
  std::string utf8;
  std::vector<size_t> offset;  // byte offset of each code point, plus the end
  for (char32_t c : word) {
    offset.push_back(utf8.size());
    append_utf8(c, &utf8);
  }
  offset.push_back(utf8.size());
  const size_t n = word.size(), first = ids->size();
  for (size_t start = 0; start < n;) {
    auto found = vocab.end();
    size_t end = n;
    for (; end > start; --end) {
      found = vocab.find((start > 0 ? prefix : "") +
                         utf8.substr(offset[start], offset[end] - offset[start]));
      if (found != vocab.end()) break;
    }
    if (found == vocab.end()) {
      ids->resize(first);
      ids->push_back(unk);
      return;
    }
    ids->push_back(found->second);
    start = end;
  }
}

std::vector<int64_t> Tokenizer::encode(const std::string& text, int64_t max_len,
                                       int64_t* full_len) const {
  std::vector<int64_t> ids{cls_id_};
  for (const std::u32string& w : basic_tokens(text, options_.lower_case))
    wordpiece_word(w, vocab_, "##", options_.max_chars_per_word, unk_id_, &ids);
  ids.push_back(sep_id_);
  if (full_len) *full_len = static_cast<int64_t>(ids.size());
  if (max_len >= 2 && static_cast<int64_t>(ids.size()) > max_len) {
    ids.resize(static_cast<size_t>(max_len));
    ids.back() = sep_id_;
  }
  return ids;
}

}  // namespace kiln::rt

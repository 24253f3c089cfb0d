// BERT WordPiece tokenizer; see tokenizer.h for the algorithm and its Unicode coverage.
#include "runtime/tokenizer.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>

namespace kiln::rt {
namespace {

struct CodeRange {
  uint32_t first, last;
};
struct CaseRun {
  uint32_t first, last, stride;
  int32_t delta;
};
struct StripEntry {
  uint16_t cp, base;
};

#include "runtime/unicode_tables.inc"

template <size_t N>
bool in_ranges(const CodeRange (&table)[N], char32_t c) {
  const CodeRange* end = table + N;
  const CodeRange* it =
      std::upper_bound(table, end, c, [](char32_t v, const CodeRange& r) { return v < r.first; });
  return it != table && c <= (it - 1)->last;
}

bool is_whitespace(char32_t c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || in_ranges(kSpaceSeparator, c);
}

bool is_control(char32_t c) {
  return in_ranges(kControl, c);
}

bool is_punctuation(char32_t c) {
  return in_ranges(kPunctuation, c);
}

// The CJK Unified Ideographs blocks BERT puts spaces around (not Hangul, not kana).
bool is_cjk(char32_t c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
         (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
         (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

// Python's str.split() also splits on these, which survive cleaning (they are Zl / Zp).
bool is_split_space(char32_t c) {
  return c == ' ' || c == 0x2028 || c == 0x2029;
}

void append_lower(char32_t c, std::u32string* out) {
  if (c == 0x130) {  // 'İ'.lower() == 'i' + U+0307 COMBINING DOT ABOVE
    out->push_back('i');
    out->push_back(0x307);
    return;
  }
  const CaseRun* end = kLowerRuns + sizeof kLowerRuns / sizeof kLowerRuns[0];
  const CaseRun* it = std::upper_bound(kLowerRuns, end, c,
                                       [](char32_t v, const CaseRun& r) { return v < r.first; });
  if (it != kLowerRuns) {
    const CaseRun& r = *(it - 1);
    if (c <= r.last && (c - r.first) % r.stride == 0) c = static_cast<char32_t>(c + r.delta);
  }
  out->push_back(c);
}

// NFD then drop non-spacing marks.
void append_stripped(char32_t c, std::u32string* out) {
  if (c >= 0xAC00 && c <= 0xD7A3) {  // Hangul syllable -> L V (T) jamo (Unicode 3.12)
    const char32_t s = c - 0xAC00;
    out->push_back(0x1100 + s / (21 * 28));
    out->push_back(0x1161 + (s % (21 * 28)) / 28);
    if (s % 28) out->push_back(0x11A7 + s % 28);
    return;
  }
  if (in_ranges(kNonspacingMark, c)) return;
  if (c <= 0xFFFF) {
    const StripEntry* end = kStripAccents + sizeof kStripAccents / sizeof kStripAccents[0];
    const StripEntry* it = std::lower_bound(
        kStripAccents, end, c, [](const StripEntry& e, char32_t v) { return e.cp < v; });
    if (it != end && it->cp == c) c = it->base;
  }
  out->push_back(c);
}

std::u32string decode_utf8(const std::string& s) {
  std::u32string out;
  out.reserve(s.size());
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  for (size_t i = 0; i < n;) {
    const unsigned char b = p[i];
    int len = b < 0x80 ? 1 : (b >> 5) == 6 ? 2 : (b >> 4) == 14 ? 3 : (b >> 3) == 30 ? 4 : 0;
    char32_t c = len == 1 ? b : len == 2 ? b & 0x1F : len == 3 ? b & 0x0F : b & 0x07;
    bool ok = len > 0 && i + len <= n;
    for (int k = 1; ok && k < len; ++k) {
      ok = (p[i + k] & 0xC0) == 0x80;
      c = (c << 6) | (p[i + k] & 0x3F);
    }
    static const char32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
    if (!ok || c < kMin[len] || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) {
      out.push_back(0xFFFD);
      ++i;  // resynchronise on the next byte
      continue;
    }
    out.push_back(c);
    i += len;
  }
  return out;
}

void append_utf8(char32_t c, std::string* out) {
  if (c < 0x80) {
    out->push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (c >> 6)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (c >> 12)));
    out->push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (c >> 18)));
    out->push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
}

std::string encode_utf8(const std::u32string& s) {
  std::string out;
  for (char32_t c : s) append_utf8(c, &out);
  return out;
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

// Greedy longest-match-first; a word with an unmatched remainder is one [UNK].
void Tokenizer::wordpiece(const std::u32string& word, std::vector<int64_t>* ids) const {
  if (static_cast<int64_t>(word.size()) > options_.max_chars_per_word) {
    ids->push_back(unk_id_);
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
    int64_t id = -1;
    size_t end = n;
    for (; end > start; --end) {
      std::string piece =
          (start > 0 ? "##" : "") + utf8.substr(offset[start], offset[end] - offset[start]);
      id = lookup(piece);
      if (id >= 0) break;
    }
    if (id < 0) {
      ids->resize(first);
      ids->push_back(unk_id_);
      return;
    }
    ids->push_back(id);
    start = end;
  }
}

std::vector<int64_t> Tokenizer::encode(const std::string& text, int64_t max_len,
                                       int64_t* full_len) const {
  std::vector<int64_t> ids{cls_id_};
  for (const std::u32string& w : basic_tokens(text, options_.lower_case)) wordpiece(w, &ids);
  ids.push_back(sep_id_);
  if (full_len) *full_len = static_cast<int64_t>(ids.size());
  if (max_len >= 2 && static_cast<int64_t>(ids.size()) > max_len) {
    ids.resize(static_cast<size_t>(max_len));
    ids.back() = sep_id_;
  }
  return ids;
}

}  // namespace kiln::rt

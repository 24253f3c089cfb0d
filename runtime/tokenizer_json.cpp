// Hugging Face tokenizer.json: parsing and the encode pipeline; see tokenizer_json.h for what is
// covered. Each step follows the `tokenizers` crate (0.2x) so that ids match it token for token.
#include "runtime/tokenizer_json.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <queue>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/unicode_text.h"

namespace kiln::rt {
namespace {

using nlohmann::json;
using U32 = std::u32string;

// Thrown inside this file only; parse_tokenizer_json turns it into a Status.
struct ParseError {
  std::string message;
};

[[noreturn]] void fail(const std::string& where, const std::string& what) {
  throw ParseError{where + ": " + what};
}

std::string kind(const json& v) {
  return v.type_name();
}

const json& member(const json& obj, const char* key, const std::string& where) {
  if (!obj.is_object()) fail(where, "expected an object, got " + kind(obj));
  auto it = obj.find(key);
  if (it == obj.end()) fail(where, std::string("missing field '") + key + "'");
  return *it;
}

bool has(const json& obj, const char* key) {
  auto it = obj.find(key);
  return it != obj.end() && !it->is_null();
}

std::string get_string(const json& obj, const char* key, const std::string& where) {
  const json& v = member(obj, key, where);
  if (!v.is_string()) fail(where + "." + key, "expected a string, got " + kind(v));
  return v.get<std::string>();
}

std::string opt_string(const json& obj, const char* key, const std::string& where,
                       const std::string& fallback) {
  return has(obj, key) ? get_string(obj, key, where) : fallback;
}

bool opt_bool(const json& obj, const char* key, const std::string& where, bool fallback) {
  if (!has(obj, key)) return fallback;
  const json& v = obj.at(key);
  if (!v.is_boolean()) fail(where + "." + key, "expected true or false, got " + kind(v));
  return v.get<bool>();
}

int64_t as_id(const json& v, const std::string& where) {
  if (!v.is_number_integer() || v.get<int64_t>() < 0 ||
      v.get<int64_t>() > std::numeric_limits<int32_t>::max())
    fail(where, "expected a token id (an integer in [0, 2^31)), got " + v.dump());
  return v.get<int64_t>();
}

const json& get_array(const json& obj, const char* key, const std::string& where) {
  const json& v = member(obj, key, where);
  if (!v.is_array()) fail(where + "." + key, "expected an array, got " + kind(v));
  return v;
}

std::string type_of(const json& component, const std::string& where) {
  return get_string(component, "type", where);
}

// Sequences inside Sequences: real files nest one level; a bound keeps the recursion shallow.
void check_depth(int depth, const std::string& where) {
  if (depth > 16) fail(where, "Sequences nested more than 16 deep");
}

bool is_white(char32_t c) {
  return text::is_white_space_property(c);
}

// ---- normalizers: U32 in place ----

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual void apply(U32* s) const = 0;
};

class BertNormalizer : public Normalizer {
 public:
  bool clean_text = true, chinese = true, strip_accents = true, lowercase = true;
  void apply(U32* s) const override {
    U32 out;
    for (char32_t c : *s) {
      if (clean_text) {
        if (c == 0 || c == 0xFFFD || text::is_control(c)) continue;
        if (c == '\t' || c == '\n' || c == '\r' || is_white(c)) c = ' ';
      }
      // tokenizers' ranges start CJK Extension E at U+2B920 (BERT's Python at U+2B820)
      if (chinese && text::is_cjk(c) && !(c >= 0x2B820 && c <= 0x2B91F)) {
        out.push_back(' ');
        out.push_back(c);
        out.push_back(' ');
      } else {
        out.push_back(c);
      }
    }
    if (strip_accents) {  // NFD, then drop non-spacing marks; before lower-casing, as tokenizers
      U32 stripped;
      for (char32_t c : out) text::append_stripped(c, &stripped);
      out = std::move(stripped);
    }
    if (lowercase) {
      U32 lowered;
      for (char32_t c : out) text::append_lower(c, &lowered);
      out = std::move(lowered);
    }
    *s = std::move(out);
  }
};

class Lowercase : public Normalizer {
 public:
  void apply(U32* s) const override {
    U32 out;
    for (char32_t c : *s) text::append_lower(c, &out);
    *s = std::move(out);
  }
};

// Replaces every non-overlapping match, left to right, of `literal`, or of runs of at least
// `min_run` copies of `run_char` (regexes `c+` and `c{n,}`).
class Replace : public Normalizer {
 public:
  U32 literal, content;
  char32_t run_char = 0;
  size_t min_run = 0;
  void apply(U32* s) const override {
    U32 out;
    for (size_t i = 0; i < s->size();) {
      if (min_run > 0) {
        size_t j = i;
        while (j < s->size() && (*s)[j] == run_char) ++j;
        if (j - i >= min_run) {
          out += content;
          i = j;
          continue;
        }
        out.append(*s, i, std::max<size_t>(j - i, 1));
        i += std::max<size_t>(j - i, 1);
        continue;
      }
      if (!literal.empty() && s->compare(i, literal.size(), literal) == 0) {
        out += content;
        i += literal.size();
      } else {
        out.push_back((*s)[i++]);
      }
    }
    *s = std::move(out);
  }
};

class Prepend : public Normalizer {
 public:
  U32 prefix;
  void apply(U32* s) const override {
    if (!s->empty()) s->insert(0, prefix);
  }
};

class Strip : public Normalizer {
 public:
  bool left = true, right = true;
  void apply(U32* s) const override {
    size_t b = 0, e = s->size();
    if (left)
      while (b < e && is_white((*s)[b])) ++b;
    if (right)
      while (e > b && is_white((*s)[e - 1])) --e;
    *s = s->substr(b, e - b);
  }
};

class NormalizerSequence : public Normalizer {
 public:
  std::vector<std::unique_ptr<Normalizer>> steps;
  void apply(U32* s) const override {
    for (const auto& n : steps) n->apply(s);
  }
};

// Standard base64 (RFC 4648, padding optional); false on any other character.
bool decode_base64(const std::string& in, std::string* out) {
  uint32_t acc = 0;
  int bits = 0;
  for (char ch : in) {
    int v;
    if (ch >= 'A' && ch <= 'Z')
      v = ch - 'A';
    else if (ch >= 'a' && ch <= 'z')
      v = ch - 'a' + 26;
    else if (ch >= '0' && ch <= '9')
      v = ch - '0' + 52;
    else if (ch == '+')
      v = 62;
    else if (ch == '/')
      v = 63;
    else if (ch == '=')
      break;
    else
      return false;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out->push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  return true;
}

// Extended grapheme clusters, approximated (UAX #29): a code point plus the marks (M*), ZWJ,
// ZWNJ, emoji modifiers and tag characters after it, CR LF as one; a control character stands
// alone. Not modelled (they only make clusters of 6 bytes or more, which Precompiled handles
// code point by code point anyway): Hangul jamo sequences, regional-indicator pairs, emoji ZWJ
// sequences, prepended concatenation marks.
size_t grapheme_end(const U32& s, size_t i) {
  auto extends = [](char32_t c) {
    return text::is_mark(c) || c == 0x200C || c == 0x200D || (c >= 0x1F3FB && c <= 0x1F3FF) ||
           (c >= 0xE0020 && c <= 0xE007F);
  };
  const char32_t base = s[i];
  if (base == '\r') return i + 1 < s.size() && s[i + 1] == '\n' ? i + 2 : i + 1;
  const bool control = base == '\n' || base == '\t' || base == 0x2028 || base == 0x2029 ||
                       (text::is_control(base) && base != 0x200C && base != 0x200D);
  size_t j = i + 1;
  if (!control)
    while (j < s.size() && extends(s[j])) ++j;
  return j;
}

// SentencePiece's precompiled charsmap (the `spm_precompiled` crate's format): a u32 byte size,
// a darts-clone double-array trie over UTF-8 of that many bytes, then the replacements, each
// ending in NUL; the trie maps a string to its replacement's offset. Applied per grapheme
// cluster shorter than 6 bytes (the shortest matching prefix replaces the whole cluster, as the
// crate does), else per code point.
class Precompiled : public Normalizer {
 public:
  std::vector<uint32_t> units;
  std::string replacements;

  static void parse(const std::string& base64, const std::string& where, Precompiled* p) {
    std::string blob;
    if (!decode_base64(base64, &blob)) fail(where, "is not base64");
    auto u32_at = [&](size_t at) {
      uint32_t v = 0;
      for (int k = 3; k >= 0; --k) v = (v << 8) | static_cast<unsigned char>(blob[at + k]);
      return v;
    };
    if (blob.size() < 4) fail(where, "is shorter than its 4-byte header");
    const uint32_t trie_bytes = u32_at(0);
    if (trie_bytes % 4 != 0 || trie_bytes == 0 || trie_bytes > blob.size() - 4)
      fail(where, "trie size " + std::to_string(trie_bytes) + " does not fit its " +
                      std::to_string(blob.size()) + " bytes");
    for (size_t at = 4; at < 4 + trie_bytes; at += 4) p->units.push_back(u32_at(at));
    p->replacements = blob.substr(4 + trie_bytes);
  }

  // The replacement of the shortest prefix of `s` that the trie holds, if any.
  bool transform(const std::string& s, std::string* out) const {
    auto offset = [](uint32_t u) { return (u >> 10) << ((u & (1u << 9)) >> 6); };
    size_t pos = offset(units[0]);
    for (unsigned char c : s) {
      if (c == 0) return false;
      pos ^= c;
      if (pos >= units.size()) return false;
      const uint32_t unit = units[pos];
      if ((unit & ((1u << 31) | 0xFF)) != c) return false;
      pos ^= offset(unit);
      if ((unit >> 8) & 1) {  // has a leaf: its value is at pos
        if (pos >= units.size()) return false;
        const size_t at = units[pos] & ((1u << 31) - 1);
        if (at >= replacements.size()) return false;
        const size_t end = replacements.find('\0', at);
        *out = replacements.substr(at, end == std::string::npos ? std::string::npos : end - at);
        return true;
      }
    }
    return false;
  }

  void apply(U32* s) const override {
    U32 out;
    std::string norm;
    for (size_t i = 0; i < s->size();) {
      const size_t end = grapheme_end(*s, i);
      const std::string cluster = text::encode_utf8(s->substr(i, end - i));
      if (cluster.size() < 6 && transform(cluster, &norm)) {
        out += text::decode_utf8(norm);
      } else {
        for (size_t k = i; k < end; ++k) {
          if (transform(text::encode_utf8(s->substr(k, 1)), &norm))
            out += text::decode_utf8(norm);
          else
            out.push_back((*s)[k]);
        }
      }
      i = end;
    }
    *s = std::move(out);
  }
};

// A Regex pattern kiln can run without a regex engine: a literal, or `c+` / `c{n,}`.
void parse_simple_regex(const std::string& pattern, const std::string& where, Replace* r) {
  const U32 p = text::decode_utf8(pattern);
  auto is_meta = [](char32_t c) {
    return std::u32string_view(U"\\^$.|?*+()[]{}").find(c) != std::u32string_view::npos;
  };
  if (std::none_of(p.begin(), p.end(), is_meta) && !p.empty()) {
    r->literal = p;
    return;
  }
  if (p.size() >= 2 && !is_meta(p[0])) {
    if (p.size() == 2 && p[1] == '+') {
      r->run_char = p[0];
      r->min_run = 1;
      return;
    }
    if (p[1] == '{' && p.back() == '}' && p[p.size() - 2] == ',' && p.size() > 4) {
      size_t n = 0;
      bool digits = true;
      for (size_t i = 2; i + 2 < p.size(); ++i) {
        digits &= p[i] >= '0' && p[i] <= '9';
        n = n * 10 + (p[i] - '0');
      }
      if (digits && n >= 1 && n < 1000) {
        r->run_char = p[0];
        r->min_run = n;
        return;
      }
    }
  }
  fail(where, "Regex pattern '" + pattern +
                  "' is not supported (kiln runs literals and one character repeated with + or "
                  "{n,})");
}

std::unique_ptr<Normalizer> parse_normalizer(const json& j, const std::string& where,
                                             int depth = 0) {
  if (j.is_null()) return nullptr;
  check_depth(depth, where);
  const std::string type = type_of(j, where);
  if (type == "BertNormalizer") {
    auto n = std::make_unique<BertNormalizer>();
    n->clean_text = opt_bool(j, "clean_text", where, true);
    n->chinese = opt_bool(j, "handle_chinese_chars", where, true);
    n->lowercase = opt_bool(j, "lowercase", where, true);
    n->strip_accents = opt_bool(j, "strip_accents", where, n->lowercase);  // null: as lowercase
    return n;
  }
  if (type == "Lowercase") return std::make_unique<Lowercase>();
  if (type == "Replace") {
    auto n = std::make_unique<Replace>();
    const json& pattern = member(j, "pattern", where);
    n->content = text::decode_utf8(get_string(j, "content", where));
    if (has(pattern, "String")) {
      n->literal = text::decode_utf8(get_string(pattern, "String", where + ".pattern"));
      if (n->literal.empty()) fail(where + ".pattern.String", "is empty");
    } else if (has(pattern, "Regex")) {
      parse_simple_regex(get_string(pattern, "Regex", where + ".pattern"), where + ".pattern",
                         n.get());
    } else {
      fail(where + ".pattern",
           "expected {\"String\": ...} or {\"Regex\": ...}, got " + pattern.dump());
    }
    return n;
  }
  if (type == "Prepend") {
    auto n = std::make_unique<Prepend>();
    n->prefix = text::decode_utf8(get_string(j, "prepend", where));
    return n;
  }
  if (type == "Strip") {
    auto n = std::make_unique<Strip>();
    n->left = opt_bool(j, "strip_left", where, true);
    n->right = opt_bool(j, "strip_right", where, true);
    return n;
  }
  if (type == "Sequence") {
    auto n = std::make_unique<NormalizerSequence>();
    const json& steps = get_array(j, "normalizers", where);
    for (size_t i = 0; i < steps.size(); ++i)
      if (auto step = parse_normalizer(steps[i], where + ".normalizers[" + std::to_string(i) + "]",
                                       depth + 1))
        n->steps.push_back(std::move(step));
    return n;
  }
  if (type == "Precompiled") {
    const std::string map = opt_string(j, "precompiled_charsmap", where, "");
    if (map.empty()) return nullptr;  // an empty charsmap maps nothing
    auto n = std::make_unique<Precompiled>();
    Precompiled::parse(map, where + ".precompiled_charsmap", n.get());
    return n;
  }
  fail(where, "normalizer type '" + type +
                  "' is not supported (kiln supports BertNormalizer, Lowercase, Replace, Prepend, "
                  "Strip, Precompiled, Sequence)");
}

// ---- pre-tokenizers: pieces of one text segment ----

struct Piece {
  U32 text;
  bool at_start = false;  // begins at offset 0 of the original text (Metaspace "first")
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  virtual void split(const Piece& in, std::vector<Piece>* out) const = 0;
};

// Splits on white space (dropped) and, for BertPreTokenizer, isolates punctuation.
class WhitespaceSplit : public PreTokenizer {
 public:
  bool isolate_punctuation = false;
  void split(const Piece& in, std::vector<Piece>* out) const override {
    const U32& s = in.text;
    size_t begin = 0;
    auto flush = [&](size_t end) {
      if (end > begin) out->push_back({s.substr(begin, end - begin), in.at_start && begin == 0});
    };
    for (size_t i = 0; i < s.size(); ++i) {
      if (is_white(s[i])) {
        flush(i);
        begin = i + 1;
      } else if (isolate_punctuation && text::is_punctuation(s[i])) {
        flush(i);
        begin = i;
        flush(i + 1);
        begin = i + 1;
      }
    }
    flush(s.size());
  }
};

// GPT-2's split regex
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// as a hand-written matcher: the length of the match at s[i] (always >= 1).
size_t gpt2_match(const U32& s, size_t i) {
  const size_t n = s.size();
  if (s[i] == '\'' && i + 1 < n) {
    const char32_t a = s[i + 1], b = i + 2 < n ? s[i + 2] : 0;
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
  }
  auto letter = [](char32_t c) { return text::is_letter(c); };
  auto number = [](char32_t c) { return text::is_number(c); };
  auto other = [](char32_t c) {
    return !is_white(c) && !text::is_letter(c) && !text::is_number(c);
  };
  for (auto cls : {+letter, +number, +other}) {  // " ?" then one or more of the class
    size_t j = i + (s[i] == ' ' && i + 1 < n && cls(s[i + 1]) ? 1 : 0);
    if (!cls(s[j])) continue;
    while (j < n && cls(s[j])) ++j;
    return j - i;
  }
  size_t j = i;  // s[i] is white space
  while (j < n && is_white(s[j])) ++j;
  if (j == n || j - i == 1) return j - i;  // \s+(?!\S) at the end, or \s+ of one
  return j - i - 1;                        // leave the last one to go with the next word
}

// Bytes -> printable code points, as GPT-2's bytes_to_unicode.
char32_t byte_char(unsigned char b) {
  static const std::vector<char32_t> table = [] {
    std::vector<char32_t> t(256);
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
      t[b] = printable ? static_cast<char32_t>(b) : next++;
    }
    return t;
  }();
  return table[b];
}

class ByteLevel : public PreTokenizer {
 public:
  bool add_prefix_space = true, use_regex = true;
  void split(const Piece& in, std::vector<Piece>* out) const override {
    U32 s = in.text;
    if (add_prefix_space && (s.empty() || s[0] != ' ')) s.insert(s.begin(), ' ');
    std::vector<U32> parts;
    if (use_regex) {
      for (size_t i = 0; i < s.size();) {
        const size_t len = gpt2_match(s, i);
        parts.push_back(s.substr(i, len));
        i += len;
      }
    } else {
      parts.push_back(s);
    }
    for (size_t k = 0; k < parts.size(); ++k) {
      std::string bytes = text::encode_utf8(parts[k]);
      U32 mapped;
      for (char b : bytes) mapped.push_back(byte_char(static_cast<unsigned char>(b)));
      if (!mapped.empty()) out->push_back({std::move(mapped), in.at_start && k == 0});
    }
  }
};

class Metaspace : public PreTokenizer {
 public:
  char32_t replacement = 0x2581;
  enum class Prepend { kAlways, kFirst, kNever } prepend = Prepend::kAlways;
  bool split_pieces = true;
  void split(const Piece& in, std::vector<Piece>* out) const override {
    U32 s = in.text;
    std::replace(s.begin(), s.end(), U' ', replacement);
    const bool starts = !s.empty() && s[0] == replacement;
    if (!starts && (prepend == Prepend::kAlways || (prepend == Prepend::kFirst && in.at_start)))
      s.insert(s.begin(), replacement);
    if (!split_pieces) {
      if (!s.empty()) out->push_back({s, in.at_start});
      return;
    }
    size_t begin = 0;  // MergedWithNext: every replacement starts a piece
    for (size_t i = 1; i <= s.size(); ++i)
      if (i == s.size() || s[i] == replacement) {
        if (i > begin) out->push_back({s.substr(begin, i - begin), in.at_start && begin == 0});
        begin = i;
      }
  }
};

class PreTokenizerSequence : public PreTokenizer {
 public:
  std::vector<std::unique_ptr<PreTokenizer>> steps;
  void split(const Piece& in, std::vector<Piece>* out) const override {
    std::vector<Piece> cur{in};
    for (const auto& step : steps) {
      std::vector<Piece> next;
      for (const Piece& p : cur) step->split(p, &next);
      cur = std::move(next);
    }
    for (Piece& p : cur) out->push_back(std::move(p));
  }
};

std::unique_ptr<PreTokenizer> parse_pre_tokenizer(const json& j, const std::string& where,
                                                  int depth = 0) {
  if (j.is_null()) return nullptr;
  check_depth(depth, where);
  const std::string type = type_of(j, where);
  if (type == "BertPreTokenizer" || type == "WhitespaceSplit") {
    auto p = std::make_unique<WhitespaceSplit>();
    p->isolate_punctuation = type == "BertPreTokenizer";
    return p;
  }
  if (type == "ByteLevel") {
    auto p = std::make_unique<ByteLevel>();
    p->add_prefix_space = opt_bool(j, "add_prefix_space", where, true);
    p->use_regex = opt_bool(j, "use_regex", where, true);
    return p;
  }
  if (type == "Metaspace") {
    auto p = std::make_unique<Metaspace>();
    const U32 r = text::decode_utf8(opt_string(j, "replacement", where, "\xE2\x96\x81"));
    if (r.size() != 1) fail(where + ".replacement", "expected one character");
    p->replacement = r[0];
    if (has(j, "prepend_scheme")) {
      const std::string scheme = get_string(j, "prepend_scheme", where);
      if (scheme == "always")
        p->prepend = Metaspace::Prepend::kAlways;
      else if (scheme == "first")
        p->prepend = Metaspace::Prepend::kFirst;
      else if (scheme == "never")
        p->prepend = Metaspace::Prepend::kNever;
      else
        fail(where + ".prepend_scheme", "'" + scheme + "' is not always, first or never");
    } else {
      p->prepend = opt_bool(j, "add_prefix_space", where, true) ? Metaspace::Prepend::kAlways
                                                                : Metaspace::Prepend::kNever;
    }
    p->split_pieces = opt_bool(j, "split", where, true);
    return p;
  }
  if (type == "Sequence") {
    auto p = std::make_unique<PreTokenizerSequence>();
    const json& steps = get_array(j, "pretokenizers", where);
    for (size_t i = 0; i < steps.size(); ++i)
      if (auto step = parse_pre_tokenizer(
              steps[i], where + ".pretokenizers[" + std::to_string(i) + "]", depth + 1))
        p->steps.push_back(std::move(step));
    return p;
  }
  fail(where, "pre-tokenizer type '" + type +
                  "' is not supported (kiln supports BertPreTokenizer, WhitespaceSplit, "
                  "ByteLevel, Metaspace, Sequence)");
}

// ---- models: one pre-tokenized word -> ids ----

using Vocab = WordPieceVocab;

class Model {
 public:
  virtual ~Model() = default;
  virtual void tokenize(const U32& word, std::vector<int64_t>* ids) const = 0;
  int64_t max_id = -1;
};

int64_t find(const Vocab& v, const std::string& s) {
  auto it = v.find(s);
  return it == v.end() ? -1 : it->second;
}

Vocab parse_vocab_map(const json& j, const std::string& where, int64_t* max_id) {
  const json& v = member(j, "vocab", where);
  if (!v.is_object()) fail(where + ".vocab", "expected an object {token: id}, got " + kind(v));
  Vocab out;
  for (auto it = v.begin(); it != v.end(); ++it) {
    const int64_t id = as_id(it.value(), where + ".vocab[\"" + it.key() + "\"]");
    out[it.key()] = id;
    *max_id = std::max(*max_id, id);
  }
  return out;
}

// Byte fallback: <0xXX> for every byte of `piece`, if the vocabulary has them all.
bool byte_fallback_ids(const Vocab& vocab, const std::string& piece, std::vector<int64_t>* ids) {
  std::vector<int64_t> bytes;
  for (char b : piece) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", static_cast<unsigned char>(b));
    const int64_t id = find(vocab, name);
    if (id < 0) return false;
    bytes.push_back(id);
  }
  ids->insert(ids->end(), bytes.begin(), bytes.end());
  return true;
}

class WordPiece : public Model {
 public:
  Vocab vocab;
  std::string prefix = "##";
  int64_t unk = -1, max_chars = 100;
  void tokenize(const U32& word, std::vector<int64_t>* ids) const override {
    wordpiece_word(word, vocab, prefix, max_chars, unk, ids);
  }
};

class Bpe : public Model {
 public:
  Vocab vocab;
  std::vector<std::string> token_of;  // id -> token, for merges
  struct Merge {
    int64_t rank, id;
  };
  std::unordered_map<uint64_t, Merge> merges;  // (left id << 32 | right id)
  std::string prefix, suffix;
  int64_t unk = -1;
  bool fuse_unk = false, byte_fallback = false, ignore_merges = false;

  const Merge* find_merge(int64_t left, int64_t right) const {
    auto it = merges.find(static_cast<uint64_t>(left) << 32 | static_cast<uint64_t>(right));
    return it == merges.end() ? nullptr : &it->second;
  }

  // The tokenizers crate's Word::merge_all: a queue of (rank, position) pairs, lowest rank first,
  // leftmost among equal ranks, entries that went stale skipped; O(n log n) in the word's length.
  void merge_all(std::vector<int64_t>* sym) const {
    struct Item {
      int64_t rank, id;
      size_t pos;
      bool operator<(const Item& o) const {  // std::priority_queue pops the largest
        return rank != o.rank ? rank > o.rank : pos > o.pos;
      }
    };
    const size_t n = sym->size();
    std::vector<int64_t> prev(n), next(n);  // linked list over sym; -1 = none
    std::vector<bool> gone(n, false);
    std::priority_queue<Item> queue;
    for (size_t k = 0; k < n; ++k) {
      prev[k] = static_cast<int64_t>(k) - 1;
      next[k] = k + 1 < n ? static_cast<int64_t>(k + 1) : -1;
      if (k + 1 < n)
        if (const Merge* m = find_merge((*sym)[k], (*sym)[k + 1])) queue.push({m->rank, m->id, k});
    }
    while (!queue.empty()) {
      const Item top = queue.top();
      queue.pop();
      if (gone[top.pos] || next[top.pos] < 0) continue;
      const size_t right = static_cast<size_t>(next[top.pos]);
      const Merge* m = find_merge((*sym)[top.pos], (*sym)[right]);
      if (!m || m->id != top.id) continue;  // stale
      (*sym)[top.pos] = top.id;
      gone[right] = true;
      next[top.pos] = next[right];
      if (next[right] >= 0) prev[static_cast<size_t>(next[right])] = static_cast<int64_t>(top.pos);
      if (prev[top.pos] >= 0) {
        const size_t left = static_cast<size_t>(prev[top.pos]);
        if (const Merge* lm = find_merge((*sym)[left], (*sym)[top.pos]))
          queue.push({lm->rank, lm->id, left});
      }
      if (next[top.pos] >= 0)
        if (const Merge* rm =
                find_merge((*sym)[top.pos], (*sym)[static_cast<size_t>(next[top.pos])]))
          queue.push({rm->rank, rm->id, top.pos});
    }
    size_t kept = 0;
    for (size_t k = 0; k < n; ++k)
      if (!gone[k]) (*sym)[kept++] = (*sym)[k];
    sym->resize(kept);
  }

  void tokenize(const U32& word, std::vector<int64_t>* ids) const override {
    if (ignore_merges) {
      const int64_t id = find(vocab, text::encode_utf8(word));
      if (id >= 0) {
        ids->push_back(id);
        return;
      }
    }
    std::vector<int64_t> sym;  // the word's symbols, as ids
    bool last_unk = false;
    for (size_t i = 0; i < word.size(); ++i) {
      std::string c = text::encode_utf8(word.substr(i, 1));
      const std::string piece = (i > 0 ? prefix : "") + c + (i + 1 == word.size() ? suffix : "");
      const int64_t id = find(vocab, piece);
      if (id >= 0) {
        sym.push_back(id);
        last_unk = false;
        continue;
      }
      if (byte_fallback && byte_fallback_ids(vocab, c, &sym)) {
        last_unk = false;
        continue;
      }
      if (unk >= 0 && !(fuse_unk && last_unk)) sym.push_back(unk);
      last_unk = unk >= 0;
    }
    merge_all(&sym);
    ids->insert(ids->end(), sym.begin(), sym.end());
  }
};

class Unigram : public Model {
 public:
  Vocab vocab;
  std::vector<double> score;
  int64_t unk = -1;
  double unk_score = 0;
  size_t max_piece_chars = 1;
  bool byte_fallback = false;

  void tokenize(const U32& word, std::vector<int64_t>* ids) const override {
    // Forward Viterbi over code points; ties keep the first candidate (shorter pieces from
    // earlier starts), as tokenizers' encode_optimized.
    const size_t n = word.size();
    struct Best {
      double score = 0;
      int64_t id = -1;
      size_t from = 0;
      bool set = false;
    };
    std::vector<Best> best(n + 1);
    best[0].set = true;
    for (size_t i = 0; i < n; ++i) {
      if (!best[i].set) continue;
      bool single = false;
      std::string piece;
      for (size_t len = 1; len <= max_piece_chars && i + len <= n; ++len) {
        text::append_utf8(word[i + len - 1], &piece);
        const int64_t id = find(vocab, piece);
        if (id < 0) continue;
        single |= len == 1;
        const double s = best[i].score + score[static_cast<size_t>(id)];
        Best& b = best[i + len];
        if (!b.set || s > b.score) b = {s, id, i, true};
      }
      if (!single && unk >= 0) {
        const double s = best[i].score + unk_score;
        Best& b = best[i + 1];
        if (!b.set || s > b.score) b = {s, unk, i, true};
      }
    }
    if (!best[n].set) return;  // no unk and an unknown character: tokenizers errors; drop it
    std::vector<std::pair<size_t, size_t>> spans;  // [from, to), unknowns fused
    for (size_t end = n; end > 0;) {
      const Best& b = best[end];
      if (b.id == unk && !spans.empty() && best[spans.back().second].id == unk)
        spans.back().first = b.from;
      else
        spans.push_back({b.from, end});
      end = b.from;
    }
    std::reverse(spans.begin(), spans.end());
    for (const auto& [from, to] : spans) {
      const std::string piece = text::encode_utf8(word.substr(from, to - from));
      const int64_t id = find(vocab, piece);
      if (id >= 0) {
        ids->push_back(id);
      } else if (!(byte_fallback && byte_fallback_ids(vocab, piece, ids))) {
        ids->push_back(unk);
      }
    }
  }
};

std::unique_ptr<Model> parse_model(const json& j, const std::string& where) {
  const std::string type = type_of(j, where);
  if (type == "WordPiece") {
    auto m = std::make_unique<WordPiece>();
    m->vocab = parse_vocab_map(j, where, &m->max_id);
    m->prefix = opt_string(j, "continuing_subword_prefix", where, "##");
    if (has(j, "max_input_chars_per_word")) {
      const json& v = j["max_input_chars_per_word"];
      if (!v.is_number_integer() || v.get<int64_t>() < 1)
        fail(where + ".max_input_chars_per_word", "expected an integer >= 1, got " + v.dump());
      m->max_chars = v.get<int64_t>();
    }
    const std::string unk = opt_string(j, "unk_token", where, "[UNK]");
    m->unk = find(m->vocab, unk);
    if (m->unk < 0) fail(where + ".unk_token", "'" + unk + "' is not in the vocabulary");
    return m;
  }
  if (type == "BPE") {
    auto m = std::make_unique<Bpe>();
    m->vocab = parse_vocab_map(j, where, &m->max_id);
    if (has(j, "dropout") && !(j["dropout"].is_number() && j["dropout"].get<double>() == 0))
      fail(where + ".dropout", "BPE dropout is not supported (encoding must be deterministic)");
    m->prefix = opt_string(j, "continuing_subword_prefix", where, "");
    m->suffix = opt_string(j, "end_of_word_suffix", where, "");
    m->fuse_unk = opt_bool(j, "fuse_unk", where, false);
    m->byte_fallback = opt_bool(j, "byte_fallback", where, false);
    m->ignore_merges = opt_bool(j, "ignore_merges", where, false);
    if (has(j, "unk_token")) {
      const std::string unk = get_string(j, "unk_token", where);
      m->unk = find(m->vocab, unk);
      if (m->unk < 0) fail(where + ".unk_token", "'" + unk + "' is not in the vocabulary");
    }
    const json& merges = get_array(j, "merges", where);
    for (size_t r = 0; r < merges.size(); ++r) {
      const std::string at = where + ".merges[" + std::to_string(r) + "]";
      const json& mj = merges[r];
      std::string a, b;
      if (mj.is_string()) {
        const std::string s = mj.get<std::string>();
        const size_t space = s.find(' ');
        if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos)
          fail(at, "expected \"left right\", got '" + s + "'");
        a = s.substr(0, space);
        b = s.substr(space + 1);
      } else if (mj.is_array() && mj.size() == 2 && mj[0].is_string() && mj[1].is_string()) {
        a = mj[0].get<std::string>();
        b = mj[1].get<std::string>();
      } else {
        fail(at, "expected \"left right\" or [\"left\", \"right\"], got " + mj.dump());
      }
      const int64_t ia = find(m->vocab, a), ib = find(m->vocab, b);
      const std::string joined =
          a + (!m->prefix.empty() && b.compare(0, m->prefix.size(), m->prefix) == 0
                   ? b.substr(m->prefix.size())
                   : b);
      const int64_t ij = find(m->vocab, joined);
      if (ia < 0 || ib < 0 || ij < 0)
        fail(at, "'" + (ia < 0 ? a : ib < 0 ? b : joined) + "' is not in the vocabulary");
      const uint64_t key = static_cast<uint64_t>(ia) << 32 | static_cast<uint64_t>(ib);
      m->merges.emplace(key, Bpe::Merge{static_cast<int64_t>(r), ij});  // the first rank wins
    }
    return m;
  }
  if (type == "Unigram") {
    auto m = std::make_unique<Unigram>();
    const json& vocab = get_array(j, "vocab", where);
    if (vocab.empty()) fail(where + ".vocab", "is empty");
    double min_score = std::numeric_limits<double>::max();
    for (size_t i = 0; i < vocab.size(); ++i) {
      const json& e = vocab[i];
      if (!e.is_array() || e.size() != 2 || !e[0].is_string() || !e[1].is_number())
        fail(where + ".vocab[" + std::to_string(i) + "]",
             "expected [\"piece\", score], got " + e.dump());
      const std::string piece = e[0].get<std::string>();
      m->vocab.emplace(piece, static_cast<int64_t>(i));  // a repeated piece keeps its first id
      m->score.push_back(e[1].get<double>());
      min_score = std::min(min_score, m->score.back());
      m->max_piece_chars = std::max(m->max_piece_chars, text::decode_utf8(piece).size());
    }
    m->max_id = static_cast<int64_t>(vocab.size()) - 1;
    m->unk_score = min_score - 10.0;  // tokenizers' K_UNK_PENALTY
    if (has(j, "unk_id")) {
      m->unk = as_id(j["unk_id"], where + ".unk_id");
      if (m->unk > m->max_id)
        fail(where + ".unk_id", std::to_string(m->unk) + " is outside the vocabulary of " +
                                    std::to_string(vocab.size()));
    }
    m->byte_fallback = opt_bool(j, "byte_fallback", where, false);
    return m;
  }
  fail(where,
       "model type '" + type + "' is not supported (kiln supports WordPiece, BPE and Unigram)");
}

// ---- post-processor: the special ids around a single text ----

struct Specials {
  std::vector<int64_t> before, after;
};

void parse_post_processor(const json& j, const std::string& where, Specials* s, int depth = 0) {
  if (j.is_null()) return;
  check_depth(depth, where);
  const std::string type = type_of(j, where);
  if (type == "BertProcessing" || type == "RobertaProcessing") {
    auto pair_id = [&](const char* key) {
      const json& v = member(j, key, where);
      if (!v.is_array() || v.size() != 2 || !v[0].is_string())
        fail(where + "." + key, "expected [\"token\", id], got " + v.dump());
      return as_id(v[1], where + "." + key + "[1]");
    };
    s->before.insert(s->before.begin(), pair_id("cls"));
    s->after.push_back(pair_id("sep"));
    return;
  }
  if (type == "TemplateProcessing") {
    const json& single = get_array(j, "single", where);
    const json& specials = member(j, "special_tokens", where);
    bool seen_sequence = false;
    std::vector<int64_t> before, after;
    for (size_t i = 0; i < single.size(); ++i) {
      const std::string at = where + ".single[" + std::to_string(i) + "]";
      const json& piece = single[i];
      if (has(piece, "Sequence")) {
        if (seen_sequence) fail(at, "a second Sequence in the single template");
        seen_sequence = true;
        continue;
      }
      if (!has(piece, "SpecialToken"))
        fail(at, "expected {\"SpecialToken\": ...} or {\"Sequence\": ...}, got " + piece.dump());
      const std::string name = get_string(piece["SpecialToken"], "id", at + ".SpecialToken");
      const json& entry = member(specials, name.c_str(), where + ".special_tokens");
      const json& ids = get_array(entry, "ids", where + ".special_tokens." + name);
      for (size_t k = 0; k < ids.size(); ++k)
        (seen_sequence ? after : before)
            .push_back(as_id(
                ids[k], where + ".special_tokens." + name + ".ids[" + std::to_string(k) + "]"));
    }
    if (!seen_sequence) fail(where + ".single", "has no Sequence ($A)");
    s->before.insert(s->before.begin(), before.begin(), before.end());
    s->after.insert(s->after.end(), after.begin(), after.end());
    return;
  }
  if (type == "ByteLevel") return;  // offsets only
  if (type == "Sequence") {
    const json& steps = get_array(j, "processors", where);
    for (size_t i = 0; i < steps.size(); ++i)
      parse_post_processor(steps[i], where + ".processors[" + std::to_string(i) + "]", s,
                           depth + 1);
    return;
  }
  fail(where, "post-processor type '" + type +
                  "' is not supported (kiln supports BertProcessing, RobertaProcessing, "
                  "TemplateProcessing, ByteLevel, Sequence)");
}

// ---- added tokens ----

struct AddedToken {
  int64_t id;
  std::string content;
  U32 content32;  // normalized, for normalized tokens
  bool single_word, lstrip, rstrip, normalized;
};

bool is_word_char(char32_t c) {
  return text::is_letter(c) || text::is_number(c) || c == '_';
}

// A text split into runs of plain text and added tokens.
struct Segment {
  U32 text;
  int64_t id = -1;  // >= 0: an added token
  bool at_start = false;
};

// Leftmost-longest matches of `tokens` in s (tokenizers' AddedVocabulary::find_matches).
void split_added(const U32& s, bool at_start, const std::vector<const AddedToken*>& tokens,
                 std::vector<Segment>* out) {
  if (s.empty()) return;
  size_t done = 0;  // s[done, ...) not yet emitted
  for (size_t p = 0; p < s.size();) {
    const AddedToken* best = nullptr;
    for (const AddedToken* t : tokens) {
      const U32& c = t->content32;
      if (!c.empty() && (!best || c.size() > best->content32.size()) &&
          s.compare(p, c.size(), c) == 0)
        best = t;
    }
    if (!best) {
      ++p;
      continue;
    }
    size_t start = p, stop = p + best->content32.size();
    if (best->single_word &&
        ((start > 0 && is_word_char(s[start - 1])) || (stop < s.size() && is_word_char(s[stop])))) {
      p = stop;
      continue;
    }
    if (best->lstrip)
      while (start > done && is_white(s[start - 1])) --start;
    if (best->rstrip)
      while (stop < s.size() && is_white(s[stop])) ++stop;
    if (done < start) out->push_back({s.substr(done, start - done), -1, at_start && done == 0});
    out->push_back({U32(), best->id, false});
    done = p = stop;
  }
  if (done < s.size()) out->push_back({s.substr(done), -1, at_start && done == 0});
}

class JsonTokenizer : public TextTokenizer {
 public:
  std::unique_ptr<Normalizer> normalizer;
  std::unique_ptr<PreTokenizer> pre_tokenizer;
  std::unique_ptr<Model> model;
  Specials specials;
  std::vector<AddedToken> added;
  std::vector<const AddedToken*> raw_tokens, normalized_tokens;
  int64_t pad = 0, size = 0;

  std::vector<int64_t> encode(const std::string& input, int64_t max_len,
                              int64_t* full_len) const override {
    std::vector<Segment> raw;
    split_added(text::decode_utf8(input), true, raw_tokens, &raw);
    std::vector<int64_t> ids;
    for (Segment& seg : raw) {
      if (seg.id >= 0) {
        ids.push_back(seg.id);
        continue;
      }
      if (normalizer) normalizer->apply(&seg.text);
      std::vector<Segment> parts;
      split_added(seg.text, seg.at_start, normalized_tokens, &parts);
      for (const Segment& part : parts) {
        if (part.id >= 0) {
          ids.push_back(part.id);
          continue;
        }
        std::vector<Piece> words;
        if (pre_tokenizer)
          pre_tokenizer->split({part.text, part.at_start}, &words);
        else
          words.push_back({part.text, part.at_start});
        for (const Piece& w : words) model->tokenize(w.text, &ids);
      }
    }
    const size_t extra = specials.before.size() + specials.after.size();
    if (full_len) *full_len = static_cast<int64_t>(ids.size() + extra);
    if (max_len > 0 && ids.size() + extra > static_cast<size_t>(max_len))
      ids.resize(static_cast<size_t>(max_len) > extra ? static_cast<size_t>(max_len) - extra : 0);
    std::vector<int64_t> out(specials.before);
    out.insert(out.end(), ids.begin(), ids.end());
    out.insert(out.end(), specials.after.begin(), specials.after.end());
    if (max_len > 0 && out.size() > static_cast<size_t>(max_len))  // more specials than room
      out.resize(static_cast<size_t>(max_len));
    return out;
  }
  int64_t vocab_size() const override { return size; }
  int64_t pad_id() const override { return pad; }
};

}  // namespace

Status parse_tokenizer_json(const std::string& json_text, const std::string& name,
                            std::unique_ptr<TextTokenizer>* out) {
  try {
    json root;
    try {
      root = json::parse(json_text);
    } catch (const json::parse_error& e) {
      return error(KILN_ERROR_CORRUPT, name + ": not valid JSON: " + e.what());
    }
    if (!root.is_object()) fail("top level", "expected an object, got " + kind(root));
    auto t = std::make_unique<JsonTokenizer>();
    t->model = parse_model(member(root, "model", "top level"), "model");
    if (root.contains("normalizer"))
      t->normalizer = parse_normalizer(root["normalizer"], "normalizer");
    if (root.contains("pre_tokenizer"))
      t->pre_tokenizer = parse_pre_tokenizer(root["pre_tokenizer"], "pre_tokenizer");
    if (root.contains("post_processor"))
      parse_post_processor(root["post_processor"], "post_processor", &t->specials);
    int64_t max_id = t->model->max_id;
    if (has(root, "added_tokens")) {
      const json& added = get_array(root, "added_tokens", "top level");
      for (size_t i = 0; i < added.size(); ++i) {
        const std::string at = "added_tokens[" + std::to_string(i) + "]";
        const json& a = added[i];
        AddedToken tok{as_id(member(a, "id", at), at + ".id"),
                       get_string(a, "content", at),
                       {},
                       opt_bool(a, "single_word", at, false),
                       opt_bool(a, "lstrip", at, false),
                       opt_bool(a, "rstrip", at, false),
                       opt_bool(a, "normalized", at, false)};
        tok.content32 = text::decode_utf8(tok.content);
        if (tok.normalized && t->normalizer) t->normalizer->apply(&tok.content32);
        max_id = std::max(max_id, tok.id);
        t->added.push_back(std::move(tok));
      }
    }
    for (const AddedToken& a : t->added) {
      (a.normalized ? t->normalized_tokens : t->raw_tokens).push_back(&a);
      if ((a.content == "[PAD]" || a.content == "<pad>")) t->pad = a.id;
    }
    if (has(root, "padding") && has(root["padding"], "pad_id"))
      t->pad = as_id(root["padding"]["pad_id"], "padding.pad_id");
    for (int64_t id : t->specials.before) max_id = std::max(max_id, id);
    for (int64_t id : t->specials.after) max_id = std::max(max_id, id);
    if (max_id < 0) fail("model", "the vocabulary is empty");
    t->size = max_id + 1;
    if (t->pad >= t->size)
      fail("padding.pad_id",
           std::to_string(t->pad) + " is outside the vocabulary of " + std::to_string(t->size));
    *out = std::move(t);
    return ok_status();
  } catch (const ParseError& e) {
    return error(KILN_ERROR_CORRUPT, name + ": " + e.message);
  } catch (const std::exception& e) {  // nlohmann type errors not caught above
    return error(KILN_ERROR_CORRUPT, name + ": " + e.what());
  }
}

}  // namespace kiln::rt

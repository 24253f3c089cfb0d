// UTF-8 and Unicode character classes for the tokenizers; see unicode_text.h.
#include "runtime/unicode_text.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>

namespace kiln::rt::text {
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

}  // namespace

bool is_whitespace(char32_t c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || in_ranges(kSpaceSeparator, c);
}

bool is_control(char32_t c) {
  return in_ranges(kControl, c);
}

bool is_punctuation(char32_t c) {
  return in_ranges(kPunctuation, c);
}

bool is_letter(char32_t c) {
  return in_ranges(kLetter, c);
}

bool is_number(char32_t c) {
  return in_ranges(kNumber, c);
}

bool is_mark(char32_t c) {
  return in_ranges(kMark, c);
}

bool is_white_space_property(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

bool is_cjk(char32_t c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
         (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
         (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
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

}  // namespace kiln::rt::text

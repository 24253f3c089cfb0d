// Symbolic dimensions of model.json shapes: an integer or a monomial over the artifact's
// symbols, written like the compiler's Dim::str: "seq", "batch*seq", "12*batch*seq", "seq^2".
// Header-only so kiln-rt can evaluate input shapes from kiln_model_describe() too.
#pragma once

#include <cctype>
#include <cstdint>
#include <string>
#include <vector>

#include "kiln/backend.h"

namespace kiln::rt {

struct SymDim {
  int64_t coef = 1;
  int pow[KILN_MAX_SYMBOLS] = {};

  bool is_constant() const {
    for (int p : pow)
      if (p) return false;
    return true;
  }
  // The symbol index if this dim is exactly one symbol (coefficient 1, power 1), else -1.
  int single_symbol() const {
    if (coef != 1) return -1;
    int found = -1;
    for (int i = 0; i < KILN_MAX_SYMBOLS; ++i) {
      if (pow[i] == 0) continue;
      if (pow[i] != 1 || found >= 0) return -1;
      found = i;
    }
    return found;
  }
  bool uses(int symbol) const { return pow[symbol] != 0; }

  // Evaluates with the symbol values `sym`; false on overflow.
  bool eval(const int64_t* sym, int64_t* out) const {
    int64_t v = coef;
    for (int i = 0; i < KILN_MAX_SYMBOLS; ++i)
      for (int k = 0; k < pow[i]; ++k)
        if (__builtin_mul_overflow(v, sym[i], &v)) return false;
    *out = v;
    return true;
  }

  std::string str(const std::vector<std::string>& names) const {
    std::string s;
    if (coef != 1 || is_constant()) s = std::to_string(coef);
    for (int i = 0; i < KILN_MAX_SYMBOLS; ++i) {
      if (!pow[i]) continue;
      if (!s.empty()) s += '*';
      s += i < static_cast<int>(names.size()) ? names[i] : "s" + std::to_string(i);
      if (pow[i] > 1) s += '^' + std::to_string(pow[i]);
    }
    return s;
  }
};

// "[batch, seq, 768]" and "[2, 7, 768]", for messages.
inline std::string shape_str(const std::vector<SymDim>& shape,
                             const std::vector<std::string>& names) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + shape[i].str(names);
  return s + "]";
}
inline std::string dims_str(const int64_t* dims, int rank) {
  std::string s = "[";
  for (int i = 0; i < rank; ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

// Parses "12*batch*seq" against the symbol names. On failure returns false and sets *error.
inline bool parse_sym_dim(const std::string& text, const std::vector<std::string>& names,
                          SymDim* out, std::string* error) {
  SymDim d;
  size_t i = 0;
  const size_t n = text.size();
  if (n == 0) {
    *error = "empty dimension";
    return false;
  }
  while (true) {
    if (i >= n) {
      *error = "dimension '" + text + "' ends with '*'";
      return false;
    }
    if (std::isdigit(static_cast<unsigned char>(text[i]))) {
      int64_t v = 0;
      while (i < n && std::isdigit(static_cast<unsigned char>(text[i]))) {
        if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, text[i] - '0', &v)) {
          *error = "dimension '" + text + "' overflows int64";
          return false;
        }
        ++i;
      }
      if (__builtin_mul_overflow(d.coef, v, &d.coef)) {
        *error = "dimension '" + text + "' overflows int64";
        return false;
      }
    } else if (std::isalpha(static_cast<unsigned char>(text[i])) || text[i] == '_') {
      size_t start = i;
      while (i < n && (std::isalnum(static_cast<unsigned char>(text[i])) || text[i] == '_')) ++i;
      std::string name = text.substr(start, i - start);
      int index = -1;
      for (size_t k = 0; k < names.size(); ++k)
        if (names[k] == name) index = static_cast<int>(k);
      if (index < 0) {
        *error = "dimension '" + text + "' uses unknown symbol '" + name + "'";
        return false;
      }
      int power = 1;
      if (i < n && text[i] == '^') {
        ++i;
        if (i >= n || !std::isdigit(static_cast<unsigned char>(text[i]))) {
          *error = "dimension '" + text + "': expected a power after '^'";
          return false;
        }
        power = 0;
        while (i < n && std::isdigit(static_cast<unsigned char>(text[i]))) {
          power = power * 10 + (text[i] - '0');
          if (power > 64) {
            *error = "dimension '" + text + "': power too large";
            return false;
          }
          ++i;
        }
      }
      d.pow[index] += power;
      if (d.pow[index] > 64) {
        *error = "dimension '" + text + "': power too large";
        return false;
      }
    } else {
      *error = "dimension '" + text + "': unexpected character '" + std::string(1, text[i]) + "'";
      return false;
    }
    if (i == n) break;
    if (text[i] != '*') {
      *error = "dimension '" + text + "': unexpected character '" + std::string(1, text[i]) + "'";
      return false;
    }
    ++i;
  }
  *out = d;
  return true;
}

}  // namespace kiln::rt

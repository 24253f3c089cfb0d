// .npy reader and writer; see npy.h. The header is a Python dict literal; this parser accepts the
// keys numpy writes ('descr', 'fortran_order', 'shape') in any order.
#include "npy.h"

#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace kiln::tools {
namespace {

size_t elem_size(kiln_dtype d) {
  switch (d) {
    case KILN_FLOAT32:
    case KILN_INT32:
      return 4;
    case KILN_INT64:
      return 8;
    default:
      return 1;
  }
}

const char* descr_of(kiln_dtype d) {
  switch (d) {
    case KILN_FLOAT32:
      return "<f4";
    case KILN_INT64:
      return "<i8";
    case KILN_INT32:
      return "<i4";
    case KILN_INT8:
      return "|i1";
    case KILN_UINT8:
      return "|u1";
    case KILN_BOOL:
      return "|b1";
  }
  return "?";
}

bool parse_descr(const std::string& d, kiln_dtype* out, std::string* why) {
  if (d.size() < 2) {
    *why = "unsupported dtype '" + d + "'";
    return false;
  }
  char order = d[0];
  std::string code = d.substr(1);
  const bool single = code == "i1" || code == "u1" || code == "b1";
  if (order == '>' && !single) {
    *why = "big-endian dtype '" + d + "' is not supported (use little-endian)";
    return false;
  }
  if (order != '<' && order != '|' && order != '=' && !(order == '>' && single)) {
    *why = "unsupported dtype '" + d + "'";
    return false;
  }
  static const struct {
    const char* code;
    kiln_dtype dtype;
  } kCodes[] = {{"f4", KILN_FLOAT32}, {"i8", KILN_INT64}, {"i4", KILN_INT32},
                {"i1", KILN_INT8},    {"u1", KILN_UINT8}, {"b1", KILN_BOOL}};
  for (const auto& c : kCodes) {
    if (code == c.code) {
      *out = c.dtype;
      return true;
    }
  }
  *why = "unsupported dtype '" + d +
         "' (supported: float32 <f4, int64 <i8, int32 <i4, int8 |i1, uint8 |u1, bool |b1)";
  return false;
}

// Minimal scanner for the header dict.
struct Scanner {
  const std::string& s;
  size_t i = 0;
  void skip() {
    while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  }
  bool eat(char c) {
    skip();
    if (i < s.size() && s[i] == c) {
      ++i;
      return true;
    }
    return false;
  }
  bool string(std::string* out) {
    skip();
    if (i >= s.size() || (s[i] != '\'' && s[i] != '"')) return false;
    char q = s[i++];
    size_t start = i;
    while (i < s.size() && s[i] != q) ++i;
    if (i >= s.size()) return false;
    *out = s.substr(start, i - start);
    ++i;
    return true;
  }
  bool word(std::string* out) {
    skip();
    size_t start = i;
    while (i < s.size() && std::isalpha(static_cast<unsigned char>(s[i]))) ++i;
    *out = s.substr(start, i - start);
    return !out->empty();
  }
  bool integer(int64_t* out) {
    skip();
    size_t start = i;
    int64_t v = 0;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
      if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, s[i] - '0', &v))
        return false;
      ++i;
    }
    if (i < s.size() && s[i] == 'L') ++i;  // Python 2 long
    *out = v;
    return i > start;
  }
};

}  // namespace

bool parse_npy(const std::string& bytes, const std::string& name, NpyArray* out,
               std::string* error) {
  auto fail = [&](const std::string& why) {
    *error = name + ": " + why;
    return false;
  };
  if (bytes.size() < 10 || std::memcmp(bytes.data(), "\x93NUMPY", 6) != 0)
    return fail("not a .npy file (bad magic)");
  const int major = static_cast<uint8_t>(bytes[6]);
  size_t header_len = 0, header_start = 0;
  if (major == 1) {
    header_len =
        static_cast<uint8_t>(bytes[8]) | static_cast<size_t>(static_cast<uint8_t>(bytes[9])) << 8;
    header_start = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) return fail("truncated header");
    for (int k = 0; k < 4; ++k)
      header_len |= static_cast<size_t>(static_cast<uint8_t>(bytes[8 + k])) << (8 * k);
    header_start = 12;
  } else {
    return fail("unsupported .npy format version " + std::to_string(major));
  }
  if (header_len > bytes.size() - header_start)
    return fail("truncated header (" + std::to_string(header_len) + " bytes declared, " +
                std::to_string(bytes.size() - header_start) + " present)");
  const std::string header = bytes.substr(header_start, header_len);
  Scanner sc{header};
  std::string descr;
  bool have_descr = false, have_order = false, have_shape = false, fortran = false;
  std::vector<int64_t> shape;
  if (!sc.eat('{')) return fail("header is not a dict: " + header);
  while (!sc.eat('}')) {
    std::string key;
    if (!sc.string(&key) || !sc.eat(':')) return fail("malformed header: " + header);
    if (key == "descr") {
      if (!sc.string(&descr)) return fail("'descr' is not a simple dtype string: " + header);
      have_descr = true;
    } else if (key == "fortran_order") {
      std::string w;
      if (!sc.word(&w) || (w != "True" && w != "False"))
        return fail("malformed 'fortran_order': " + header);
      fortran = w == "True";
      have_order = true;
    } else if (key == "shape") {
      if (!sc.eat('(')) return fail("malformed 'shape': " + header);
      while (!sc.eat(')')) {
        int64_t d;
        if (!sc.integer(&d)) return fail("malformed 'shape': " + header);
        shape.push_back(d);
        if (!sc.eat(',')) {
          if (!sc.eat(')')) return fail("malformed 'shape': " + header);
          break;
        }
      }
      have_shape = true;
    } else {
      return fail("unexpected header key '" + key + "'");
    }
    if (!sc.eat(',')) {
      if (!sc.eat('}')) return fail("malformed header: " + header);
      break;
    }
  }
  if (!have_descr || !have_order || !have_shape)
    return fail("header lacks 'descr', 'fortran_order' or 'shape': " + header);
  std::string why;
  kiln_dtype dtype;
  if (!parse_descr(descr, &dtype, &why)) return fail(why);
  if (fortran && shape.size() > 1)
    return fail("Fortran-order arrays are not supported (save with np.ascontiguousarray)");
  uint64_t numel = 1;
  for (int64_t d : shape)
    if (__builtin_mul_overflow(numel, static_cast<uint64_t>(d), &numel))
      return fail("shape is too large");
  uint64_t nbytes;
  if (__builtin_mul_overflow(numel, elem_size(dtype), &nbytes)) return fail("shape is too large");
  const size_t data_start = header_start + header_len;
  const uint64_t have = bytes.size() - data_start;
  if (have < nbytes)
    return fail("truncated data: expected " + std::to_string(nbytes) + " bytes, the file has " +
                std::to_string(have));
  out->dtype = dtype;
  out->shape = shape;
  out->data.assign(bytes.begin() + data_start, bytes.begin() + data_start + nbytes);
  return true;
}

bool read_npy(const std::string& path, NpyArray* out, std::string* error) {
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    *error = "cannot open '" + path + "': " + std::strerror(errno);
    return false;
  }
  std::stringstream ss;
  ss << f.rdbuf();
  return parse_npy(ss.str(), path, out, error);
}

bool write_npy(const std::string& path, kiln_dtype dtype, const int64_t* shape, int rank,
               const void* data, size_t nbytes, std::string* error) {
  std::string dict =
      std::string("{'descr': '") + descr_of(dtype) + "', 'fortran_order': False, 'shape': (";
  for (int i = 0; i < rank; ++i)
    dict += std::to_string(shape[i]) + (rank == 1 || i + 1 < rank ? ", " : "");
  if (rank == 1) dict.pop_back();
  dict += "), }";
  // Pad with spaces so that magic + header ends at a multiple of 64, then '\n'.
  size_t total = 10 + dict.size() + 1;
  size_t padded = (total + 63) / 64 * 64;
  dict.append(padded - total, ' ');
  dict += '\n';
  std::string head = "\x93NUMPY";
  head += static_cast<char>(1);
  head += static_cast<char>(0);
  head += static_cast<char>(dict.size() & 0xFF);
  head += static_cast<char>((dict.size() >> 8) & 0xFF);
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) {
    *error = "cannot create '" + path + "': " + std::strerror(errno);
    return false;
  }
  f.write(head.data(), head.size());
  f.write(dict.data(), dict.size());
  if (nbytes) f.write(static_cast<const char*>(data), static_cast<std::streamsize>(nbytes));
  f.close();
  if (!f) {
    *error = "cannot write '" + path + "'";
    return false;
  }
  return true;
}

}  // namespace kiln::tools

// C++ literals for generated code; see cpp_literals.h.
#include "compiler/codegen/cpp_literals.h"

#include <cmath>
#include <cstdio>

namespace kiln::codegen {

using ir::DType;

Result<std::string> ctype(ir::DType t, const std::string& where) {
  switch (t) {
    case DType::kFloat32:
      return std::string("float");
    case DType::kInt64:
      return std::string("int64_t");
    case DType::kInt32:
      return std::string("int32_t");
    case DType::kInt8:
      return std::string("int8_t");
    case DType::kUInt8:
    case DType::kBool:
      return std::string("uint8_t");  // ONNX bool is stored as one byte 0/1
    default:
      break;
  }
  return Status::error(where + ": dtype " + ir::dtype_name(t) +
                       " is not supported by code generation");
}

std::string int_literal(int64_t v) {
  if (v == INT64_MIN) return "INT64_MIN";
  if (v == INT64_MAX) return "INT64_MAX";
  if (v >= INT32_MIN && v <= INT32_MAX) return std::to_string(v);
  return std::to_string(v) + "LL";
}

std::string float_literal(double v) {
  if (std::isnan(v)) return "__builtin_nanf(\"\")";
  if (std::isinf(v)) return v > 0 ? "__builtin_inff()" : "(-__builtin_inff())";
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%af", static_cast<float>(v));
  return buf;
}

std::string dim_expr(const ir::Dim& d) {
  if (d.is_constant()) return int_literal(d.coef);
  std::string e = d.coef == 1 ? "" : int_literal(d.coef);
  for (int i = 0; i < ir::kMaxSymbols; ++i)
    for (int p = 0; p < d.pow[i]; ++p)
      e += (e.empty() ? "" : "*") + std::string("s[") + std::to_string(i) + "]";
  return e;
}

std::string c_string(const std::string& s) {
  std::string r = "\"";
  for (unsigned char ch : s) {
    if (ch == '"' || ch == '\\') {
      r += '\\';
      r += static_cast<char>(ch);
    } else if (ch < 0x20 || ch >= 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\%03o", ch);
      r += buf;
    } else {
      r += static_cast<char>(ch);
    }
  }
  return r + "\"";
}

std::string comment_safe(const std::string& s) {
  std::string r;
  for (unsigned char ch : s)
    r += (ch < 0x20 || ch == '\\' || ch >= 0x7f) ? '?' : static_cast<char>(ch);
  return r;
}

int64_t norm_axis(int64_t axis, size_t rank) {
  return axis < 0 ? axis + static_cast<int64_t>(rank) : axis;
}

}  // namespace kiln::codegen

// C++ literal and expression spelling for generated model code: dtypes, numbers that round-trip
// exactly, symbolic dims as expressions of the run-time symbol values `s[]`, strings, comments.
#pragma once

#include <cstdint>
#include <string>

#include "compiler/ir/graph.h"

namespace kiln::codegen {

// "float", "int64_t", ...; an error naming `where` for dtypes codegen does not support.
Result<std::string> ctype(ir::DType t, const std::string& where);
std::string int_literal(int64_t v);
// Hex float literals are exact (the attention mask's -3.4028234663852886e+38 included).
std::string float_literal(double v);
// "768", "s[1]", "12*s[0]*s[1]".
std::string dim_expr(const ir::Dim& d);
std::string c_string(const std::string& s);
// Node names go into // comments: a backslash at the end or a newline would swallow code.
std::string comment_safe(const std::string& s);
int64_t norm_axis(int64_t axis, size_t rank);

}  // namespace kiln::codegen

// dtype names and element sizes as written in model.json and the params table.
#pragma once

#include <cstddef>
#include <string>

#include "kiln/c_api.h"

namespace kiln::rt {

// Bytes per element, or 0 for a value that is not a kiln_dtype.
inline size_t dtype_size(int dtype) {
  switch (dtype) {
    case KILN_FLOAT32:
      return 4;
    case KILN_INT64:
      return 8;
    case KILN_INT32:
      return 4;
    case KILN_INT8:
      return 1;
    case KILN_UINT8:
      return 1;
    case KILN_BOOL:
      return 1;
    default:
      return 0;
  }
}

inline const char* dtype_name(int dtype) {
  switch (dtype) {
    case KILN_FLOAT32:
      return "float32";
    case KILN_INT64:
      return "int64";
    case KILN_INT32:
      return "int32";
    case KILN_INT8:
      return "int8";
    case KILN_UINT8:
      return "uint8";
    case KILN_BOOL:
      return "bool";
    default:
      return "unknown";
  }
}

// Parses a model.json dtype name; false if it is not one.
inline bool parse_dtype(const std::string& name, kiln_dtype* out) {
  static const struct {
    const char* name;
    kiln_dtype dtype;
  } kNames[] = {{"float32", KILN_FLOAT32}, {"int64", KILN_INT64}, {"int32", KILN_INT32},
                {"int8", KILN_INT8},       {"uint8", KILN_UINT8}, {"bool", KILN_BOOL}};
  for (const auto& n : kNames) {
    if (name == n.name) {
      *out = n.dtype;
      return true;
    }
  }
  return false;
}

}  // namespace kiln::rt

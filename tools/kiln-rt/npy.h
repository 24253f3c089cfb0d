// NumPy .npy files (format versions 1.0, 2.0, 3.0; little-endian, C order) for kiln-rt's inputs
// and outputs. dtypes: float32, int64, int32, int8, uint8, bool.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kiln/c_api.h"

namespace kiln::tools {

struct NpyArray {
  kiln_dtype dtype = KILN_FLOAT32;
  std::vector<int64_t> shape;
  std::vector<uint8_t> data;

  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
};

// Reads `path`; on failure returns false and sets *error (naming the file and the problem).
bool read_npy(const std::string& path, NpyArray* out, std::string* error);
// Parses .npy bytes; `name` is used in messages.
bool parse_npy(const std::string& bytes, const std::string& name, NpyArray* out,
               std::string* error);
// Writes a version 1.0 file (64-byte aligned header, like numpy).
bool write_npy(const std::string& path, kiln_dtype dtype, const int64_t* shape, int rank,
               const void* data, size_t nbytes, std::string* error);

}  // namespace kiln::tools

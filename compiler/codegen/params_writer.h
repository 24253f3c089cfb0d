// Writes model.params (artifact/params_format.h): header, table, 64-byte aligned tensor data,
// with the header, table and per-tensor crc32s the runtime checks.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "compiler/ir/status.h"

namespace kiln::codegen {

struct ParamEntry {
  std::string name;
  uint32_t dtype = 0;  // kiln_dtype
  std::vector<int64_t> dims;
  const void* data = nullptr;
  uint64_t nbytes = 0;
};

struct ParamsSummary {
  uint64_t file_bytes = 0;
  uint32_t count = 0;
  uint32_t table_crc32 = 0;
};

// Writes atomically (temporary file + rename).
Result<ParamsSummary> write_params(const std::string& path, const std::vector<ParamEntry>& entries);

}  // namespace kiln::codegen

// model.params, mmap'ed read-only and validated (artifact/params_format.h): magic, version,
// header and table crc32, sizes, 64-byte alignment, no bytes outside the tensors but alignment
// padding and, optionally, every tensor's crc32.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kiln/c_api.h"
#include "runtime/status.h"

namespace kiln::rt {

struct ParamEntry {
  std::string name;
  kiln_dtype dtype = KILN_FLOAT32;
  std::vector<int64_t> dims;
  uint64_t offset = 0, nbytes = 0;
  uint32_t crc32 = 0;
};

class ParamsFile {
 public:
  ParamsFile() = default;
  ~ParamsFile();
  ParamsFile(const ParamsFile&) = delete;
  ParamsFile& operator=(const ParamsFile&) = delete;

  // expected_bytes: model.json's params.bytes, checked against the file's size before mapping it.
  Status open(const std::string& path, bool verify_data, uint64_t expected_bytes);

  const uint8_t* data() const { return static_cast<const uint8_t*>(map_); }
  uint64_t file_bytes() const { return size_; }
  uint32_t table_crc32() const { return table_crc32_; }
  const std::vector<ParamEntry>& entries() const { return entries_; }

 private:
  void* map_ = nullptr;
  uint64_t size_ = 0;
  uint32_t table_crc32_ = 0;
  std::vector<ParamEntry> entries_;
};

}  // namespace kiln::rt

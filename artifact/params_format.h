// Layout of model.params (see docs/architecture.md, "model.params"). Shared by the compiler's
// writer and the runtime's reader so the two cannot drift apart.
#pragma once

#include <cstdint>

namespace kiln::artifact {

constexpr char kParamsMagic[8] = {'K', 'I', 'L', 'N', 'P', 'R', 'M', '1'};
constexpr uint32_t kParamsFormatVersion = 1;
constexpr uint64_t kParamsAlignment = 64;
constexpr uint64_t kParamsHeaderBytes = 64;
// Bytes of the header covered by header_crc32 (everything before that field).
constexpr uint64_t kParamsHeaderCrcSpan = 52;

#pragma pack(push, 1)
struct ParamsHeader {
  char magic[8];
  uint32_t format_version;
  uint32_t count;
  uint64_t table_offset;
  uint64_t table_bytes;
  uint64_t data_offset;
  uint64_t file_bytes;
  uint32_t table_crc32;
  uint32_t header_crc32;
  uint8_t reserved[8];
};
#pragma pack(pop)
static_assert(sizeof(ParamsHeader) == kParamsHeaderBytes, "params header is 64 bytes");

inline uint64_t align_up(uint64_t v, uint64_t a) {
  return (v + a - 1) / a * a;
}

}  // namespace kiln::artifact

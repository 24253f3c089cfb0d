// zlib-compatible CRC-32 (polynomial 0xEDB88320), shared by the params writer and reader.
// Slicing-by-8: ~1-2 GB/s, so checking BERT-base's 440 MB at load costs a fraction of a second.
#pragma once

#include <cstddef>
#include <cstdint>

namespace kiln::artifact {

namespace detail {
struct Crc32Tables {
  uint32_t t[8][256];
  Crc32Tables() {
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; ++i)
      for (int s = 1; s < 8; ++s) t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xFF];
  }
};
inline const Crc32Tables& crc32_tables() {
  static const Crc32Tables tables;
  return tables;
}
}  // namespace detail

// Continues a CRC: crc32(data, n) == crc32_update(0, data, n).
inline uint32_t crc32_update(uint32_t crc, const void* data, size_t n) {
  const auto& t = detail::crc32_tables().t;
  const auto* p = static_cast<const uint8_t*>(data);
  crc = ~crc;
  while (n >= 8) {
    uint32_t lo = (static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 |
                   static_cast<uint32_t>(p[2]) << 16 | static_cast<uint32_t>(p[3]) << 24) ^
                  crc;
    crc = t[7][lo & 0xFF] ^ t[6][(lo >> 8) & 0xFF] ^ t[5][(lo >> 16) & 0xFF] ^ t[4][lo >> 24] ^
          t[3][p[4]] ^ t[2][p[5]] ^ t[1][p[6]] ^ t[0][p[7]];
    p += 8;
    n -= 8;
  }
  while (n--) crc = t[0][(crc ^ *p++) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

inline uint32_t crc32(const void* data, size_t n) {
  return crc32_update(0, data, n);
}

}  // namespace kiln::artifact

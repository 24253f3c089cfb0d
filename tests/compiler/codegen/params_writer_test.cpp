// model.params round trip: write, parse independently, check layout and every crc.
#include "compiler/codegen/params_writer.h"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <iterator>

#include "artifact/crc32.h"
#include "artifact/params_format.h"

namespace kiln::codegen {
namespace {

using namespace kiln::artifact;

template <class T>
T get(const std::vector<uint8_t>& b, size_t& pos) {
  T v;
  std::memcpy(&v, b.data() + pos, sizeof(T));
  pos += sizeof(T);
  return v;
}

TEST(ParamsWriter, RoundTrip) {
  std::vector<float> w(37 * 13);
  for (size_t i = 0; i < w.size(); ++i) w[i] = 0.25f * static_cast<float>(i);
  std::vector<int64_t> ids = {1, -2, 3};
  std::vector<uint8_t> mask = {1, 0, 1, 1, 0};
  std::vector<ParamEntry> entries = {{"w", 1, {37, 13}, w.data(), w.size() * 4},
                                     {"ids", 2, {3}, ids.data(), ids.size() * 8},
                                     {"scalar_mask", 6, {5}, mask.data(), mask.size()},
                                     {"empty", 1, {0, 4}, nullptr, 0}};
  const std::string path = ::testing::TempDir() + "/kiln_params_test.params";
  auto s = write_params(path, entries);
  ASSERT_TRUE(s.is_ok()) << s.status().message();

  std::ifstream f(path, std::ios::binary);
  std::vector<uint8_t> b((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  ASSERT_EQ(b.size(), s->file_bytes);
  ParamsHeader h;
  std::memcpy(&h, b.data(), sizeof(h));
  EXPECT_EQ(std::memcmp(h.magic, kParamsMagic, 8), 0);
  EXPECT_EQ(h.format_version, 1u);
  EXPECT_EQ(h.count, 4u);
  EXPECT_EQ(h.table_offset, 64u);
  EXPECT_EQ(h.file_bytes, b.size());
  EXPECT_EQ(h.data_offset % 64, 0u);
  EXPECT_EQ(h.header_crc32, crc32(b.data(), kParamsHeaderCrcSpan));
  EXPECT_EQ(h.table_crc32, crc32(b.data() + h.table_offset, h.table_bytes));
  EXPECT_EQ(h.table_crc32, s->table_crc32);
  for (int i = 0; i < 8; ++i) EXPECT_EQ(h.reserved[i], 0);

  size_t pos = h.table_offset;
  for (const auto& e : entries) {
    const uint32_t len = get<uint32_t>(b, pos);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(b.data() + pos), len), e.name);
    pos += len;
    EXPECT_EQ(get<uint32_t>(b, pos), e.dtype);
    const uint32_t rank = get<uint32_t>(b, pos);
    ASSERT_EQ(rank, e.dims.size());
    for (uint32_t r = 0; r < rank; ++r) EXPECT_EQ(get<int64_t>(b, pos), e.dims[r]);
    const uint64_t off = get<uint64_t>(b, pos), nbytes = get<uint64_t>(b, pos);
    const uint32_t crc = get<uint32_t>(b, pos);
    EXPECT_EQ(off % 64, 0u) << e.name;
    EXPECT_GE(off, h.data_offset);
    EXPECT_EQ(nbytes, e.nbytes);
    ASSERT_LE(off + nbytes, b.size());
    EXPECT_EQ(crc, crc32(b.data() + off, nbytes));
    if (nbytes) {
      EXPECT_EQ(std::memcmp(b.data() + off, e.data, nbytes), 0) << e.name;
    }
  }
  EXPECT_EQ(pos, h.table_offset + h.table_bytes);
}

TEST(ParamsWriter, EmptyFileIsValid) {
  const std::string path = ::testing::TempDir() + "/kiln_params_empty.params";
  auto s = write_params(path, {});
  ASSERT_TRUE(s.is_ok());
  EXPECT_EQ(s->count, 0u);
  EXPECT_EQ(s->file_bytes, 64u);
}

TEST(Crc32, KnownValue) {
  EXPECT_EQ(crc32("123456789", 9), 0xCBF43926u);
}

}  // namespace
}  // namespace kiln::codegen

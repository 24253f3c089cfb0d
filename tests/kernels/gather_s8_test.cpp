// gather_s8 (INT8 embedding tables): the blob layout, per-row symmetric scales (error at most half
// a step of each row's own scale, zero rows exact), round half to even, out-of-range ids (negative
// included) reported, 1 and 3 threads identical.
#include "kiln/kernels/gather_s8.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "test_util.h"

namespace kiln::kernels {
namespace {
using testing::random_floats;
using testing::TestBackend;

TEST(GatherS8, DequantizesRowsWithinHalfAStep) {
  for (int64_t H : {1, 7, 64, 100}) {
    const int64_t V = 37;
    auto table = random_floats(V * H, 5 + H);
    for (int64_t h = 0; h < H; ++h) table[3 * H + h] = 0.0f;    // an all-zero row
    for (int64_t h = 0; h < H; ++h) table[5 * H + h] *= 1e-3f;  // a tiny row
    std::vector<uint8_t> blob(embedding_s8_bytes(V, H));
    quantize_embedding_s8(table.data(), V, H, blob.data());
    EXPECT_EQ(embedding_s8_rows_bytes(V, H) % 64, 0u);
    std::vector<int64_t> ids{0, 3, 5, 36, 5, 17};
    std::vector<float> out(ids.size() * H), out2(ids.size() * H);
    char err[128] = "";
    ASSERT_EQ(gather_s8(blob.data(), V, H, ids.data(), int64_t(ids.size()), out.data(), "g", "ids",
                        err, sizeof(err), nullptr),
              0)
        << err;
    TestBackend threads;
    ASSERT_EQ(gather_s8(blob.data(), V, H, ids.data(), int64_t(ids.size()), out2.data(), "g", "ids",
                        err, sizeof(err), threads.get()),
              0);
    EXPECT_EQ(out, out2);
    for (size_t i = 0; i < ids.size(); ++i) {
      const float* row = table.data() + ids[i] * H;
      float absmax = 0.0f;
      for (int64_t h = 0; h < H; ++h) absmax = std::fmax(absmax, std::fabs(row[h]));
      const float step = absmax / 127.0f;
      for (int64_t h = 0; h < H; ++h)
        ASSERT_LE(std::fabs(out[i * H + h] - row[h]), 0.5f * step * 1.0001f + 1e-30f)
            << "H " << H << " id " << ids[i] << " h " << h;
      if (ids[i] == 3) {
        for (int64_t h = 0; h < H; ++h) ASSERT_EQ(out[i * H + h], 0.0f);
      }
    }
  }
}

TEST(GatherS8, BlobLayoutAndRounding) {
  // Row 0: absmax 127 -> scale 1; 2.5 rounds to 2 and -0.5 to -0 (half to even).
  const int64_t V = 2, H = 4;
  std::vector<float> table{127.0f, 2.5f, -0.5f, -127.0f, 0.0f, 0.0f, 0.0f, 0.0f};
  std::vector<uint8_t> blob(embedding_s8_bytes(V, H));
  quantize_embedding_s8(table.data(), V, H, blob.data());
  const int8_t* q = reinterpret_cast<const int8_t*>(blob.data());
  EXPECT_EQ(q[0], 127);
  EXPECT_EQ(q[1], 2);
  EXPECT_EQ(q[2], 0);
  EXPECT_EQ(q[3], -127);
  const float* scale = reinterpret_cast<const float*>(blob.data() + embedding_s8_rows_bytes(V, H));
  EXPECT_EQ(scale[0], 1.0f);
  EXPECT_EQ(scale[1], 1.0f);  // all-zero row
}

TEST(GatherS8, OutOfRangeIdsAreErrors) {
  const int64_t V = 10, H = 3;
  std::vector<float> table(V * H, 1.0f);
  std::vector<uint8_t> blob(embedding_s8_bytes(V, H));
  quantize_embedding_s8(table.data(), V, H, blob.data());
  std::vector<float> out(H);
  for (int32_t bad : {10, -1}) {
    char err[128] = "";
    EXPECT_EQ(gather_s8(blob.data(), V, H, &bad, 1, out.data(), "/emb/Gather", "input_ids", err,
                        sizeof(err), nullptr),
              1);
    EXPECT_EQ(std::string(err), "node '/emb/Gather': index " + std::to_string(bad) +
                                    " in 'input_ids' is out of range [0, 10)");
  }
}

}  // namespace
}  // namespace kiln::kernels

// Gather (axes, negative indices, errors), ScatterND's index check, Slice (steps, negative,
// clamping), Concat.
#include <gtest/gtest.h>

#include <string>

#include "kiln/kernels/gather.h"
#include "kiln/kernels/scatter.h"
#include "kiln/kernels/slice.h"
#include "test_util.h"

namespace kiln::kernels {
namespace {
using testing::numel;
using testing::random_floats;
using testing::TestBackend;
using testing::unravel;
using Dims = std::vector<int64_t>;

TEST(Gather, AnyAxisWithNegativeIndices) {
  Dims d{3, 7, 5};
  auto x = random_floats(numel(d), 61);
  std::vector<int32_t> idx{0, -1, 6, 3, -7};
  for (int axis = 0; axis < 3; ++axis) {
    const int64_t outer = testing::numel(Dims(d.begin(), d.begin() + axis));
    const int64_t inner = testing::numel(Dims(d.begin() + axis + 1, d.end()));
    std::vector<int32_t> ix;
    for (int32_t v : idx)
      if (v < d[axis] && v >= -d[axis]) ix.push_back(v);
    std::vector<float> out(outer * ix.size() * inner);
    char err[128] = "";
    ASSERT_EQ(gather(x.data(), outer, d[axis], inner, ix.data(), int64_t(ix.size()), out.data(),
                     true, "g", "idx", err, sizeof(err), nullptr),
              0)
        << err;
    for (int64_t o = 0; o < outer; ++o)
      for (size_t i = 0; i < ix.size(); ++i)
        for (int64_t in = 0; in < inner; ++in) {
          int64_t v = ix[i] < 0 ? ix[i] + d[axis] : ix[i];
          ASSERT_EQ(out[(o * ix.size() + i) * inner + in], x[(o * d[axis] + v) * inner + in]);
        }
  }
}

TEST(Gather, OutOfRangeNamesNodeTensorValueAndRange) {
  std::vector<float> table(10 * 4);
  std::vector<int64_t> ids{1, 10};
  std::vector<float> out(2 * 4);
  char err[256];
  EXPECT_EQ(gather(table.data(), 1, 10, 4, ids.data(), 2, out.data(), false,
                   "/embeddings/word_embeddings/Gather", "input_ids", err, sizeof(err), nullptr),
            1);
  EXPECT_EQ(std::string(err),
            "node '/embeddings/word_embeddings/Gather': index 10 in 'input_ids' is out of range "
            "[0, 10)");
  ids = {-1, 2};
  EXPECT_EQ(gather(table.data(), 1, 10, 4, ids.data(), 2, out.data(), false, "n", "input_ids", err,
                   sizeof(err), nullptr),
            1);
  EXPECT_EQ(std::string(err), "node 'n': index -1 in 'input_ids' is out of range [0, 10)");
  ids = {-11};
  EXPECT_EQ(gather(table.data(), 1, 10, 4, ids.data(), 1, out.data(), true, "n", "i", err,
                   sizeof(err), nullptr),
            1);
  EXPECT_EQ(std::string(err), "node 'n': index -11 in 'i' is out of range [-10, 10)");
}

// A bad index tuple is an error naming node, index tensor, value and range, and nothing is
// written (indices are checked before the copy); a negative index counts from the end.
TEST(ScatterND, OutOfRangeIndexIsAnErrorAndWritesNothing) {
  const int64_t dd[] = {2, 3};
  const std::vector<float> data = {0, 1, 2, 3, 4, 5}, updates = {7, 8, 9, 10, 11, 12};
  std::vector<float> out(6, -1.0f);
  char err[160] = {};
  std::vector<int64_t> idx = {-1, 2};  // row -1 = 1 is fine, row 2 is not
  EXPECT_EQ(
      scatter_nd(data.data(), dd, 2, idx.data(), 2, 1, updates.data(), ScatterReduction::kNone,
                 out.data(), "scat", "idx", err, sizeof(err), nullptr),
      1);
  EXPECT_EQ(std::string(err), "node 'scat': index 2 in 'idx' is out of range [-2, 2)");
  EXPECT_EQ(out, std::vector<float>(6, -1.0f));
  idx = {-1, 0};
  EXPECT_EQ(scatter_nd(data.data(), dd, 2, idx.data(), 2, 1, updates.data(), ScatterReduction::kAdd,
                       out.data(), "scat", "idx", err, sizeof(err), nullptr),
            0);
  EXPECT_EQ(out, (std::vector<float>{10, 12, 14, 10, 12, 14}));
}

TEST(Slice, AxisNormalisation) {
  int64_t first, count;
  slice_axis(10, 2, 7, 2, &first, &count);
  EXPECT_EQ(first, 2);
  EXPECT_EQ(count, 3);
  slice_axis(10, -3, INT64_MAX, 1, &first, &count);
  EXPECT_EQ(first, 7);
  EXPECT_EQ(count, 3);
  slice_axis(10, -1, INT64_MIN, -1, &first, &count);
  EXPECT_EQ(first, 9);
  EXPECT_EQ(count, 10);
  slice_axis(10, 100, -100, -3, &first, &count);
  EXPECT_EQ(first, 9);
  EXPECT_EQ(count, 4);
  slice_axis(10, 5, 3, 1, &first, &count);
  EXPECT_EQ(count, 0);
  slice_axis(7, 0, 1, 1, &first, &count);
  EXPECT_EQ(count, 1);
}

TEST(Slice, StridedCopyMatchesReference) {
  Dims d{7, 13, 5};
  auto x = random_floats(numel(d), 71);
  int64_t first[3], step[3] = {2, -3, 1}, od[3];
  slice_axis(7, 1, 100, 2, &first[0], &od[0]);
  slice_axis(13, -1, -100, -3, &first[1], &od[1]);
  slice_axis(5, 0, 1, 1, &first[2], &od[2]);
  Dims odv(od, od + 3);
  std::vector<float> out(numel(odv));
  TestBackend tb;
  slice(x.data(), d.data(), 3, first, step, out.data(), od, tb.get());
  for (int64_t i = 0; i < numel(odv); ++i) {
    auto o = unravel(i, odv);
    int64_t a = first[0] + o[0] * step[0], b = first[1] + o[1] * step[1],
            c = first[2] + o[2] * step[2];
    ASSERT_EQ(out[i], x[(a * 13 + b) * 5 + c]);
  }
}

TEST(Concat, ThreeInputsMiddleAxis) {
  // [3, 2, 5] ++ [3, 7, 5] ++ [3, 1, 5] along axis 1
  auto a = random_floats(3 * 2 * 5, 81), b = random_floats(3 * 7 * 5, 82),
       c = random_floats(3 * 1 * 5, 83);
  const float* ins[3] = {a.data(), b.data(), c.data()};
  int64_t chunk[3] = {10, 35, 5};
  std::vector<float> out(3 * 10 * 5);
  concat(ins, chunk, 3, 3, out.data(), nullptr);
  for (int64_t o = 0; o < 3; ++o)
    for (int64_t j = 0; j < 10; ++j)
      for (int64_t k = 0; k < 5; ++k) {
        float want = j < 2   ? a[(o * 2 + j) * 5 + k]
                     : j < 9 ? b[(o * 7 + j - 2) * 5 + k]
                             : c[(o * 1 + j - 9) * 5 + k];
        ASSERT_EQ(out[(o * 10 + j) * 5 + k], want);
      }
}

}  // namespace
}  // namespace kiln::kernels

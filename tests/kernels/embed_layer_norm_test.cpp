// embedding_layer_norm_f32 (the fused embedding gathers + sum + LayerNorm) against a float64
// reference of the unfused ops: odd H and row counts, float32 and int8 tables (the reference
// dequantizes the same blob), int64 / int32 ids, ids broadcast over the batch, affine rows
// (position buffer slices, constant token type), 1 and 3 threads identical; out-of-range and
// negative ids (and affine rows past the table) give gather.h's message and write nothing.
#include "kiln/kernels/embed_layer_norm.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "test_util.h"

namespace kiln::kernels {
namespace {
using testing::random_floats;
using testing::TestBackend;

struct Table {
  int64_t rows, H;
  std::vector<float> f32;
  std::vector<uint8_t> s8;
  Table(int64_t v, int64_t h, uint32_t seed, bool quantized) : rows(v), H(h) {
    f32 = random_floats(v * h, seed, -1.f, 1.f);
    if (quantized) {
      s8.resize(embedding_s8_bytes(v, h));
      quantize_embedding_s8(f32.data(), v, h, s8.data());
    }
  }
  // Row v as the kernel sees it (dequantized when int8).
  double at(int64_t v, int64_t h) const {
    if (s8.empty()) return f32[v * H + h];
    const float s = reinterpret_cast<const float*>(s8.data() + embedding_s8_rows_bytes(rows, H))[v];
    return s * static_cast<float>(reinterpret_cast<const int8_t*>(s8.data())[v * H + h]);
  }
  EmbeddingTerm term(const void* ids, bool int32, int64_t period, int64_t first, int64_t step,
                     const char* name) const {
    return {s8.empty() ? f32.data() : nullptr,
            s8.empty() ? nullptr : s8.data(),
            rows,
            ids,
            int32,
            period,
            first,
            step,
            name};
  }
};

void check(const std::vector<EmbeddingTerm>& terms, const std::vector<const Table*>& tables,
           int64_t rows, int64_t H, bool affine_ln, const std::string& what) {
  auto scale = random_floats(H, 3, 0.5f, 1.5f), bias = random_floats(H, 4);
  std::vector<float> out(rows * H, -1.f), out3(rows * H, -2.f);
  char err[256] = "";
  const float* ps = affine_ln ? scale.data() : nullptr;
  const float* pb = affine_ln ? bias.data() : nullptr;
  ASSERT_EQ(embedding_layer_norm_f32(terms.data(), int(terms.size()), rows, H, ps, pb, 1e-5f,
                                     out.data(), "n", err, sizeof(err), nullptr),
            0)
      << err << " " << what;
  TestBackend threads;
  ASSERT_EQ(embedding_layer_norm_f32(terms.data(), int(terms.size()), rows, H, ps, pb, 1e-5f,
                                     out3.data(), "n", err, sizeof(err), threads.get()),
            0);
  EXPECT_EQ(out, out3) << what;
  for (int64_t r = 0; r < rows; ++r) {
    std::vector<double> x(H, 0.0);
    for (size_t t = 0; t < terms.size(); ++t) {
      const int64_t v = detail::embedding_row(terms[t], r);
      for (int64_t h = 0; h < H; ++h) x[h] = float(x[h] + tables[t]->at(v, h));  // float Adds
    }
    double mean = 0, var = 0;
    for (double e : x) mean += e;
    mean /= H;
    for (double e : x) var += (e - mean) * (e - mean);
    const double rstd = 1.0 / std::sqrt(var / H + 1e-5);
    for (int64_t h = 0; h < H; ++h) {
      double want = (x[h] - mean) * rstd;
      if (affine_ln) want = want * scale[h] + bias[h];
      ASSERT_NEAR(out[r * H + h], want, 2e-5 * (std::fabs(want) + 1))
          << what << " row " << r << " h " << h;
    }
  }
}

TEST(EmbeddingLayerNorm, MatchesReferenceOnBertLikeInputs) {
  for (bool quantized : {false, true})
    for (int64_t H : {1, 7, 33, 100}) {
      const int64_t batch = 3, seq = 5, rows = batch * seq;
      const Table word(50, H, 1, quantized), types(2, H, 2, quantized), pos(9, H, 3, quantized);
      std::vector<int64_t> ids(rows), tt(rows);
      std::vector<int32_t> ids32(rows);
      for (int64_t i = 0; i < rows; ++i) ids[i] = ids32[i] = (i * 17 + 3) % 50, tt[i] = i % 2;
      const std::string what = "H " + std::to_string(H) + (quantized ? " int8" : " f32");
      // word ids + token type ids input + positions 2, 3, ... (a buffer slice starting at 2).
      check({word.term(ids.data(), false, 0, 0, 0, "input_ids"),
             types.term(tt.data(), false, 0, 0, 0, "token_type_ids"),
             pos.term(nullptr, false, seq, 2, 1, "pos")},
            {&word, &types, &pos}, rows, H, true, what);
      // int32 ids, constant token type 1 (step 0), position ids broadcast over the batch.
      std::vector<int64_t> pos_ids = {8, 0, 4, 4, 1};
      check({word.term(ids32.data(), true, 0, 0, 0, "input_ids"),
             types.term(nullptr, false, seq, 1, 0, "tt"),
             pos.term(pos_ids.data(), false, seq, 0, 0, "position_ids")},
            {&word, &types, &pos}, rows, H, false, what + " broadcast");
      // One table, one row.
      check({word.term(ids.data(), false, 0, 0, 0, "input_ids")}, {&word}, 1, H, true,
            what + " one row");
    }
}

TEST(EmbeddingLayerNorm, BadIdsAreReportedBeforeAnythingIsWritten) {
  const int64_t H = 8, seq = 4, rows = 2 * seq;
  const Table word(10, H, 1, false), pos(6, H, 2, true);
  for (int64_t bad : {int64_t{10}, int64_t{-1}, int64_t{1} << 40}) {
    std::vector<int64_t> ids(rows, 3);
    ids[5] = bad;
    std::vector<EmbeddingTerm> terms = {word.term(ids.data(), false, 0, 0, 0, "input_ids"),
                                        pos.term(nullptr, false, seq, 0, 1, "pos_ids")};
    std::vector<float> out(rows * H, 7.f);
    char err[256] = "";
    EXPECT_EQ(
        embedding_layer_norm_f32(terms.data(), 2, rows, H, nullptr, nullptr, 1e-5f, out.data(),
                                 "/embeddings/EmbeddingLayerNorm", err, sizeof(err), nullptr),
        1);
    EXPECT_EQ(std::string(err), "node '/embeddings/EmbeddingLayerNorm': index " +
                                    std::to_string(bad) +
                                    " in 'input_ids' is out of range [0, 10)");
    EXPECT_EQ(out, std::vector<float>(rows * H, 7.f));
  }
  // Positions first + s for s < 4 with first = 3: 6 is past a 6-row table.
  std::vector<int64_t> ids(rows, 3);
  std::vector<EmbeddingTerm> terms = {word.term(ids.data(), false, 0, 0, 0, "input_ids"),
                                      pos.term(nullptr, false, seq, 3, 1, "pos_ids")};
  std::vector<float> out(rows * H);
  char err[256] = "";
  EXPECT_EQ(embedding_layer_norm_f32(terms.data(), 2, rows, H, nullptr, nullptr, 1e-5f, out.data(),
                                     "n", err, sizeof(err), nullptr),
            1);
  EXPECT_EQ(std::string(err), "node 'n': index 6 in 'pos_ids' is out of range [0, 6)");
}

}  // namespace
}  // namespace kiln::kernels

// The INT8 emulation's GEMM (emulate.h): Y[M, N] = X[M, K] * B[K, N] in float register tiles,
// summed into double every kKc steps of K. Mixed precision re-runs a model once per candidate
// layer, so this is where --min-cosine spends its time (BERT-base: ~50 whole-model runs).
//
// Exact on integers: with int8 weights and activations (|q - z| <= 255, |w| <= 127) every product
// is below 2^15 and every float partial sum of kKc products below 2^24, so each chunk is exact and
// so is their double sum: the same integer dot products as the INT8 kernels' int32 ones.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace kiln::quantize {

// B [K, N] in panels of kNr columns (the last zero-padded): panel j holds B[p, j*kNr + c] at
// p * kNr + c.
class PackedPanels {
 public:
  static constexpr int64_t kNr = 16;

  PackedPanels() = default;
  // B [K, N] row-major, of any type convertible to float exactly (float, int8).
  template <typename T>
  PackedPanels(const T* b, int64_t k, int64_t n) : k_(k), n_(n) {
    const int64_t panels = (n + kNr - 1) / kNr;
    data_.assign(static_cast<size_t>(panels * k * kNr), 0.0f);
    for (int64_t p = 0; p < k; ++p)
      for (int64_t j = 0; j < n; ++j)
        data_[((j / kNr) * k + p) * kNr + j % kNr] = static_cast<float>(b[p * n + j]);
  }

  int64_t k() const { return k_; }
  int64_t n() const { return n_; }
  const float* panel(int64_t j) const { return data_.data() + j * k_ * kNr; }

 private:
  int64_t k_ = 0, n_ = 0;
  std::vector<float> data_;
};

// K steps summed in float before the double sum: 2^24 / (255 * 127) = 518, rounded down.
constexpr int64_t kKc = 512;

// Y[M, N] (row-major, overwritten) = X[M, K] (row-major) * B. With `scale`, B's columns are
// scaled per group of `group` (0: all of K) consecutive k, as gemm/s8_pack.h's weights:
// Y[i, j] = sum_g scale[g * N + j] * sum_{k in g} X[i, k] B[k, j]. Each group's sum is its own
// chunk (group <= kKc), so on int8 operands it is the kernels' exact int32 sum before scaling.
void host_gemm(const float* x, int64_t m, const PackedPanels& b, double* y,
               const float* scale = nullptr, int64_t group = 0);

}  // namespace kiln::quantize

// Sentence-embedding pooling (model.json "pooling", kiln_model_embed): one vector per text from
// the encoder's [batch, seq, dim] float32 hidden state, then optional L2 normalisation. Rows are
// right-padded and row b's tokens are positions [0, lengths[b]), so padding is never read: CLS
// and last-token read one position, mean and max one pass over the tokens. The same arithmetic
// as sentence-transformers' Pooling and Normalize modules (mean divides the float sum by the
// count; normalize divides by max(|x|, 1e-12), as torch.nn.functional.normalize).
#pragma once

#include <cstdint>
#include <string>

namespace kiln::rt {

enum class Pooling { kNone, kCls, kMean, kMax, kLast };

// "none", "cls", "mean", "max", "last"; false for anything else.
bool pooling_from_name(const std::string& name, Pooling* out);
const char* pooling_name(Pooling mode);

// out_rows[b] = mode over hidden[b, 0 : lengths[b], :] (hidden is [batch, seq, dim] row-major),
// for b < batch. Every length is in [1, seq]; mode is not kNone.
void pool_f32(Pooling mode, const float* hidden, int64_t batch, int64_t seq, int64_t dim,
              const int64_t* lengths, float* const* out_rows);

// Each of the count rows of dim floats at rows[i] divided by max(its L2 norm, 1e-12).
void l2_normalize_f32(float* const* rows, int64_t count, int64_t dim);

}  // namespace kiln::rt

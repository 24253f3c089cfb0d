// Model's embedding side (kiln_model_embed): texts -> tokenizer -> runs over length-sorted
// batches -> pooling (runtime/pooling.h) -> optional L2 normalisation, one vector per text.
//
// Batching: the texts are sorted by token count, longest first, and cut into runs of max_batch
// consecutive texts, each padded to its own longest (its first). Exact (pooling never reads
// padding, and a text's vector does not depend on its batch), and the padded positions of a
// run are only the length differences inside it. Longest first so the arena grows once.
#include <algorithm>
#include <cstring>
#include <numeric>
#include <string>
#include <vector>

#include "runtime/dtype.h"
#include "runtime/model.h"

namespace kiln::rt {
namespace {

// Default run size: as many texts as keep the arena (batch x the planned one) under this.
constexpr uint64_t kEmbedArenaBudget = uint64_t{128} << 20;
constexpr int kMaxDefaultBatch = 32;

const char kNoPooling[] =
    ": the artifact has no pooling (compile it with `kiln compile ... --pooling "
    "cls|mean|max|last [--normalize]`, or kiln.compile(SentenceTransformer)) and no float32 "
    "[batch, dim] output";

}  // namespace

Status Model::load_pooling() {
  const PoolingDesc& p = desc_.pooling;
  if (!p.present) {
    // No section: a graph that already ends in a [batch, dim] embedding is served as it is.
    // (desc_, not outputs_: load sizes the output buffers after this)
    for (int i = 0; i < static_cast<int>(desc_.outputs.size()); ++i) {
      const TensorDesc& t = desc_.tensors[desc_.outputs[i].tensor];
      if (t.dtype == KILN_FLOAT32 && t.shape.size() == 2 && t.shape[1].is_constant() &&
          t.shape[1].coef > 0) {
        embed_output_ = i;
        embed_dim_ = t.shape[1].coef;
        return ok_status();
      }
    }
    return ok_status();
  }
  const std::string where = dir_ + "/model.json: pooling";
  if (!pooling_from_name(p.mode, &embed_pooling_))
    return error(KILN_ERROR_INCOMPATIBLE, where + ".mode: '" + p.mode +
                                              "' is not supported (this runtime knows none, cls, "
                                              "mean, max and last)");
  const int index = output_index(p.output.c_str());
  if (index < 0)
    return error(KILN_ERROR_CORRUPT, where + ".output: the model has no output '" + p.output + "'");
  const TensorDesc& t = desc_.tensors[desc_.outputs[index].tensor];
  const size_t rank = embed_pooling_ == Pooling::kNone ? 2 : 3;
  if (t.dtype != KILN_FLOAT32 || t.shape.size() != rank || !t.shape.back().is_constant() ||
      t.shape.back().coef < 1)
    return error(KILN_ERROR_CORRUPT,
                 where + ": output '" + p.output + "' is " + dtype_name(t.dtype) + " of rank " +
                     std::to_string(t.shape.size()) + "; pooling '" + p.mode + "' needs float32 " +
                     (rank == 2 ? "[batch, dim]" : "[batch, seq, dim]") + " with a fixed dim");
  embed_output_ = index;
  embed_normalize_ = p.normalize;
  embed_dim_ = t.shape.back().coef;
  return ok_status();
}

Status Model::embedding_dim(int64_t* dim) const {
  if (embed_output_ < 0) return error(KILN_ERROR_STATE, dir_ + kNoPooling);
  *dim = embed_dim_;
  return ok_status();
}

Status Model::embed(const char* const* texts, int n, const kiln_embed_options* opts, float* out,
                    int64_t out_floats, kiln_embed_stats* stats) {
  int64_t dim = 0;
  KILN_RT_TRY(embedding_dim(&dim));
  if (out_floats / dim < n)
    return error(KILN_ERROR_INVALID_ARGUMENT,
                 "kiln_model_embed: out holds " + std::to_string(out_floats) + " floats, " +
                     std::to_string(n) + " embeddings of " + std::to_string(dim) + " need " +
                     std::to_string(static_cast<int64_t>(n) * dim));
  int max_batch = opts ? opts->max_batch : 0;
  if (max_batch < 0)
    return error(
        KILN_ERROR_INVALID_ARGUMENT,
        "kiln_model_embed: max_batch " + std::to_string(max_batch) + " (0 = default, else >= 1)");
  if (max_batch == 0)
    max_batch = static_cast<int>(std::clamp<uint64_t>(
        kEmbedArenaBudget / std::max<uint64_t>(desc_.arena_bytes, 1), 1, kMaxDefaultBatch));

  std::vector<std::vector<int64_t>> rows;
  int32_t truncated = 0;
  embed_tokens_.clear();
  KILN_RT_TRY(tokenize(texts, n, 0, &rows, &truncated, &embed_full_tokens_));
  // Runs never exceed the batch symbol's maximum, if the artifact has one (input_ids' first
  // dimension; tokenize checked the artifact has a tokenizer, hence input_ids).
  const TensorDesc& ids = desc_.tensors[desc_.inputs[input_index("input_ids")].tensor];
  const int batch_symbol = ids.shape.empty() ? -1 : ids.shape[0].single_symbol();
  if (batch_symbol >= 0 && desc_.symbols[batch_symbol].max > 0)
    max_batch = static_cast<int>(std::min<int64_t>(max_batch, desc_.symbols[batch_symbol].max));
  for (int i = 0; i < n; ++i)
    if (rows[i].empty())
      return error(KILN_ERROR_INVALID_ARGUMENT,
                   "text " + std::to_string(i) +
                       " has no tokens (the tokenizer adds no special tokens to an empty text): "
                       "nothing to embed");
  std::vector<int> order(n);
  std::iota(order.begin(), order.end(), 0);
  if (!(opts && opts->keep_order))
    std::stable_sort(order.begin(), order.end(),
                     [&](int a, int b) { return rows[a].size() > rows[b].size(); });

  kiln_embed_stats s{0, 0, 0, truncated, enc_warning_.c_str()};
  std::vector<int64_t> lengths;
  std::vector<float*> out_rows;
  for (int start = 0; start < n; start += max_batch) {
    const int count = std::min(max_batch, n - start);
    const int* batch = order.data() + start;
    size_t seq = 0;
    lengths.resize(count);
    out_rows.resize(count);
    for (int k = 0; k < count; ++k) {
      lengths[k] = static_cast<int64_t>(rows[batch[k]].size());
      out_rows[k] = out + static_cast<int64_t>(batch[k]) * dim;
      seq = std::max(seq, rows[batch[k]].size());
      s.tokens += lengths[k];
    }
    KILN_RT_TRY(set_text_inputs(rows, batch, count, seq));
    KILN_RT_TRY(run());
    const IoState& o = outputs_[embed_output_];
    const float* y = reinterpret_cast<const float*>(o.buffer.data());
    const int64_t want_rank = embed_pooling_ == Pooling::kNone ? 2 : 3;
    if (static_cast<int64_t>(o.shape.size()) != want_rank || o.shape[0] != count ||
        o.shape.back() != dim || (want_rank == 3 && o.shape[1] != static_cast<int64_t>(seq)))
      return error(KILN_ERROR_RUNTIME, "output '" + desc_.outputs[embed_output_].name +
                                           "' has a shape that does not follow batch " +
                                           std::to_string(count) + " x seq " + std::to_string(seq) +
                                           ": cannot pool it");
    if (embed_pooling_ == Pooling::kNone) {
      for (int k = 0; k < count; ++k) std::memcpy(out_rows[k], y + k * dim, sizeof(float) * dim);
    } else {
      pool_f32(embed_pooling_, y, count, static_cast<int64_t>(seq), dim, lengths.data(),
               out_rows.data());
    }
    if (embed_normalize_) l2_normalize_f32(out_rows.data(), count, dim);
    s.padded_tokens += static_cast<int64_t>(count) * static_cast<int64_t>(seq);
    ++s.runs;
  }
  if (stats) *stats = s;
  embed_tokens_.resize(n);
  for (int i = 0; i < n; ++i) embed_tokens_[i] = static_cast<int64_t>(rows[i].size());
  return ok_status();
}

Status Model::embed_text_tokens(int n, int64_t* tokens, int64_t* full_tokens) const {
  if (embed_tokens_.empty() || static_cast<size_t>(n) != embed_tokens_.size())
    return error(KILN_ERROR_STATE,
                 "kiln_model_embed_text_tokens: the last kiln_model_embed on this model " +
                     (embed_tokens_.empty() ? std::string("did not succeed (or none ran)")
                                            : "embedded " + std::to_string(embed_tokens_.size()) +
                                                  " texts, not " + std::to_string(n)));
  if (tokens) std::copy(embed_tokens_.begin(), embed_tokens_.end(), tokens);
  if (full_tokens) std::copy(embed_full_tokens_.begin(), embed_full_tokens_.end(), full_tokens);
  return ok_status();
}

}  // namespace kiln::rt

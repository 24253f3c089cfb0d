// Model's embedding side (kiln_model_embed): texts -> tokenizer -> runs over length-sorted
// batches -> pooling (runtime/pooling.h) -> optional L2 normalisation, one vector per text.
//
// Batching: the texts are taken in chunks of about 1024 (a whole number of runs), each chunk
// tokenized, sorted by token count, longest first, and cut into runs of max_batch consecutive
// texts, each padded to its own longest (its first). Exact (pooling never reads padding, and a
// text's vector does not depend on its batch), and the padded positions of a run are only the
// length differences inside it; longest first so the run buffers grow once. The arena is
// planned per run (max_batch texts), so neither it nor the token ids grow with the number of
// texts in a call.
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
// Texts tokenized and sorted at a time: the token ids held at once are bounded by this many
// texts (at most 1024 x the compiled maximum, 4 MiB at 512 tokens), not by the call's n
// (kiln-rt embed --file with a million lines); each chunk still sorts by length, and with
// kiln-rt serve's batches (<= 512 texts) a batch is one chunk.
constexpr int kEmbedChunkTexts = 1024;

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

  // Runs never exceed the batch symbol's maximum, if the artifact has one (input_ids' first
  // dimension; an artifact with a tokenizer has input_ids).
  KILN_RT_TRY(need_tokenizer());
  const TensorDesc& ids = desc_.tensors[desc_.inputs[input_index("input_ids")].tensor];
  const int batch_symbol = ids.shape.empty() ? -1 : ids.shape[0].single_symbol();
  if (batch_symbol >= 0 && desc_.symbols[batch_symbol].max > 0)
    max_batch = static_cast<int>(std::min<int64_t>(max_batch, desc_.symbols[batch_symbol].max));
  // A whole number of runs per chunk, about kEmbedChunkTexts texts.
  const int chunk = max_batch * std::max(1, kEmbedChunkTexts / max_batch);

  embed_tokens_.clear();
  embed_full_tokens_.assign(n, 0);
  enc_warning_.clear();
  std::vector<int64_t> tokens(n);
  kiln_embed_stats s{0, 0, 0, 0, nullptr};
  std::vector<std::vector<int64_t>> rows;
  std::vector<int> order;
  std::vector<int64_t> lengths;
  std::vector<float*> out_rows;
  for (int first = 0; first < n; first += chunk) {
    const int m = std::min(chunk, n - first);
    KILN_RT_TRY(tokenize(texts + first, m, 0, &rows, &s.num_truncated,
                         embed_full_tokens_.data() + first, first));
    for (int i = 0; i < m; ++i) {
      if (rows[i].empty())
        return error(KILN_ERROR_INVALID_ARGUMENT,
                     "text " + std::to_string(first + i) +
                         " has no tokens (the tokenizer adds no special tokens to an empty "
                         "text): nothing to embed");
      tokens[first + i] = static_cast<int64_t>(rows[i].size());
    }
    order.resize(m);
    std::iota(order.begin(), order.end(), 0);
    if (!(opts && opts->keep_order))
      std::stable_sort(order.begin(), order.end(),
                       [&](int a, int b) { return rows[a].size() > rows[b].size(); });
    for (int start = 0; start < m; start += max_batch) {
      const int count = std::min(max_batch, m - start);
      const int* batch = order.data() + start;
      size_t seq = 0;
      lengths.resize(count);
      out_rows.resize(count);
      for (int k = 0; k < count; ++k) {
        lengths[k] = static_cast<int64_t>(rows[batch[k]].size());
        out_rows[k] = out + static_cast<int64_t>(first + batch[k]) * dim;
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
                                             std::to_string(count) + " x seq " +
                                             std::to_string(seq) + ": cannot pool it");
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
  }
  s.warning = enc_warning_.c_str();
  if (stats) *stats = s;
  embed_tokens_ = std::move(tokens);
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

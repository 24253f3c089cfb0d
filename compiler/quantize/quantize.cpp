// Marks Dense and embedding Gather nodes for INT8 storage; see quantize.h.
#include "compiler/quantize/quantize.h"

namespace kiln::quantize {

bool glob_match(const std::string& pattern, const std::string& text) {
  // Iterative matcher with one backtrack point (the last `*`): linear in practice, no recursion.
  size_t p = 0, t = 0, star = std::string::npos, star_t = 0;
  while (t < text.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == text[t])) {
      ++p, ++t;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      star_t = t;
    } else if (star != std::string::npos) {
      p = star + 1;
      t = ++star_t;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

namespace {

// A Gather that reads an embedding table: constant float32 [V, H], axis 0. Tables of at most 16
// elements are baked into model.cpp by codegen and are not worth quantizing.
bool is_embedding_gather(const ir::Node& n) {
  if (n.op != ir::Op::kGather) return false;
  const ir::Value* table = n.input(0);
  if (!table || !table->constant || table->dtype != ir::DType::kFloat32) return false;
  if (table->constant->dims.size() != 2 || table->constant->numel() <= 16) return false;
  const int64_t axis = n.attr_int("axis", 0);
  return axis == 0 || axis == -2;
}

bool is_quantizable_dense(const ir::Node& n) {
  const ir::Value* w = n.input(ir::DenseIn::kWeight);
  return n.op == ir::Op::kDense && w && w->constant && w->dtype == ir::DType::kFloat32 &&
         w->constant->dims.size() == 2;
}

}  // namespace

Result<QuantizeReport> quantize_int8(ir::Graph& g, const QuantizeOptions& opts) {
  if (!kernels::gemm::valid_s8_weight_group(opts.weight_group))
    return Status::error("INT8 weight group " + std::to_string(opts.weight_group) +
                         ": expected 0 or a multiple of 4 in [4, " +
                         std::to_string(kernels::gemm::kMaxS8WeightGroup) + "]");
  QuantizeReport r;
  std::vector<bool> pattern_used(opts.exclude.size(), false);
  auto excluded = [&](const ir::Node& n, const ir::Value* weight) {
    bool hit = false;
    for (size_t i = 0; i < opts.exclude.size(); ++i)
      if (glob_match(opts.exclude[i], n.name) || glob_match(opts.exclude[i], weight->name))
        hit = pattern_used[i] = true;
    return hit;
  };
  size_t candidates = 0;
  for (const auto& node : g.nodes()) {
    ir::Node& n = *node;
    if (n.op == ir::Op::kEmbeddingLayerNorm) {  // each table on its own, as the Gathers it replaced
      std::vector<int64_t> marks;
      bool any = false;
      using Embed = ir::EmbeddingLayerNormIn;
      for (size_t t = 0; Embed::table(t) < n.inputs.size(); ++t) {
        const ir::Value* table = n.input(Embed::table(t));
        const bool fit = table && table->constant && table->dtype == ir::DType::kFloat32 &&
                         table->constant->dims.size() == 2 && table->constant->numel() > 16;
        marks.push_back(0);
        if (!fit) continue;
        const std::string what = n.name + " (" + table->name + ")";
        if (!n.input(Embed::ids(t)) || table->constant->dims[0] <= kSharedTableRows) {
          r.shared.push_back(what);
          continue;
        }
        ++candidates;
        if (excluded(n, table)) {
          r.excluded.push_back(what);
          continue;
        }
        marks.back() = 1;
        any = true;
        r.embeddings.push_back(what);
      }
      if (any) {
        n.attrs["quantize"] = std::string(kInt8);
        n.attrs["quantize_tables"] = marks;
      }
      continue;
    }
    const bool dense = is_quantizable_dense(n), embedding = is_embedding_gather(n);
    if (!dense && !embedding) continue;
    if (embedding && n.input(0)->constant->dims[0] <= kSharedTableRows) {
      r.shared.push_back(n.name);
      continue;
    }
    ++candidates;
    if (excluded(n, n.input(dense ? 1 : 0))) {
      r.excluded.push_back(n.name);
      continue;
    }
    n.attrs["quantize"] = std::string(kInt8);
    if (dense) {
      const int64_t K = n.input(ir::DenseIn::kWeight)->constant->dims[0];
      if (const int64_t group = kernels::gemm::effective_s8_weight_group(K, opts.weight_group))
        n.attrs["weight_group"] = group;
    }
    (dense ? r.quantized : r.embeddings).push_back(n.name);
  }
  for (size_t i = 0; i < opts.exclude.size(); ++i)
    if (!pattern_used[i])
      r.warnings.push_back("--quantize-exclude pattern '" + opts.exclude[i] +
                           "' matches no Dense (MatMul/Gemm with a constant weight) or embedding "
                           "table node or weight name");
  if (r.quantized.empty() && r.embeddings.empty())
    r.warnings.push_back(
        candidates == 0
            ? "--quantize int8: the model has no quantizable layer (no MatMul/Gemm with a constant "
              "weight, no embedding table read by token ids); the artifact is FP32"
            : "--quantize int8: every quantizable layer is excluded; the artifact is FP32");
  return r;
}

}  // namespace kiln::quantize

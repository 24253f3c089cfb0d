// Generated calibration inputs; see calibration.h.
#include "compiler/quantize/calibration.h"

#include <algorithm>
#include <random>
#include <vector>

namespace kiln::quantize {
namespace {

// Rows of the embedding table that graph input v indexes (0 if none).
int64_t vocab_of(const ir::Graph& g, const ir::Value* v) {
  for (const ir::Node* n : g.consumers(v))
    for (size_t i = 1; i < n->inputs.size(); ++i) {
      const ir::Value* table = n->inputs[i - 1];
      if (n->inputs[i] == v && table && table->constant && table->constant->dims.size() == 2 &&
          (n->op == ir::Op::kGather || n->op == ir::Op::kEmbeddingLayerNorm))
        return table->constant->dims[0];
    }
  return 0;
}

}  // namespace

Result<CalibrationInputs> calibration_inputs(const ir::Graph& g,
                                             const std::map<std::string, ir::Tensor>& given,
                                             int64_t seq, int64_t batch) {
  std::vector<int64_t> sym(ir::kMaxSymbols, seq);
  for (size_t s = 0; s < g.symbols.size() && s < sym.size(); ++s)  // within the compiled maxima
    if (g.symbols[s].max > 0) sym[s] = std::min(seq, g.symbols[s].max);
  if (int b = g.symbol_index("batch"); b >= 0) sym[b] = batch;
  for (const ir::Value* v : g.inputs)  // given arrays fix the symbols
    if (auto it = given.find(v->name);
        it != given.end() && v->shape && v->shape->size() == it->second.dims.size())
      for (size_t k = 0; k < v->shape->size(); ++k)
        for (int s = 0; s < ir::kMaxSymbols; ++s)
          if ((*v->shape)[k] == ir::Dim::symbol(s)) sym[s] = it->second.dims[k];
  std::mt19937 rng(0);
  CalibrationInputs r;
  bool ids_done = false;  // token ids for the first integer input only (token types stay 0)
  for (const ir::Value* v : g.inputs) {
    if (auto it = given.find(v->name); it != given.end()) {
      r.tensors[v->name] = it->second;
      r.described[v->name] = "given";
      continue;
    }
    if (!v->shape) return Status::error("input '" + v->name + "' has no shape");
    ir::Tensor t;
    t.dtype = v->dtype;
    for (const ir::Dim& d : *v->shape) t.dims.push_back(d.eval(sym.data()));
    t.bytes.resize(static_cast<size_t>(t.numel()) * ir::dtype_size(t.dtype));
    const bool mask = v->name.find("mask") != std::string::npos;
    const bool is_int = v->dtype == ir::DType::kInt64 || v->dtype == ir::DType::kInt32;
    const int64_t vocab = mask || ids_done || !is_int ? 0 : vocab_of(g, v);
    ids_done = ids_done || (is_int && !mask);
    std::string what;
    if (v->dtype == ir::DType::kFloat32) {
      std::normal_distribution<float> nd;
      for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = mask ? 1.0f : nd(rng);
      what = mask ? "ones" : "N(0, 1)";
    } else if (is_int) {
      std::uniform_int_distribution<int64_t> id(0, std::max<int64_t>(vocab - 1, 0));
      for (int64_t i = 0; i < t.numel(); ++i) {
        const int64_t x = mask ? 1 : vocab > 0 ? id(rng) : 0;
        if (v->dtype == ir::DType::kInt64)
          t.data<int64_t>()[i] = x;
        else
          t.data<int32_t>()[i] = static_cast<int32_t>(x);
      }
      what = mask        ? "ones"
             : vocab > 0 ? "token ids in [0, " + std::to_string(vocab) + ")"
                         : "zeros";
    } else {
      return Status::error("input '" + v->name + "' has dtype " + ir::dtype_name(v->dtype) +
                           " (not generated; give it with --calibrate)");
    }
    r.described[v->name] = what;
    r.tensors[v->name] = std::move(t);
  }
  return r;
}

}  // namespace kiln::quantize

// Storage assignment and node selection; see lowering.h.
#include "compiler/codegen/lowering.h"

#include <algorithm>
#include <map>
#include <set>
#include <unordered_set>
#include <utility>

#include "compiler/quantize/quantize.h"
#include "kiln/kernels/gather_s8.h"
#include "kiln/kernels/gemm/pack.h"
#include "kiln/kernels/gemm/s8_pack.h"

namespace kiln::codegen {

const char* storage_name(Storage s) {
  switch (s) {
    case Storage::kInput:
      return "input";
    case Storage::kOutput:
      return "output";
    case Storage::kParam:
      return "param";
    case Storage::kArena:
      return "arena";
  }
  return "?";
}

bool is_view_op(ir::Op op) {
  return ir::op_kind(op) == ir::OpKind::kView;
}

// Shape operands are compile-time values; shape sources compute their output from them alone.
bool reads_input_at_runtime(const ir::Node& n, size_t i) {
  return !ir::is_shape_operand(n.op, i) && ir::op_kind(n.op) != ir::OpKind::kShapeSource;
}

std::optional<std::vector<ir::Dim>> shape_operand(const ir::Value* v) {
  if (!v) return std::nullopt;
  if (v->sym_value) return v->sym_value;
  if (v->constant && v->constant->dtype != ir::DType::kFloat32 &&
      v->constant->dtype != ir::DType::kFloat64 && v->constant->dtype != ir::DType::kFloat16) {
    std::vector<ir::Dim> r;
    for (int64_t i = 0; i < v->constant->numel(); ++i) r.push_back(ir::Dim(v->constant->int_at(i)));
    return r;
  }
  return std::nullopt;
}

namespace {

bool is_inline_constant(const ir::Value* v) {
  return v->constant && v->constant->numel() <= kInlineConstantElements;
}

// Dense's W [K, N] in the GEMM micro-kernels' panel layout (kernels/.../gemm/pack.h).
std::shared_ptr<const ir::Tensor> packed_weight(const ir::Tensor& w) {
  namespace gemm = kiln::kernels::gemm;
  const int64_t K = w.dims[0], N = w.dims[1];
  auto t = std::make_shared<ir::Tensor>();
  t->dtype = ir::DType::kFloat32;
  const size_t floats = gemm::packed_b_floats(K, N);
  t->dims = {static_cast<int64_t>(floats)};
  t->bytes.resize(floats * sizeof(float));
  gemm::pack_b_f32(w.data<float>(), K, N, false, t->data<float>());
  return t;
}

// INT8 (compiler/quantize): a quantized Dense's W [K, N] as gemm/s8_pack.h's blob, an embedding
// table [V, H] as gather_s8.h's blob; both one uint8 params entry.
std::shared_ptr<ir::Tensor> byte_blob(size_t bytes) {
  auto t = std::make_shared<ir::Tensor>();
  t->dtype = ir::DType::kUInt8;
  t->dims = {static_cast<int64_t>(bytes)};
  t->bytes.resize(bytes);
  return t;
}

// group: the node's weight_group (quantize.h), scales per group of that many k.
Result<std::shared_ptr<const ir::Tensor>> packed_weight_s8(const ir::Tensor& w, int64_t group) {
  namespace gemm = kiln::kernels::gemm;
  const int64_t K = w.dims[0], N = w.dims[1];
  if (!gemm::valid_s8_weight_group(group))
    return Status::error("weight_group " + std::to_string(group) +
                         " is not 0 or a multiple of 4 in [4, " +
                         std::to_string(gemm::kMaxS8WeightGroup) + "]");
  auto t = byte_blob(gemm::packed_b_s8_bytes(K, N, group));
  if (!gemm::quantize_pack_b_s8(w.data<float>(), K, N, false, t->bytes.data(), group))
    return Status::error("K = " + std::to_string(K) + " is larger than the INT8 GEMM's maximum " +
                         std::to_string(gemm::kMaxKS8));
  return std::shared_ptr<const ir::Tensor>(std::move(t));
}

std::shared_ptr<const ir::Tensor> quantized_embedding(const ir::Tensor& table) {
  const int64_t V = table.dims[0], H = table.dims[1];
  auto t = byte_blob(kiln::kernels::embedding_s8_bytes(V, H));
  kiln::kernels::quantize_embedding_s8(table.data<float>(), V, H, t->bytes.data());
  return t;
}

}  // namespace

Result<Lowering> lower(const ir::Graph& g) {
  Lowering L;
  const auto& nodes = g.nodes();
  std::unordered_set<const ir::Value*> graph_inputs(g.inputs.begin(), g.inputs.end());

  // 1. Which nodes run: walk backwards from the graph outputs through run-time reads.
  std::unordered_set<const ir::Value*> needed(g.outputs.begin(), g.outputs.end());
  std::vector<bool> runs(nodes.size(), false);
  for (size_t k = nodes.size(); k-- > 0;) {
    const ir::Node& n = *nodes[k];
    bool any = false;
    for (const ir::Value* o : n.outputs) any = any || (o && needed.count(o));
    if (!any) continue;
    runs[k] = true;
    for (size_t i = 0; i < n.inputs.size(); ++i)
      if (n.inputs[i] && reads_input_at_runtime(n, i)) needed.insert(n.inputs[i]);
  }
  for (const auto& v : g.values())
    if (needed.count(v.get()) && !v->shape)
      return Status::error("value '" + v->name + "' has no shape after the pass pipeline");

  auto add_tensor = [&](const ir::Value* v, Storage s, int64_t index) {
    TensorInfo t;
    t.name = v->name;
    t.dtype = v->dtype;
    t.shape = *v->shape;
    t.storage = s;
    t.index = index;
    L.tensors.push_back(std::move(t));
    return static_cast<int>(L.tensors.size()) - 1;
  };

  // 2. Graph inputs.
  for (size_t i = 0; i < g.inputs.size(); ++i) {
    const ir::Value* v = g.inputs[i];
    if (!v->shape) return Status::error("graph input '" + v->name + "' has no shape");
    L.tensor_of[v] = add_tensor(v, Storage::kInput, static_cast<int64_t>(i));
    L.inputs.push_back(L.tensor_of[v]);
    L.input_names.push_back(v->name);
  }

  // 3. Outputs computed in place: the first occurrence of a value produced by a running node.
  std::unordered_map<const ir::Value*, int> in_place_output;  // value -> output position
  for (size_t j = 0; j < g.outputs.size(); ++j) {
    const ir::Value* v = g.outputs[j];
    if (v->producer && !v->constant && !graph_inputs.count(v) && !in_place_output.count(v))
      in_place_output[v] = static_cast<int>(j);
  }
  std::vector<int> output_tensor(g.outputs.size(), -1);

  int64_t param_count = 0;
  std::set<std::string> value_names;
  for (const auto& v : g.values()) value_names.insert(v->name);
  auto unique_tensor_name = [&](const std::string& base) {
    std::string name = base;
    for (int s = 1; value_names.count(name); ++s) name = base + "." + std::to_string(s);
    value_names.insert(name);
    return name;
  };
  std::unordered_map<const ir::Value*, int> packed_of;  // Dense weight -> its packed param
  // The same for INT8 weights and tables, by weight group too: a weight two Dense quantize with
  // different groups needs two blobs.
  std::map<std::pair<const ir::Value*, int64_t>, int> s8_of;
  auto tensor_for_input = [&](const ir::Value* v) -> int {
    auto it = L.tensor_of.find(v);
    if (it != L.tensor_of.end()) return it->second;
    if (v->constant) {  // a constant read at run time: params entry
      int id = add_tensor(v, Storage::kParam, param_count++);
      L.tensors[id].data = v->constant;
      L.tensor_of[v] = id;
      return id;
    }
    return -1;
  };

  // 4. Running nodes in graph order.
  for (size_t k = 0; k < nodes.size(); ++k) {
    if (!runs[k]) continue;
    const ir::Node& n = *nodes[k];
    const bool view = is_view_op(n.op);
    const ir::Value* out0 = n.outputs.empty() ? nullptr : n.outputs[0];
    if (view && !(out0 && in_place_output.count(out0))) {
      // Shares the source's storage (a constant source becomes a param).
      int src = tensor_for_input(n.inputs[0]);
      if (src < 0)
        return Status::error(n.describe() + ": input '" + n.inputs[0]->name + "' has no storage");
      L.tensor_of[out0] = src;
      continue;
    }
    LoweredNode ln;
    ln.node = &n;
    ln.name = n.name;
    ln.op = ir::op_name(n.op);
    ln.copy = view;
    ln.inputs.resize(n.inputs.size());
    for (size_t i = 0; i < n.inputs.size(); ++i) {
      const ir::Value* v = n.inputs[i];
      if (!v || !reads_input_at_runtime(n, i)) continue;
      if (is_inline_constant(v) && !view &&
          !(n.op == ir::Op::kDense && i == ir::DenseIn::kWeight)) {
        ln.inputs[i].kind = InputRef::kInline;
        continue;
      }
      int t = -1;
      const bool s8 = quantize::is_quantized_input(n, i);
      if (s8) {
        if (!v->constant || v->constant->dims.size() != 2 || v->dtype != ir::DType::kFloat32)
          return Status::error(n.describe() + ": quantized input '" + v->name +
                               "' must be a 2-D float32 constant");
        const int64_t group = n.op == ir::Op::kDense ? quantize::weight_group(n) : 0;
        auto it = s8_of.find({v, group});
        if (it != s8_of.end()) {
          t = it->second;
        } else {
          std::shared_ptr<const ir::Tensor> blob;
          if (n.op == ir::Op::kDense) {
            auto packed = packed_weight_s8(*v->constant, group);
            if (!packed) return Status::error(n.describe() + ": " + packed.status().message());
            blob = *packed;
          } else {
            blob = quantized_embedding(*v->constant);
          }
          t = add_tensor(v, Storage::kParam, param_count++);
          L.tensors[t].name =
              unique_tensor_name(v->name + (n.op == ir::Op::kDense ? ".s8packed" : ".s8rows"));
          L.tensors[t].dtype = ir::DType::kUInt8;
          L.tensors[t].data = blob;
          L.tensors[t].shape = {ir::Dim(blob->dims[0])};
          s8_of[{v, group}] = t;
        }
      } else if (n.op == ir::Op::kDense && i == ir::DenseIn::kWeight) {
        if (!v->constant || v->constant->dims.size() != 2 || v->dtype != ir::DType::kFloat32)
          return Status::error(n.describe() + ": W '" + v->name +
                               "' must be a 2-D float32 constant");
        auto it = packed_of.find(v);
        if (it != packed_of.end()) {
          t = it->second;
        } else {
          t = add_tensor(v, Storage::kParam, param_count++);
          L.tensors[t].name = unique_tensor_name(v->name + ".packed16");
          L.tensors[t].data = packed_weight(*v->constant);
          L.tensors[t].shape = {ir::Dim(L.tensors[t].data->dims[0])};
          packed_of[v] = t;
        }
      } else {
        t = tensor_for_input(v);
      }
      if (t < 0)
        return Status::error(n.describe() + ": input '" + v->name +
                             "' is used before it is computed");
      ln.inputs[i] = {InputRef::kSlot, static_cast<int>(ln.input_tensors.size()), t};
      ln.input_tensors.push_back(t);
    }
    for (size_t o = 0; o < n.outputs.size(); ++o) {
      const ir::Value* v = n.outputs[o];
      if (!v) continue;
      const bool used = needed.count(v) != 0;
      if (!used) {
        if (o == 0) return Status::error(n.describe() + ": first output is unused");
        continue;  // e.g. LayerNormalization's Mean / InvStdDev
      }
      if (o > 0)
        return Status::error(n.describe() + ": output " + std::to_string(o) + " ('" + v->name +
                             "') is not supported by code generation");
      if (!v->shape) return Status::error(n.describe() + ": output '" + v->name + "' has no shape");
      int id;
      auto op = in_place_output.find(v);
      if (op != in_place_output.end()) {
        id = add_tensor(v, Storage::kOutput, op->second);
        output_tensor[op->second] = id;
      } else {
        id = add_tensor(v, Storage::kArena, -1);
      }
      L.tensor_of[v] = id;
      ln.output_tensors.push_back(id);
    }
    L.nodes.push_back(std::move(ln));
  }

  // 5. Outputs not computed in place: copies at the end.
  for (size_t j = 0; j < g.outputs.size(); ++j) {
    if (output_tensor[j] >= 0) continue;
    const ir::Value* v = g.outputs[j];
    int src = tensor_for_input(v);
    if (src < 0) return Status::error("graph output '" + v->name + "' has no storage");
    int id = add_tensor(v, Storage::kOutput, static_cast<int64_t>(j));
    L.tensors[id].name = unique_tensor_name(v->name);
    output_tensor[j] = id;
    LoweredNode ln;
    ln.name = "copy_to_output_" + std::to_string(j);
    ln.op = "Copy";
    ln.copy = true;
    ln.copy_source = v;
    ln.inputs = {{InputRef::kSlot, 0, src}};
    ln.input_tensors = {src};
    ln.output_tensors = {id};
    L.nodes.push_back(std::move(ln));
  }
  for (size_t j = 0; j < g.outputs.size(); ++j) {
    L.outputs.push_back(output_tensor[j]);
    L.output_names.push_back(g.outputs[j]->name);
  }
  return L;
}

}  // namespace kiln::codegen

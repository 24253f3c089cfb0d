// Lowering of a pipeline-output ir::Graph to what the artifact describes: the tensors that have
// storage at run time (input / output / param / arena), the nodes that run (views and
// shape-only nodes drop out, graph outputs that are not computed in place get a copy), and for
// every node which of its IR inputs it reads at run time and where from. A Dense's weight is
// stored packed for the GEMM micro-kernels (params entry `<W>.packed16`, gemm/pack.h).
#pragma once

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "compiler/ir/graph.h"

namespace kiln::codegen {

enum class Storage { kInput, kOutput, kParam, kArena };
const char* storage_name(Storage s);

struct TensorInfo {
  std::string name;
  ir::DType dtype = ir::DType::kFloat32;
  ir::Shape shape;
  Storage storage = Storage::kArena;
  int64_t index = -1;   // input/output position or params table entry
  int64_t offset = -1;  // arena byte offset (at scale 1), set by the memory planner
  std::shared_ptr<const ir::Tensor> data;  // params only
};

// How a node input reaches the node function.
struct InputRef {
  enum Kind { kNone, kSlot, kInline } kind = kNone;  // kNone: absent or compile-time only
  int slot = -1;                                     // kSlot: index into kiln_call::tensors
  int tensor = -1;                                   // kSlot: tensor id
};

struct LoweredNode {
  const ir::Node* node = nullptr;   // null for a synthetic output copy
  std::string name, op;             // op name in model.json; "Copy" for synthetic copies
  bool copy = false;                // implementation is a plain byte copy of input 0
  std::vector<InputRef> inputs;     // one per IR input (synthetic copy: one)
  std::vector<int> input_tensors;   // tensor ids passed at run time, in slot order
  std::vector<int> output_tensors;  // tensor ids of the outputs written (slots follow inputs)
  const ir::Value* copy_source = nullptr;  // synthetic copy: the value copied
};

struct Lowering {
  std::vector<TensorInfo> tensors;
  std::unordered_map<const ir::Value*, int> tensor_of;  // views map to their source's tensor
  std::vector<LoweredNode> nodes;
  std::vector<int> inputs, outputs;  // tensor ids, graph order
  std::vector<std::string> input_names, output_names;
};

// Constants with at most this many elements are baked into model.cpp instead of model.params.
constexpr int64_t kInlineConstantElements = 16;

// Ops whose output shares its input's storage.
bool is_view_op(ir::Op op);
// Whether input `i` of `node` is read at run time (false for shape operands).
bool reads_input_at_runtime(const ir::Node& node, size_t i);
// Elements of a shape operand (constant or sym_value), or nullopt.
std::optional<std::vector<ir::Dim>> shape_operand(const ir::Value* v);

Result<Lowering> lower(const ir::Graph& g);

}  // namespace kiln::codegen

// kiln's intermediate representation: a graph of typed tensors (Values) and operations (Nodes).
//
// Shapes are symbolic: every dimension is a monomial `coef * prod(symbol^pow)` over the graph's
// symbols (batch, seq, ...), which covers everything a BERT-family export computes (seq, 12*seq,
// batch*seq, ...). Small int64 tensors that hold shapes (the exporter's Shape/Gather/Concat chains)
// carry their elements as symbolic Dims too (`Value::sym_value`), so a Reshape fed by such a chain
// resolves to a known output shape at compile time.
//
// Ops and their semantics are described once, in ops.h (ONNX names and attributes, plus kiln's
// own fused ops).
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "compiler/ir/ops.h"
#include "compiler/ir/status.h"

namespace kiln::ir {

constexpr int kMaxSymbols = 4;

enum class DType : uint8_t { kFloat32, kInt64, kInt32, kInt8, kUInt8, kBool, kFloat16, kFloat64 };

const char* dtype_name(DType t);  // "float32", "int64", ...
size_t dtype_size(DType t);
std::optional<DType> dtype_from_name(const std::string& name);

// A symbolic dimension: coef * prod_i symbol_i^pow[i]. Constants have all pow == 0.
struct Dim {
  int64_t coef = 0;
  std::array<int8_t, kMaxSymbols> pow{};

  Dim() = default;
  Dim(int64_t c) : coef(c) {}  // NOLINT: implicit from a constant is the common case
  static Dim symbol(int index) {
    Dim d(1);
    d.pow[index] = 1;
    return d;
  }
  bool is_constant() const {
    for (int8_t p : pow)
      if (p != 0) return false;
    return true;
  }
  bool same_symbols(const Dim& o) const { return pow == o.pow; }
  bool operator==(const Dim& o) const { return coef == o.coef && pow == o.pow; }
  bool operator!=(const Dim& o) const { return !(*this == o); }
  Dim operator*(const Dim& o) const;
  // Exact division; nullopt if the result is not a monomial with integer coefficient.
  std::optional<Dim> divide(const Dim& o) const;
  int64_t eval(const int64_t* symbol_values) const;
  // "768", "seq", "12*batch*seq", "seq^2" using the graph's symbol names.
  std::string str(const std::vector<std::string>& symbol_names) const;
};

using Shape = std::vector<Dim>;

// Concrete tensor data (initializers, folded constants, attribute tensors). Row-major, dense.
struct Tensor {
  DType dtype = DType::kFloat32;
  std::vector<int64_t> dims;
  std::vector<uint8_t> bytes;

  int64_t numel() const;
  template <class T>
  const T* data() const {
    return reinterpret_cast<const T*>(bytes.data());
  }
  template <class T>
  T* data() {
    return reinterpret_cast<T*>(bytes.data());
  }
  // Element i converted to int64 / double whatever the dtype (for shape-like small tensors).
  int64_t int_at(int64_t i) const;
  double float_at(int64_t i) const;
};

using Attribute = std::variant<int64_t, float, std::string, std::vector<int64_t>,
                               std::vector<float>, std::vector<std::string>, Tensor>;

struct Node;

// A tensor flowing through the graph.
struct Value {
  std::string name;
  DType dtype = DType::kFloat32;
  std::optional<Shape> shape;                 // unset until shape inference knows it
  std::shared_ptr<const Tensor> constant;     // set for initializers and folded constants
  std::optional<std::vector<Dim>> sym_value;  // elements of a small int tensor, symbolically
  Node* producer = nullptr;                   // nullptr for graph inputs and constants
};

struct Node {
  std::string name;  // ONNX node name (or a generated one); used in every error message
  Op op = Op::kIdentity;
  std::vector<Value*> inputs;  // nullptr = omitted optional input
  std::vector<Value*> outputs;
  std::map<std::string, Attribute> attrs;

  bool has_attr(const std::string& k) const { return attrs.count(k) != 0; }
  int64_t attr_int(const std::string& k, int64_t dflt) const;
  float attr_float(const std::string& k, float dflt) const;
  std::string attr_string(const std::string& k, const std::string& dflt) const;
  std::vector<int64_t> attr_ints(const std::string& k) const;  // empty if absent
  const Tensor* attr_tensor(const std::string& k) const;       // nullptr if absent
  Value* input(size_t i) const { return i < inputs.size() ? inputs[i] : nullptr; }
  // "node 'name' (op)" for error messages.
  std::string describe() const;
};

struct Symbol {
  std::string name;  // e.g. "batch", "seq"
  int64_t max = 0;   // compiled maximum, 0 = unbounded (memory scales with it)
};

class Graph {
 public:
  std::vector<Symbol> symbols;
  std::vector<Value*> inputs;  // graph inputs (no initializers)
  std::vector<Value*> outputs;
  int64_t opset = 0;
  std::string source_path;  // the ONNX file, for messages
  std::string producer;     // e.g. "pytorch 1.13.1"

  Value* add_value(const std::string& name, DType dtype);
  Value* add_constant(const std::string& name, Tensor t);
  // Appends a node; sets producer of its outputs.
  Node* add_node(Op op, const std::string& name, std::vector<Value*> inputs,
                 std::vector<Value*> outputs);
  // The same by op name, for tests and tools that build graphs by hand; throws
  // std::invalid_argument on a name that is not in the registry.
  Node* add_node(const std::string& op, const std::string& name, std::vector<Value*> inputs,
                 std::vector<Value*> outputs);

  const std::vector<std::unique_ptr<Node>>& nodes() const { return nodes_; }
  const std::vector<std::unique_ptr<Value>>& values() const { return values_; }

  // Replace every use of `from` (node inputs and graph outputs) by `to`.
  void replace_all_uses(Value* from, Value* to);
  // Nodes that read v, in graph order.
  std::vector<Node*> consumers(const Value* v) const;
  bool is_graph_output(const Value* v) const;
  // Removes nodes for which pred is true, and values nobody references any more.
  template <class Pred>
  void remove_nodes_if(Pred pred) {
    std::vector<std::unique_ptr<Node>> keep;
    for (auto& n : nodes_) {
      if (pred(n.get())) {
        for (Value* o : n->outputs)
          if (o && o->producer == n.get()) o->producer = nullptr;
      } else {
        keep.push_back(std::move(n));
      }
    }
    nodes_ = std::move(keep);
    prune_values();
  }
  // Orders nodes so each comes after the producers of its inputs. Error on a cycle.
  Status topo_sort();
  // Names of the symbols, for Dim::str.
  std::vector<std::string> symbol_names() const;
  int symbol_index(const std::string& name) const;  // -1 if unknown
  std::string unique_name(const std::string& base);

 private:
  void prune_values();
  std::vector<std::unique_ptr<Value>> values_;
  std::vector<std::unique_ptr<Node>> nodes_;
  int64_t next_id_ = 0;
};

std::string shape_str(const Shape& s, const std::vector<std::string>& symbol_names);

}  // namespace kiln::ir

// IR data model: dims, tensors, nodes and graph bookkeeping.
#include "compiler/ir/graph.h"

#include <stdexcept>

#include <algorithm>
#include <cstring>
#include <functional>
#include <limits>
#include <set>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

namespace kiln::ir {

const char* dtype_name(DType t) {
  switch (t) {
    case DType::kFloat32:
      return "float32";
    case DType::kInt64:
      return "int64";
    case DType::kInt32:
      return "int32";
    case DType::kInt8:
      return "int8";
    case DType::kUInt8:
      return "uint8";
    case DType::kBool:
      return "bool";
    case DType::kFloat16:
      return "float16";
    case DType::kFloat64:
      return "float64";
  }
  return "?";
}

size_t dtype_size(DType t) {
  switch (t) {
    case DType::kFloat32:
      return 4;
    case DType::kInt64:
      return 8;
    case DType::kInt32:
      return 4;
    case DType::kInt8:
      return 1;
    case DType::kUInt8:
      return 1;
    case DType::kBool:
      return 1;
    case DType::kFloat16:
      return 2;
    case DType::kFloat64:
      return 8;
  }
  return 0;
}

std::optional<DType> dtype_from_name(const std::string& name) {
  for (DType t : {DType::kFloat32, DType::kInt64, DType::kInt32, DType::kInt8, DType::kUInt8,
                  DType::kBool, DType::kFloat16, DType::kFloat64})
    if (name == dtype_name(t)) return t;
  return std::nullopt;
}

Dim Dim::operator*(const Dim& o) const {
  // Saturates instead of overflowing (dims come from the ONNX file): infer_shapes then refuses
  // the node whose output is that large.
  int64_t c;
  if (__builtin_mul_overflow(coef, o.coef, &c))
    c = (coef < 0) != (o.coef < 0) ? std::numeric_limits<int64_t>::min()
                                   : std::numeric_limits<int64_t>::max();
  Dim r(c);
  for (int i = 0; i < kMaxSymbols; ++i) r.pow[i] = static_cast<int8_t>(pow[i] + o.pow[i]);
  if (r.coef == 0) r.pow = {};
  return r;
}

std::optional<Dim> Dim::divide(const Dim& o) const {
  if (o.coef == 0 || coef % o.coef != 0) return std::nullopt;
  Dim r(coef / o.coef);
  for (int i = 0; i < kMaxSymbols; ++i) {
    int p = pow[i] - o.pow[i];
    if (p < 0) return std::nullopt;
    r.pow[i] = static_cast<int8_t>(p);
  }
  return r;
}

int64_t Dim::eval(const int64_t* symbol_values) const {
  int64_t v = coef;
  for (int i = 0; i < kMaxSymbols; ++i)
    for (int p = 0; p < pow[i]; ++p) v *= symbol_values[i];
  return v;
}

std::string Dim::str(const std::vector<std::string>& names) const {
  std::ostringstream s;
  bool first = true;
  if (coef != 1 || is_constant()) {
    s << coef;
    first = false;
  }
  for (int i = 0; i < kMaxSymbols; ++i) {
    if (pow[i] == 0) continue;
    if (!first) s << '*';
    s << (i < static_cast<int>(names.size()) ? names[i] : "s" + std::to_string(i));
    if (pow[i] > 1) s << '^' << static_cast<int>(pow[i]);
    first = false;
  }
  return s.str();
}

std::string shape_str(const Shape& shape, const std::vector<std::string>& names) {
  std::string r = "[";
  for (size_t i = 0; i < shape.size(); ++i) r += (i ? ", " : "") + shape[i].str(names);
  return r + "]";
}

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return n;
}

int64_t Tensor::int_at(int64_t i) const {
  switch (dtype) {
    case DType::kInt64:
      return data<int64_t>()[i];
    case DType::kInt32:
      return data<int32_t>()[i];
    case DType::kInt8:
      return data<int8_t>()[i];
    case DType::kUInt8:
      return data<uint8_t>()[i];
    case DType::kBool:
      return data<uint8_t>()[i] != 0;
    case DType::kFloat32:
      return static_cast<int64_t>(data<float>()[i]);
    case DType::kFloat64:
      return static_cast<int64_t>(data<double>()[i]);
    case DType::kFloat16:
      return 0;
  }
  return 0;
}

double Tensor::float_at(int64_t i) const {
  switch (dtype) {
    case DType::kFloat32:
      return data<float>()[i];
    case DType::kFloat64:
      return data<double>()[i];
    default:
      return static_cast<double>(int_at(i));
  }
}

int64_t Node::attr_int(const std::string& k, int64_t dflt) const {
  auto it = attrs.find(k);
  if (it == attrs.end()) return dflt;
  if (auto* v = std::get_if<int64_t>(&it->second)) return *v;
  if (auto* f = std::get_if<float>(&it->second)) return static_cast<int64_t>(*f);
  return dflt;
}

float Node::attr_float(const std::string& k, float dflt) const {
  auto it = attrs.find(k);
  if (it == attrs.end()) return dflt;
  if (auto* v = std::get_if<float>(&it->second)) return *v;
  if (auto* i = std::get_if<int64_t>(&it->second)) return static_cast<float>(*i);
  return dflt;
}

std::string Node::attr_string(const std::string& k, const std::string& dflt) const {
  auto it = attrs.find(k);
  if (it == attrs.end()) return dflt;
  if (auto* v = std::get_if<std::string>(&it->second)) return *v;
  return dflt;
}

std::vector<int64_t> Node::attr_ints(const std::string& k) const {
  auto it = attrs.find(k);
  if (it == attrs.end()) return {};
  if (auto* v = std::get_if<std::vector<int64_t>>(&it->second)) return *v;
  if (auto* i = std::get_if<int64_t>(&it->second)) return {*i};
  return {};
}

const Tensor* Node::attr_tensor(const std::string& k) const {
  auto it = attrs.find(k);
  if (it == attrs.end()) return nullptr;
  return std::get_if<Tensor>(&it->second);
}

std::string Node::describe() const {
  return "node '" + name + "' (" + op_name(op) + ")";
}

Value* Graph::add_value(const std::string& name, DType dtype) {
  auto v = std::make_unique<Value>();
  v->name = name.empty() ? unique_name("v") : name;
  v->dtype = dtype;
  values_.push_back(std::move(v));
  return values_.back().get();
}

Value* Graph::add_constant(const std::string& name, Tensor t) {
  Value* v = add_value(name, t.dtype);
  Shape s;
  for (int64_t d : t.dims) s.push_back(Dim(d));
  v->shape = s;
  if ((t.dtype == DType::kInt64 || t.dtype == DType::kInt32) && t.numel() <= 64) {
    std::vector<Dim> elems;
    for (int64_t i = 0; i < t.numel(); ++i) elems.push_back(Dim(t.int_at(i)));
    v->sym_value = elems;
  }
  v->constant = std::make_shared<const Tensor>(std::move(t));
  return v;
}

Node* Graph::add_node(Op op, const std::string& name, std::vector<Value*> inputs,
                      std::vector<Value*> outputs) {
  auto n = std::make_unique<Node>();
  n->op = op;
  n->name = name.empty() ? unique_name(op_name(op)) : name;
  n->inputs = std::move(inputs);
  n->outputs = std::move(outputs);
  for (Value* o : n->outputs)
    if (o) o->producer = n.get();
  nodes_.push_back(std::move(n));
  return nodes_.back().get();
}

Node* Graph::add_node(const std::string& op, const std::string& name, std::vector<Value*> inputs,
                      std::vector<Value*> outputs) {
  std::optional<Op> o = op_from_name(op);
  if (!o) throw std::invalid_argument("add_node: '" + op + "' is not an op of compiler/ir/ops.h");
  return add_node(*o, name, std::move(inputs), std::move(outputs));
}

void Graph::replace_all_uses(Value* from, Value* to) {
  for (auto& n : nodes_)
    for (Value*& in : n->inputs)
      if (in == from) in = to;
  for (Value*& o : outputs)
    if (o == from) o = to;
}

std::vector<Node*> Graph::consumers(const Value* v) const {
  std::vector<Node*> r;
  for (auto& n : nodes_)
    if (std::find(n->inputs.begin(), n->inputs.end(), v) != n->inputs.end()) r.push_back(n.get());
  return r;
}

bool Graph::is_graph_output(const Value* v) const {
  return std::find(outputs.begin(), outputs.end(), v) != outputs.end();
}

Status Graph::topo_sort() {
  std::unordered_map<const Value*, Node*> producer;
  for (auto& n : nodes_)
    for (Value* o : n->outputs)
      if (o) producer[o] = n.get();
  std::unordered_map<const Node*, int> state;  // 0 new, 1 visiting, 2 done
  std::vector<std::unique_ptr<Node>> order;
  std::unordered_map<const Node*, std::unique_ptr<Node>*> slot;
  for (auto& n : nodes_) slot[n.get()] = &n;
  std::string cycle_at;
  std::function<bool(Node*)> visit = [&](Node* n) {
    int& s = state[n];
    if (s == 2) return true;
    if (s == 1) {
      cycle_at = n->describe();
      return false;
    }
    s = 1;
    for (Value* in : n->inputs) {
      auto it = in ? producer.find(in) : producer.end();
      if (it != producer.end() && !visit(it->second)) return false;
    }
    state[n] = 2;
    order.push_back(std::move(*slot[n]));
    return true;
  };
  std::vector<Node*> original;
  for (auto& n : nodes_) original.push_back(n.get());
  for (Node* n : original)
    if (!visit(n)) return Status::error("graph has a cycle through " + cycle_at);
  nodes_ = std::move(order);
  return Status::ok();
}

std::vector<std::string> Graph::symbol_names() const {
  std::vector<std::string> r;
  for (auto& s : symbols) r.push_back(s.name);
  return r;
}

int Graph::symbol_index(const std::string& name) const {
  for (size_t i = 0; i < symbols.size(); ++i)
    if (symbols[i].name == name) return static_cast<int>(i);
  return -1;
}

std::string Graph::unique_name(const std::string& base) {
  return base + "__kiln" + std::to_string(next_id_++);
}

void Graph::prune_values() {
  std::unordered_set<const Value*> used(inputs.begin(), inputs.end());
  used.insert(outputs.begin(), outputs.end());
  for (auto& n : nodes_) {
    used.insert(n->inputs.begin(), n->inputs.end());
    used.insert(n->outputs.begin(), n->outputs.end());
  }
  values_.erase(
      std::remove_if(values_.begin(), values_.end(),
                     [&](const std::unique_ptr<Value>& v) { return !used.count(v.get()); }),
      values_.end());
}

}  // namespace kiln::ir

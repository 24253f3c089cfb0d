// Text dump of the IR; see printer.h.
#include "compiler/ir/printer.h"

#include <sstream>

namespace kiln::ir {
namespace {

std::string tensor_summary(const Tensor& t) {
  std::ostringstream s;
  s << dtype_name(t.dtype) << "[";
  for (size_t i = 0; i < t.dims.size(); ++i) s << (i ? ", " : "") << t.dims[i];
  s << "]{";
  int64_t n = t.numel();
  int64_t shown = std::min<int64_t>(n, 4);
  if (t.dtype == DType::kFloat16) shown = 0;
  for (int64_t i = 0; i < shown; ++i) {
    s << (i ? ", " : "");
    if (t.dtype == DType::kFloat32 || t.dtype == DType::kFloat64)
      s << t.float_at(i);
    else
      s << t.int_at(i);
  }
  if (n > shown) s << (shown ? ", " : "") << "... " << n << " elements";
  s << "}";
  return s.str();
}

template <class T>
std::string list_str(const std::vector<T>& v) {
  std::ostringstream s;
  s << "[";
  for (size_t i = 0; i < v.size(); ++i) s << (i ? ", " : "") << v[i];
  s << "]";
  return s.str();
}

}  // namespace

std::string attribute_str(const Attribute& a) {
  std::ostringstream s;
  if (auto* i = std::get_if<int64_t>(&a)) s << *i;
  if (auto* f = std::get_if<float>(&a)) s << *f;
  if (auto* str = std::get_if<std::string>(&a)) s << '"' << *str << '"';
  if (auto* v = std::get_if<std::vector<int64_t>>(&a)) s << list_str(*v);
  if (auto* v = std::get_if<std::vector<float>>(&a)) s << list_str(*v);
  if (auto* v = std::get_if<std::vector<std::string>>(&a)) s << list_str(*v);
  if (auto* t = std::get_if<Tensor>(&a)) {
    s << tensor_summary(*t);
    // Tensors compared by CSE must differ when their bytes do.
    size_t h = std::hash<std::string>()(std::string(t->bytes.begin(), t->bytes.end()));
    s << "#" << std::hex << h;
  }
  return s.str();
}

std::string value_type_str(const Value& v, const std::vector<std::string>& names) {
  std::string r = dtype_name(v.dtype);
  r += v.shape ? shape_str(*v.shape, names) : "[?]";
  if (v.sym_value && !v.constant) r += " sym=" + shape_str(*v.sym_value, names);
  return r;
}

std::string print_graph(const Graph& g) {
  std::ostringstream s;
  auto names = g.symbol_names();
  s << "graph opset=" << g.opset;
  if (!g.source_path.empty()) s << " source='" << g.source_path << "'";
  s << "\n";
  for (const Symbol& sym : g.symbols) s << "  symbol " << sym.name << " max=" << sym.max << "\n";
  for (const Value* v : g.inputs)
    s << "  input %" << v->name << ": " << value_type_str(*v, names) << "\n";
  auto operand = [&](const Value* v) -> std::string {
    if (!v) return "<none>";
    if (v->constant) return "%" + v->name + ": const " + tensor_summary(*v->constant);
    return "%" + v->name + ": " + value_type_str(*v, names);
  };
  for (const auto& n : g.nodes()) {
    s << "  ";
    for (size_t i = 0; i < n->outputs.size(); ++i) s << (i ? ", " : "") << operand(n->outputs[i]);
    s << " = " << op_name(n->op) << "(";
    for (size_t i = 0; i < n->inputs.size(); ++i) s << (i ? ", " : "") << operand(n->inputs[i]);
    s << ")";
    if (!n->attrs.empty()) {
      s << " {";
      bool first = true;
      for (const auto& [k, a] : n->attrs) {
        s << (first ? "" : ", ") << k << "=" << attribute_str(a);
        first = false;
      }
      s << "}";
    }
    s << "  # " << n->name << "\n";
  }
  for (const Value* v : g.outputs) s << "  output " << operand(v) << "\n";
  return s.str();
}

}  // namespace kiln::ir

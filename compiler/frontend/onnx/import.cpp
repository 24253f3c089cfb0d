// ONNX ModelProto -> ir::Graph, then shape inference and the seq maximum; see import.h.
#include "compiler/frontend/onnx/import.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <unordered_map>

#include "onnx/onnx.pb.h"

#include "compiler/frontend/onnx/einsum.h"
#include "compiler/frontend/onnx/tensor_proto.h"
#include "compiler/ir/shape_inference.h"

namespace kiln::frontend {
namespace {

// Default compiled maximum of `seq` when the model does not bound it more tightly.
constexpr int64_t kDefaultMaxSeq = 512;

ir::Tensor int64_tensor(const std::vector<int64_t>& v) {
  ir::Tensor t;
  t.dtype = ir::DType::kInt64;
  t.dims = {static_cast<int64_t>(v.size())};
  t.bytes.resize(v.size() * 8);
  std::copy(v.begin(), v.end(), t.data<int64_t>());
  return t;
}

template <class T>
ir::Tensor scalar_or_vector(ir::DType dt, const std::vector<T>& v, bool scalar) {
  ir::Tensor t;
  t.dtype = dt;
  if (!scalar) t.dims = {static_cast<int64_t>(v.size())};
  t.bytes.resize(v.size() * sizeof(T));
  std::copy(v.begin(), v.end(), t.data<T>());
  return t;
}

class Importer {
 public:
  Importer(const std::string& path, const ImportOptions& opts) : path_(path), opts_(opts) {
    model_dir_ = std::filesystem::path(path).parent_path().string();
  }
  Result<std::unique_ptr<ir::Graph>> run();

 private:
  Status err(const std::string& msg) const { return Status::error(path_ + ": " + msg); }
  Status load();
  Status add_symbols_and_inputs();
  Status check_ops() const;
  Status add_node(const onnx::NodeProto& np, size_t index);
  Status add_constant_node(const onnx::NodeProto& np, const std::string& name);
  Status convert_attribute(const onnx::AttributeProto& a, const std::string& node_desc,
                           ir::Attribute* out);
  Status normalize(ir::Node* n);
  Status drop_unused_extra_outputs();
  Status set_seq_max();
  Result<ir::Value*> lookup(const std::string& name, const std::string& node_desc) const;

  std::string path_;
  ImportOptions opts_;
  std::string model_dir_;
  onnx::ModelProto model_;
  std::unique_ptr<ir::Graph> g_ = std::make_unique<ir::Graph>();
  std::unordered_map<std::string, ir::Value*> values_;
  std::set<std::string> module_names_;  // module_path_name()s given so far
  int seq_symbol_ = -1;
};

Status Importer::load() {
  std::ifstream f(path_, std::ios::binary | std::ios::ate);
  if (!f) return Status::error("cannot open ONNX model '" + path_ + "'");
  if (f.tellg() <= 0) return err("file is empty, not an ONNX model");
  f.seekg(0);
  // Parsing from the stream avoids holding a second copy of the (possibly 400 MB) file.
  if (!model_.ParseFromIstream(&f))
    return err("not a valid ONNX model (protobuf parse failed: truncated or corrupt file?)");
  if (!model_.has_graph() || model_.graph().output_size() == 0)
    return err("ONNX model has no graph or no graph outputs (truncated or corrupt file?)");
  for (const auto& op : model_.opset_import())
    if (op.domain().empty() || op.domain() == "ai.onnx") g_->opset = op.version();
  if (g_->opset == 0) return err("ONNX model has no opset_import for the default domain");
  g_->source_path = path_;
  g_->producer = model_.producer_name();
  if (!model_.producer_version().empty()) g_->producer += " " + model_.producer_version();
  return Status::ok();
}

Status Importer::add_symbols_and_inputs() {
  const onnx::GraphProto& gp = model_.graph();
  std::set<std::string> initializers;
  for (const auto& t : gp.initializer()) initializers.insert(t.name());
  std::vector<const onnx::ValueInfoProto*> inputs;
  for (const auto& vi : gp.input())
    if (!initializers.count(vi.name())) inputs.push_back(&vi);

  // The first rank-2 input with symbolic dims (input_ids) names them batch and seq.
  std::map<std::string, std::string> rename;
  for (const auto* vi : inputs) {
    const auto& shape = vi->type().tensor_type().shape();
    if (shape.dim_size() != 2) continue;
    bool symbolic = false;
    for (const auto& d : shape.dim()) symbolic |= !d.has_dim_value();
    if (!symbolic) continue;
    const char* kNames[2] = {"batch", "seq"};
    for (int i = 0; i < 2; ++i) {
      const auto& d = shape.dim(i);
      if (d.has_dim_value()) continue;
      std::string key = d.has_dim_param() && !d.dim_param().empty()
                            ? d.dim_param()
                            : "?" + vi->name() + ":" + std::to_string(i);
      rename[key] = kNames[i];
    }
    break;
  }
  std::map<std::string, int> symbol_of;
  auto symbol = [&](const std::string& key, const std::string& display) -> Result<int> {
    auto it = symbol_of.find(key);
    if (it != symbol_of.end()) return it->second;
    std::string name = rename.count(key) ? rename[key] : display;
    int existing = g_->symbol_index(name);
    if (existing >= 0) return symbol_of[key] = existing;
    if (static_cast<int>(g_->symbols.size()) >= ir::kMaxSymbols)
      return err("more than " + std::to_string(ir::kMaxSymbols) +
                 " symbolic dimensions in the graph inputs (at '" + display + "')");
    g_->symbols.push_back({name, 0});
    if (name == "seq") seq_symbol_ = static_cast<int>(g_->symbols.size()) - 1;
    return symbol_of[key] = static_cast<int>(g_->symbols.size()) - 1;
  };

  for (const auto* vi : inputs) {
    if (!vi->type().has_tensor_type())
      return err("graph input '" + vi->name() + "' is not a tensor");
    const auto& tt = vi->type().tensor_type();
    auto dt = dtype_from_proto(tt.elem_type());
    if (!dt)
      return err("graph input '" + vi->name() + "' has unsupported dtype " +
                 proto_dtype_name(tt.elem_type()));
    if (!tt.has_shape()) return err("graph input '" + vi->name() + "' has no shape (rank unknown)");
    ir::Shape s;
    for (int i = 0; i < tt.shape().dim_size(); ++i) {
      const auto& d = tt.shape().dim(i);
      if (d.has_dim_value()) {
        s.push_back(ir::Dim(d.dim_value()));
        continue;
      }
      std::string fresh = vi->name() + "_dim" + std::to_string(i);
      std::string key = d.has_dim_param() && !d.dim_param().empty()
                            ? d.dim_param()
                            : "?" + vi->name() + ":" + std::to_string(i);
      KILN_ASSIGN_OR_RETURN(
          auto sym,
          symbol(key, d.has_dim_param() && !d.dim_param().empty() ? d.dim_param() : fresh));
      s.push_back(ir::Dim::symbol(sym));
    }
    ir::Value* v = g_->add_value(vi->name(), *dt);
    v->shape = s;
    g_->inputs.push_back(v);
    values_[vi->name()] = v;
  }
  for (auto& t : *model_.mutable_graph()->mutable_initializer()) {
    auto tensor = tensor_from_proto(t, model_dir_, "initializer '" + t.name() + "'");
    if (!tensor) return err(tensor.status().message());
    values_[t.name()] = g_->add_constant(t.name(), std::move(tensor.value()));
    // The graph owns a copy now: free this one so peak memory stays near one copy of the weights.
    std::string().swap(*t.mutable_raw_data());
  }
  return Status::ok();
}

Status Importer::convert_attribute(const onnx::AttributeProto& a, const std::string& node_desc,
                                   ir::Attribute* out) {
  using A = onnx::AttributeProto;
  switch (a.type()) {
    case A::INT:
      *out = static_cast<int64_t>(a.i());
      return Status::ok();
    case A::FLOAT:
      *out = a.f();
      return Status::ok();
    case A::STRING:
      *out = a.s();
      return Status::ok();
    case A::INTS:
      *out = std::vector<int64_t>(a.ints().begin(), a.ints().end());
      return Status::ok();
    case A::FLOATS:
      *out = std::vector<float>(a.floats().begin(), a.floats().end());
      return Status::ok();
    case A::STRINGS:
      *out = std::vector<std::string>(a.strings().begin(), a.strings().end());
      return Status::ok();
    case A::TENSOR: {
      auto t = tensor_from_proto(a.t(), model_dir_, "attribute '" + a.name() + "' of " + node_desc);
      if (!t) return err(t.status().message());
      *out = std::move(t.value());
      return Status::ok();
    }
    case A::GRAPH:
    case A::GRAPHS:
      return err(node_desc + ": attribute '" + a.name() +
                 "' is a subgraph; control flow (If/Loop/Scan) is not supported");
    default:
      return err(node_desc + ": attribute '" + a.name() + "' has unsupported type " +
                 A::AttributeType_Name(a.type()));
  }
}

Status Importer::add_constant_node(const onnx::NodeProto& np, const std::string& name) {
  const std::string desc = "node '" + name + "' (Constant)";
  if (np.output_size() != 1) return err(desc + " must have one output");
  ir::Tensor t;
  bool found = false;
  for (const auto& a : np.attribute()) {
    found = true;
    const std::string& k = a.name();
    if (k == "value") {
      auto r = tensor_from_proto(a.t(), model_dir_, "attribute 'value' of " + desc);
      if (!r) return err(r.status().message());
      t = std::move(r.value());
    } else if (k == "value_float") {
      t = scalar_or_vector<float>(ir::DType::kFloat32, {a.f()}, true);
    } else if (k == "value_floats") {
      t = scalar_or_vector<float>(ir::DType::kFloat32, {a.floats().begin(), a.floats().end()},
                                  false);
    } else if (k == "value_int") {
      t = scalar_or_vector<int64_t>(ir::DType::kInt64, {a.i()}, true);
    } else if (k == "value_ints") {
      t = scalar_or_vector<int64_t>(ir::DType::kInt64, {a.ints().begin(), a.ints().end()}, false);
    } else if (k == "value_string" || k == "value_strings") {
      return err(desc + ": attribute '" + k + "' has unsupported dtype STRING");
    } else if (k == "sparse_value") {
      return err(desc + ": sparse_value constants are not supported");
    } else {
      found = false;
    }
    if (found) break;
  }
  if (!found) return err(desc + " has no value attribute");
  values_[np.output(0)] = g_->add_constant(np.output(0), std::move(t));
  return Status::ok();
}

Result<ir::Value*> Importer::lookup(const std::string& name, const std::string& node_desc) const {
  auto it = values_.find(name);
  if (it == values_.end())
    return err(node_desc + " reads '" + name + "', which no node, input or initializer produces");
  return it->second;
}

std::string node_name(const onnx::NodeProto& np, size_t index) {
  return np.name().empty() ? np.op_type() + "_" + std::to_string(index) : np.name();
}

// The module path the dynamo exporter (torch.onnx.export's default since torch 2.9) records for a
// node, in the TorchScript exporter's naming: "/encoder/layer.0/attention/self/query/MatMul"; empty
// without one. Dynamo names nodes "node_MatMul_49" and its weights "val_188"; the module path
// is in metadata "pkg.torch.onnx.name_scopes", the repr of a Python list of each level's scope
// and the fx node last (['', 'encoder', 'encoder.layer.0', ..., 'linear']). NodeProto field 9
// (ONNX >= 1.16; Debian's libonnx 1.12 keeps it as an unknown field).
std::string module_path_name(const onnx::NodeProto& np) {
  constexpr int kMetadataProps = 9;
  const google::protobuf::UnknownFieldSet& unknown = np.GetReflection()->GetUnknownFields(np);
  for (int f = 0; f < unknown.field_count(); ++f) {
    const google::protobuf::UnknownField& field = unknown.field(f);
    onnx::StringStringEntryProto entry;
    if (field.number() != kMetadataProps ||
        field.type() != google::protobuf::UnknownField::TYPE_LENGTH_DELIMITED ||
        !entry.ParseFromString(field.length_delimited()) ||
        entry.key() != "pkg.torch.onnx.name_scopes")
      continue;
    std::vector<std::string> scopes;  // the quoted strings of the list
    const std::string& v = entry.value();
    for (size_t i = v.find('\''); i != std::string::npos; i = v.find('\'', i + 1)) {
      const size_t j = v.find('\'', i + 1);
      if (j == std::string::npos) break;
      scopes.push_back(v.substr(i + 1, j - i - 1));
      i = j;
    }
    std::string name, parent;
    for (size_t s = 0; s + 1 < scopes.size(); ++s) {
      const std::string& scope = scopes[s];
      if (scope.empty()) continue;
      const bool child = !parent.empty() && scope.compare(0, parent.size() + 1, parent + ".") == 0;
      name += "/" + (child ? scope.substr(parent.size() + 1) : scope);
      parent = scope;
    }
    return name.empty() ? name : name + "/" + np.op_type();
  }
  return "";
}

// Every op of the model that the registry does not import, all at once: op, domain, opset, how
// many nodes and the first of them, and which exporter wrote the file.
Status Importer::check_ops() const {
  struct Unsupported {
    std::string first_node;
    int64_t opset = 0;
    int count = 0;
    std::string why;
  };
  std::map<std::pair<std::string, std::string>, Unsupported> bad;  // (domain, op) -> what
  const onnx::GraphProto& gp = model_.graph();
  for (int i = 0; i < gp.node_size(); ++i) {
    const onnx::NodeProto& np = gp.node(i);
    const bool onnx_domain = np.domain().empty() || np.domain() == "ai.onnx";
    auto op = onnx_domain ? ir::op_from_name(np.op_type()) : std::nullopt;
    std::string why;
    if (!op || ir::op_info(*op).min_opset == 0) {
      why = "not supported";
    } else if (g_->opset < ir::op_info(*op).min_opset) {
      why = "needs opset >= " + std::to_string(ir::op_info(*op).min_opset);
    } else {
      continue;
    }
    int64_t version = g_->opset;
    if (!onnx_domain)
      for (const auto& o : model_.opset_import())
        if (o.domain() == np.domain()) version = o.version();
    Unsupported& u = bad[{np.domain(), np.op_type()}];
    if (u.count++ == 0) u = {node_name(np, i), version, 1, why};
  }
  if (bad.empty()) return Status::ok();
  std::string msg =
      bad.size() == 1 ? "unsupported op " : std::to_string(bad.size()) + " unsupported ops: ";
  bool first = true;
  for (const auto& [key, u] : bad) {
    msg += (first ? "" : "; ") + std::string("'") + key.second + "' (domain '" + key.first +
           "', opset " + std::to_string(u.opset) + ", " + u.why + "): " + std::to_string(u.count) +
           (u.count == 1 ? " node, '" : " nodes, first '") + u.first_node + "'";
    first = false;
  }
  if (!g_->producer.empty()) msg += " [model written by " + g_->producer + "]";
  return err(msg);
}

Status Importer::add_node(const onnx::NodeProto& np, size_t index) {
  const std::string name = node_name(np, index);
  const std::string desc = "node '" + name + "' (" + np.op_type() + ")";
  const ir::Op op = *ir::op_from_name(np.op_type());  // check_ops() accepted it
  for (const auto& a : np.attribute()) {
    if (a.type() == onnx::AttributeProto::GRAPH || a.type() == onnx::AttributeProto::GRAPHS)
      return err(desc + ": attribute '" + a.name() +
                 "' is a subgraph; control flow (If/Loop/Scan) is not supported");
  }
  if (np.op_type() == "Constant") return add_constant_node(np, name);

  std::vector<ir::Value*> inputs;
  for (const auto& in : np.input()) {
    if (in.empty()) {
      inputs.push_back(nullptr);
      continue;
    }
    KILN_ASSIGN_OR_RETURN(auto v, lookup(in, desc));
    inputs.push_back(v);
  }
  std::vector<ir::Value*> outputs;
  for (const auto& out : np.output()) {
    if (out.empty()) {
      outputs.push_back(nullptr);
      continue;
    }
    if (values_.count(out)) return err(desc + " writes '" + out + "', which is already defined");
    ir::Value* v = g_->add_value(out, ir::DType::kFloat32);
    values_[out] = v;
    outputs.push_back(v);
  }
  // Errors above name the node as the file does; the graph names it by its module when known.
  std::string graph_name = module_path_name(np);
  if (!graph_name.empty()) {
    const std::string base = graph_name;
    for (int k = 1; !module_names_.insert(graph_name).second; ++k)
      graph_name = base + "_" + std::to_string(k);
  }
  ir::Node* n = g_->add_node(op, graph_name.empty() ? name : graph_name, inputs, outputs);
  for (const auto& a : np.attribute()) {
    ir::Attribute attr;
    KILN_RETURN_IF_ERROR(convert_attribute(a, desc, &attr));
    n->attrs[a.name()] = std::move(attr);
  }
  return normalize(n);
}

// One form per op whatever the opset, so passes and codegen see a single spelling:
// Squeeze/Unsqueeze axes as an input (opset 13), Reduce* axes as an attribute (opset < 13 / 18),
// Softmax with an explicit axis, Clip bounds as inputs (opset 11), Min/Max with two inputs (a
// chain for more, Identity for one), Mod(fmod=1) as FMod.
Status Importer::normalize(ir::Node* n) {
  if ((n->op == ir::Op::kSqueeze || n->op == ir::Op::kUnsqueeze) && n->has_attr("axes")) {
    ir::Value* axes =
        g_->add_constant(g_->unique_name(n->name + "/axes"), int64_tensor(n->attr_ints("axes")));
    n->attrs.erase("axes");
    n->inputs.resize(1);
    n->inputs.push_back(axes);
  }
  if (ir::op_kind(n->op) == ir::OpKind::kReduce && n->input(1)) {
    ir::Value* axes = n->input(1);
    if (!axes->constant)
      return err(n->describe() + ": axes input '" + axes->name + "' is not a constant");
    std::vector<int64_t> v;
    for (int64_t i = 0; i < axes->constant->numel(); ++i) v.push_back(axes->constant->int_at(i));
    n->inputs.resize(1);
    if (v.empty() && n->attr_int("noop_with_empty_axes", 0) != 0) {
      n->attrs["noop_with_empty_axes"] = int64_t{1};
    } else if (!v.empty()) {
      n->attrs["axes"] = v;
    }
  }
  if (n->op == ir::Op::kGelu) {  // the tanh approximation is an op of its own
    const std::string approx = n->attr_string("approximate", "none");
    if (approx == "tanh") n->op = ir::Op::kGeluTanh;
    if (approx != "none" && approx != "tanh")
      return err(n->describe() + ": approximate='" + approx + "' is not an ONNX Gelu mode");
    n->attrs.erase("approximate");
  }
  if (n->op == ir::Op::kMod) {
    if (n->attr_int("fmod", 0) != 0) n->op = ir::Op::kFMod;
    n->attrs.erase("fmod");
  }
  if (n->op == ir::Op::kIsInf &&
      (n->attr_int("detect_positive", 1) != 1 || n->attr_int("detect_negative", 1) != 1))
    return err(n->describe() +
               ": IsInf with detect_positive=0 or detect_negative=0 is not supported");
  if (n->op == ir::Op::kClip && (n->has_attr("min") || n->has_attr("max"))) {  // opset < 11
    n->inputs.resize(1);
    for (const char* bound : {"min", "max"}) {
      ir::Value* v = nullptr;
      if (n->has_attr(bound))
        v = g_->add_constant(
            g_->unique_name(n->name + "/" + bound),
            scalar_or_vector<float>(ir::DType::kFloat32, {n->attr_float(bound, 0.0f)}, true));
      n->inputs.push_back(v);
      n->attrs.erase(bound);
    }
  }
  if (n->op == ir::Op::kPad && n->has_attr("pads")) {  // opset < 11
    n->inputs.resize(1);
    n->inputs.push_back(
        g_->add_constant(g_->unique_name(n->name + "/pads"), int64_tensor(n->attr_ints("pads"))));
    n->inputs.push_back(g_->add_constant(
        g_->unique_name(n->name + "/value"),
        scalar_or_vector<float>(ir::DType::kFloat32, {n->attr_float("value", 0.0f)}, true)));
    n->attrs.erase("pads");
    n->attrs.erase("value");
  }
  if (n->op == ir::Op::kMin || n->op == ir::Op::kMax) {
    if (n->inputs.empty()) return err(n->describe() + " has no inputs");
    if (n->inputs.size() == 1) n->op = ir::Op::kIdentity;
    // Max(a, b, c, d) = Max(Max(Max(a, b), c), d): all but the last pair in new nodes.
    while (n->inputs.size() > 2) {
      ir::Value* partial =
          g_->add_value(g_->unique_name(n->name + "/partial"), ir::DType::kFloat32);
      g_->add_node(n->op, g_->unique_name(n->name + "/pair"), {n->inputs[0], n->inputs[1]},
                   {partial});
      n->inputs.erase(n->inputs.begin());
      n->inputs[0] = partial;
    }
  }
  if (n->op == ir::Op::kSoftmax && !n->has_attr("axis"))
    n->attrs["axis"] = int64_t{g_->opset < 13 ? 1 : -1};
  return Status::ok();
}

// LayerNormalization's Mean/InvStdDev and Dropout's mask are training outputs; kiln drops them.
Status Importer::drop_unused_extra_outputs() {
  for (auto& n : g_->nodes()) {
    if (n->op != ir::Op::kLayerNormalization && n->op != ir::Op::kDropout) continue;
    for (size_t i = 1; i < n->outputs.size(); ++i) {
      ir::Value* o = n->outputs[i];
      if (o && (!g_->consumers(o).empty() || g_->is_graph_output(o)))
        return err(n->describe() + ": output " + std::to_string(i) + " '" + o->name +
                   "' is used; only inference (output 0) is supported");
    }
    n->outputs.resize(1);
  }
  return Status::ok();
}

Status Importer::set_seq_max() {
  if (seq_symbol_ < 0) return Status::ok();
  ir::Symbol& seq = g_->symbols[seq_symbol_];
  int64_t model_max = seq.max;  // set by shape inference from the position table, 0 if unknown
  if (opts_.max_seq > 0) {
    if (model_max > 0 && opts_.max_seq > model_max)
      return err("max_seq " + std::to_string(opts_.max_seq) +
                 " is larger than the model's maximum positions " + std::to_string(model_max));
    seq.max = opts_.max_seq;
  } else {
    seq.max = model_max > 0 ? std::min(kDefaultMaxSeq, model_max) : kDefaultMaxSeq;
  }
  return Status::ok();
}

Result<std::unique_ptr<ir::Graph>> Importer::run() {
  KILN_RETURN_IF_ERROR(load());
  if (opts_.max_seq < 0)
    return err("max_seq must be positive, got " + std::to_string(opts_.max_seq));
  KILN_RETURN_IF_ERROR(add_symbols_and_inputs());
  const onnx::GraphProto& gp = model_.graph();
  KILN_RETURN_IF_ERROR(check_ops());
  for (int i = 0; i < gp.node_size(); ++i) KILN_RETURN_IF_ERROR(add_node(gp.node(i), i));
  for (const auto& o : gp.output()) {
    KILN_ASSIGN_OR_RETURN(auto v, lookup(o.name(), "graph output"));
    g_->outputs.push_back(v);
  }
  KILN_RETURN_IF_ERROR(drop_unused_extra_outputs());
  if (auto s = ir::infer_shapes(*g_); !s) return err(s.message());
  // Einsum's lowering reads the operands' ranks, so it follows shape inference.
  if (std::any_of(g_->nodes().begin(), g_->nodes().end(),
                  [](const auto& n) { return n->op == ir::Op::kEinsum; })) {
    if (auto s = lower_einsums(*g_); !s) return err(s.message());
    if (auto s = ir::infer_shapes(*g_); !s) return err(s.message());
  }
  KILN_RETURN_IF_ERROR(set_seq_max());
  return std::move(g_);
}

}  // namespace

Result<std::unique_ptr<ir::Graph>> import_onnx(const std::string& path, const ImportOptions& opts) {
  return Importer(path, opts).run();
}

}  // namespace kiln::frontend

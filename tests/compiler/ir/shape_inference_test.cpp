// Shape inference: symbolic broadcasting, sym_value propagation through the exporter's shape
// arithmetic, Reshape -1, Slice with symbolic ends (and the seq max it implies), and errors.
#include "compiler/ir/shape_inference.h"

#include <gtest/gtest.h>

namespace kiln::ir {
namespace {

struct Fixture {
  Graph g;
  Value* x;  // float32[batch, seq, 32]
  Fixture() {
    g.symbols = {{"batch", 0}, {"seq", 0}};
    g.opset = 14;
    x = input("x", DType::kFloat32, {Dim::symbol(0), Dim::symbol(1), Dim(32)});
  }
  Value* input(const std::string& name, DType t, Shape s) {
    Value* v = g.add_value(name, t);
    v->shape = std::move(s);
    g.inputs.push_back(v);
    return v;
  }
  // dims = {-1}: a vector of v's length; {} = a scalar.
  Value* i64(std::vector<int64_t> v, std::vector<int64_t> dims = {-1}) {
    Tensor t;
    t.dtype = DType::kInt64;
    bool vector = dims.size() == 1 && dims[0] == -1;
    t.dims = vector ? std::vector<int64_t>{static_cast<int64_t>(v.size())} : dims;
    t.bytes.resize(v.size() * 8);
    std::copy(v.begin(), v.end(), t.data<int64_t>());
    return g.add_constant(g.unique_name("k"), std::move(t));
  }
  Value* op(const std::string& type, std::vector<Value*> in,
            std::map<std::string, Attribute> a = {}) {
    Value* o = g.add_value(g.unique_name(type), DType::kFloat32);
    g.add_node(type, g.unique_name(type + "_node"), std::move(in), {o})->attrs = std::move(a);
    return o;
  }
  std::string shape(const Value* v) {
    return v->shape ? shape_str(*v->shape, g.symbol_names()) : "unset";
  }
  std::string sym(const Value* v) {
    return v->sym_value ? shape_str(*v->sym_value, g.symbol_names()) : "none";
  }
};

TEST(ShapeInference, BroadcastsSymbolicDims) {
  Fixture f;
  Value* pos = f.input("pos", DType::kFloat32, {Dim(1), Dim::symbol(1), Dim(32)});
  Value* mask = f.input("mask", DType::kFloat32, {Dim::symbol(0), Dim(1), Dim(1), Dim::symbol(1)});
  Value* a = f.op("Add", {f.x, pos});
  Value* scores =
      f.input("scores", DType::kFloat32, {Dim::symbol(0), Dim(4), Dim::symbol(1), Dim::symbol(1)});
  Value* b = f.op("Add", {scores, mask});
  ASSERT_TRUE(infer_shapes(f.g).is_ok());
  EXPECT_EQ(f.shape(a), "[batch, seq, 32]");
  EXPECT_EQ(f.shape(b), "[batch, 4, seq, seq]");
}

TEST(ShapeInference, BroadcastMismatchNamesNodeAndShapes) {
  Fixture f;
  Value* y = f.input("y", DType::kFloat32, {Dim::symbol(0), Dim(7), Dim(32)});
  f.g.add_node("Add", "bad_add", {f.x, y}, {f.g.add_value("o", DType::kFloat32)});
  Status s = infer_shapes(f.g);
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("bad_add"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("[batch, seq, 32]"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("[batch, 7, 32]"), std::string::npos) << s.message();
}

// The exporter's x.view(x.size()[:-1] + (4, 8)) chain.
TEST(ShapeInference, ShapeChainResolvesReshapeTarget) {
  Fixture f;
  Value* shp = f.op("Shape", {f.x});
  Value* b = f.op("Gather", {shp, f.i64({0}, {})}, {{"axis", int64_t{0}}});
  Value* s = f.op("Gather", {shp, f.i64({-2}, {})}, {{"axis", int64_t{0}}});
  Value* ub = f.op("Unsqueeze", {b, f.i64({0})});
  Value* us = f.op("Unsqueeze", {s, f.i64({0})});
  Value* target = f.op("Concat", {ub, us, f.i64({4}), f.i64({8})}, {{"axis", int64_t{0}}});
  Value* r = f.op("Reshape", {f.x, target});
  Value* flat = f.op("Reshape", {f.x, f.i64({0, -1})});
  Value* bs = f.op("Mul", {b, s});
  ASSERT_TRUE(infer_shapes(f.g).is_ok());
  EXPECT_EQ(f.sym(shp), "[batch, seq, 32]");
  EXPECT_EQ(f.shape(b), "[]");
  EXPECT_EQ(f.sym(target), "[batch, seq, 4, 8]");
  EXPECT_EQ(f.shape(r), "[batch, seq, 4, 8]");
  EXPECT_EQ(f.shape(flat), "[batch, 32*seq]");
  EXPECT_EQ(f.sym(bs), "[batch*seq]");
  EXPECT_EQ(shp->dtype, DType::kInt64);
}

TEST(ShapeInference, SliceOfPositionTableBySeqClampsSeqMax) {
  Fixture f;
  Value* table = f.i64(std::vector<int64_t>(64, 0), {1, 64});
  Value* seq = f.op("Slice", {f.op("Shape", {f.x}), f.i64({1}), f.i64({2})});
  Value* pos = f.op("Slice", {table, f.i64({0}), seq, f.i64({1})});
  Value* tail = f.op("Slice", {f.x, f.i64({-3}), f.i64({INT64_MAX}), f.i64({1})});
  Value* head = f.op("Slice", {f.x, f.i64({0}), f.i64({1}), f.i64({1})});
  ASSERT_TRUE(infer_shapes(f.g).is_ok());
  EXPECT_EQ(f.sym(seq), "[seq]");
  EXPECT_EQ(f.shape(pos), "[1, seq]");
  EXPECT_EQ(f.g.symbols[1].max, 64);
  EXPECT_EQ(f.g.symbols[0].max, 0);
  EXPECT_EQ(f.shape(tail), "[batch, 3, 32]");
  EXPECT_EQ(f.shape(head), "[batch, 1, 32]");
}

// DistilBERT: position_ids = arange(seq).unsqueeze(0).expand_as(input_ids); table[P] bounds seq.
TEST(ShapeInference, GatherOfTableByRangeClampsSeqMax) {
  Fixture f;
  Value* seq = f.op("Gather", {f.op("Shape", {f.x}), f.i64({1}, {})});
  Value* ids =
      f.op("Unsqueeze", {f.op("Range", {f.i64({0}, {}), seq, f.i64({1}, {})}), f.i64({0})});
  Tensor table;
  table.dtype = DType::kFloat32;
  table.dims = {40, 32};
  table.bytes.resize(40 * 32 * 4);
  Value* pos = f.op("Gather", {f.g.add_constant("table", table), ids});
  ASSERT_TRUE(infer_shapes(f.g).is_ok());
  EXPECT_EQ(f.shape(pos), "[1, seq, 32]");
  EXPECT_EQ(f.g.symbols[1].max, 40);
}

TEST(ShapeInference, FlattenShapeStartEndAndAllowzero) {
  Fixture f;
  Value* fl = f.op("Flatten", {f.x}, {{"axis", int64_t{-1}}});
  Value* s = f.op("Shape", {f.x}, {{"start", int64_t{-2}}});
  Value* z = f.input("z", DType::kFloat32, {Dim(0), Dim(4)});
  Value* r = f.op("Reshape", {z, f.i64({4, 0})}, {{"allowzero", int64_t{1}}});
  ASSERT_TRUE(infer_shapes(f.g).is_ok());
  EXPECT_EQ(f.shape(fl), "[batch*seq, 32]");
  EXPECT_EQ(f.sym(s), "[seq, 32]");
  EXPECT_EQ(f.shape(r), "[4, 0]");
}

TEST(ShapeInference, SliceThatIsNotAMonomialIsAnError) {
  Fixture f;
  f.op("Slice", {f.x, f.i64({1}), f.i64({INT64_MAX}), f.i64({1})});
  Status s = infer_shapes(f.g);
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("cannot slice symbolic dim seq"), std::string::npos) << s.message();
}

// torch's expand(-1 handling): Where(Equal(shape, -1), 1s, shape).
TEST(ShapeInference, EqualAndWhereAreDecidedOnSymbols) {
  Fixture f;
  Value* shp = f.op("Slice", {f.op("Shape", {f.x}), f.i64({0}), f.i64({2})});
  Value* eq = f.op("Equal", {shp, f.i64({-1, -1})});
  Value* w = f.op("Where", {eq, f.i64({1, 1}), shp});
  Value* small = f.input("tt", DType::kInt64, {Dim(1), Dim::symbol(1)});
  Value* e = f.op("Expand", {small, w});
  ASSERT_TRUE(infer_shapes(f.g).is_ok());
  EXPECT_EQ(f.sym(eq), "[0, 0]");
  EXPECT_EQ(f.sym(w), "[batch, seq]");
  EXPECT_EQ(f.shape(e), "[batch, seq]");
  EXPECT_EQ(eq->dtype, DType::kBool);
}

TEST(ShapeInference, NegativeAxesAndReductions) {
  Fixture f;
  Value* m = f.op("ReduceMean", {f.x}, {{"axes", std::vector<int64_t>{-1}}});
  Value* m2 =
      f.op("ReduceMean", {f.x}, {{"axes", std::vector<int64_t>{1}}, {"keepdims", int64_t{0}}});
  Value* u = f.op("Unsqueeze", {f.x, f.i64({-1})});
  Value* sq = f.op("Squeeze", {u, f.i64({-1})});
  Value* t = f.op("Transpose", {f.x}, {{"perm", std::vector<int64_t>{0, 2, 1}}});
  Value* g = f.op("Gather", {f.x, f.i64({0}, {})}, {{"axis", int64_t{-2}}});
  Value* c = f.op("Concat", {f.x, f.x}, {{"axis", int64_t{-2}}});
  ASSERT_TRUE(infer_shapes(f.g).is_ok());
  EXPECT_EQ(f.shape(m), "[batch, seq, 1]");
  EXPECT_EQ(f.shape(m2), "[batch, 32]");
  EXPECT_EQ(f.shape(u), "[batch, seq, 32, 1]");
  EXPECT_EQ(f.shape(sq), "[batch, seq, 32]");
  EXPECT_EQ(f.shape(t), "[batch, 32, seq]");
  EXPECT_EQ(f.shape(g), "[batch, 32]");
  EXPECT_EQ(f.shape(c), "[batch, 2*seq, 32]");
}

TEST(ShapeInference, MatMulAndGemm) {
  Fixture f;
  Value* w = f.input("w", DType::kFloat32, {Dim(32), Dim(64)});
  Value* mm = f.op("MatMul", {f.x, w});
  Value* a = f.input("a", DType::kFloat32, {Dim::symbol(0), Dim(32)});
  Value* wt = f.input("wt", DType::kFloat32, {Dim(16), Dim(32)});
  Value* gemm = f.op("Gemm", {a, wt}, {{"transB", int64_t{1}}});
  ASSERT_TRUE(infer_shapes(f.g).is_ok());
  EXPECT_EQ(f.shape(mm), "[batch, seq, 64]");
  EXPECT_EQ(f.shape(gemm), "[batch, 16]");
  f.op("MatMul", {f.x, wt});
  Status s = infer_shapes(f.g);
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("inner dimensions differ"), std::string::npos) << s.message();
}

TEST(ShapeInference, OldSoftmaxOverANonLastAxisIsRejected) {
  Fixture f;
  f.g.opset = 11;
  f.op("Softmax", {f.x}, {{"axis", int64_t{2}}});
  EXPECT_TRUE(infer_shapes(f.g).is_ok());
  f.op("Softmax", {f.x}, {{"axis", int64_t{1}}});
  Status s = infer_shapes(f.g);
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("not the last axis"), std::string::npos) << s.message();
}

TEST(ShapeInference, CastRangeConstantOfShape) {
  Fixture f;
  Value* seq = f.op("Gather", {f.op("Shape", {f.x}), f.i64({1}, {})});
  Value* r = f.op("Range", {f.i64({0}, {}), seq, f.i64({1}, {})});
  Value* c = f.op("Cast", {f.x}, {{"to", int64_t{7}}});
  Value* cos = f.op("ConstantOfShape", {f.op("Shape", {f.x})});
  ASSERT_TRUE(infer_shapes(f.g).is_ok());
  EXPECT_EQ(f.shape(r), "[seq]");
  EXPECT_EQ(r->dtype, DType::kInt64);
  EXPECT_EQ(c->dtype, DType::kInt64);
  EXPECT_EQ(f.shape(cos), "[batch, seq, 32]");
  EXPECT_EQ(cos->dtype, DType::kFloat32);
}

TEST(ShapeInference, EinsumLabelsEllipsisAndImplicitOutput) {
  Fixture f;
  Value* b = f.input("b", DType::kFloat32, {Dim::symbol(1), Dim(32), Dim(5)});
  Value* mm = f.op("Einsum", {f.x, b}, {{"equation", std::string("...j,...jk->...k")}});
  Value* imp = f.op("Einsum", {f.x, b}, {{"equation", std::string("bsj, s j k")}});
  Value* t = f.op("Einsum", {f.x}, {{"equation", std::string("bsh->hb")}});
  ASSERT_TRUE(infer_shapes(f.g).is_ok());
  EXPECT_EQ(f.shape(mm), "[batch, seq, 5]");
  EXPECT_EQ(f.shape(imp), "[batch, 5]");  // b and k occur once
  EXPECT_EQ(f.shape(t), "[32, batch]");
  // h: 32 against seq; one term for two inputs; a term of the wrong rank; a label no input has
  for (const char* bad : {"bsh,hjk->bk", "bsh->b", "bs,sjk->b", "bsh,sjk->bq"}) {
    Fixture g;
    Value* b2 = g.input("b", DType::kFloat32, {Dim::symbol(1), Dim(32), Dim(5)});
    g.op("Einsum", {g.x, b2}, {{"equation", std::string(bad)}});
    Status s = infer_shapes(g.g);
    ASSERT_FALSE(s.is_ok()) << bad;
    EXPECT_NE(s.message().find(std::string("equation '") + bad + "'"), std::string::npos)
        << s.message();
  }
}

TEST(ShapeInference, TriluAndScatterND) {
  Fixture f;
  Value* t = f.op("Trilu", {f.x, f.i64({1}, {})}, {{"upper", int64_t{0}}});
  Value* idx = f.input("idx", DType::kInt64, {Dim(3), Dim(2)});
  Value* upd = f.input("upd", DType::kFloat32, {Dim(3), Dim(32)});
  Value* sc = f.op("ScatterND", {f.x, idx, upd}, {{"reduction", std::string("add")}});
  ASSERT_TRUE(infer_shapes(f.g).is_ok());
  EXPECT_EQ(f.shape(t), "[batch, seq, 32]");
  EXPECT_EQ(f.shape(sc), "[batch, seq, 32]");
  Fixture g;
  g.op("Trilu", {g.op("ReduceSum", {g.x}, {{"keepdims", int64_t{0}}})});
  Status s = infer_shapes(g.g);
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("rank < 2"), std::string::npos) << s.message();
  Fixture h;
  Value* idx2 = h.input("idx", DType::kInt64, {Dim(3), Dim(2)});
  Value* upd2 = h.input("upd", DType::kFloat32, {Dim(3), Dim(31)});
  h.op("ScatterND", {h.x, idx2, upd2});
  s = infer_shapes(h.g);
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("[3, 32] expected"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace kiln::ir

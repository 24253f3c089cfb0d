// print_graph: symbols, inputs, one line per node with names/dtypes/shapes, constants summarised.
#include "compiler/ir/printer.h"

#include <gtest/gtest.h>

#include "compiler/ir/shape_inference.h"

namespace kiln::ir {
namespace {

TEST(Printer, PrintsNodesShapesAndConstantSummaries) {
  Graph g;
  g.symbols = {{"batch", 0}, {"seq", 128}};
  Value* x = g.add_value("x", DType::kFloat32);
  x->shape = Shape{Dim::symbol(0), Dim::symbol(1), Dim(4)};
  g.inputs.push_back(x);
  Tensor w;
  w.dtype = DType::kFloat32;
  w.dims = {4, 4};
  w.bytes.resize(64);
  for (int i = 0; i < 16; ++i) w.data<float>()[i] = static_cast<float>(i);
  Value* wv = g.add_constant("w", w);
  Value* y = g.add_value("y", DType::kFloat32);
  g.add_node("MatMul", "mm", {x, wv}, {y});
  Value* s = g.add_value("s", DType::kInt64);
  g.add_node("Shape", "shape", {y}, {s});
  g.outputs = {y, s};
  ASSERT_TRUE(infer_shapes(g).is_ok());
  std::string p = print_graph(g);
  EXPECT_NE(p.find("symbol seq max=128"), std::string::npos) << p;
  EXPECT_NE(p.find("input %x: float32[batch, seq, 4]"), std::string::npos) << p;
  EXPECT_NE(p.find("%y: float32[batch, seq, 4] = MatMul(%x: float32[batch, seq, 4], %w: const "
                   "float32[4, 4]{0, 1, 2, 3, ... 16 elements})  # mm"),
            std::string::npos)
      << p;
  EXPECT_NE(p.find("%s: int64[3] sym=[batch, seq, 4] = Shape("), std::string::npos) << p;
  EXPECT_NE(p.find("output %y"), std::string::npos) << p;
}

TEST(Printer, AttributesAreStable) {
  EXPECT_EQ(attribute_str(Attribute(int64_t{3})), "3");
  EXPECT_EQ(attribute_str(Attribute(std::vector<int64_t>{0, 2, 1})), "[0, 2, 1]");
  EXPECT_EQ(attribute_str(Attribute(std::string("none"))), "\"none\"");
}

}  // namespace
}  // namespace kiln::ir

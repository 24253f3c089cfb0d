// The op registry (compiler/ir/ops.h) against every consumer: each entry must be handled by shape
// inference, the evaluator and codegen as its flags say, and elementwise entries must name a
// kernel functor that exists. A new op that misses a consumer fails here, not in a user's model.
#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "compiler/codegen/emit_node.h"
#include "compiler/ir/ops.h"
#include "compiler/ir/shape_inference.h"
#include "compiler/passes/evaluate.h"

namespace kiln::ir {
namespace {

bool elementwise(OpKind k) {
  return k == OpKind::kUnary || k == OpKind::kBinary || k == OpKind::kCompare ||
         k == OpKind::kPredicate;
}

TEST(OpRegistry, EntriesAreInEnumOrderWithUniqueNames) {
  std::set<std::string> names;
  ASSERT_EQ(all_ops().size(), static_cast<size_t>(kOpCount));
  for (int i = 0; i < kOpCount; ++i) {
    const Op op = static_cast<Op>(i);
    const OpInfo& info = op_info(op);
    EXPECT_EQ(info.op, op) << "entry " << i << " (" << info.name << ") is out of enum order";
    EXPECT_TRUE(names.insert(info.name).second) << "duplicate name " << info.name;
    EXPECT_EQ(op_from_name(info.name), op) << info.name;
  }
  EXPECT_FALSE(op_from_name("NoSuchOp").has_value());
}

TEST(OpRegistry, EveryConsumerHandlesEveryOpItShould) {
  for (Op op : all_ops()) {
    const OpInfo& info = op_info(op);
    SCOPED_TRACE(info.name);
    EXPECT_TRUE(has_shape_inference(op));
    // A SymbolicTensor's value is symbolic: nothing to evaluate.
    if (op != Op::kSymbolicTensor) {
      EXPECT_TRUE(passes::has_evaluator(op));
    }
    // Views share their input's storage (lowering); other runtime ops need an emitter, and an op
    // that is not in the runtime set must not have one (something before codegen removes it).
    if (info.kind == OpKind::kView) {
      EXPECT_TRUE(info.runtime);
      EXPECT_FALSE(codegen::has_emitter(op));
    } else {
      EXPECT_EQ(codegen::has_emitter(op), info.runtime);
    }
    if (info.kind == OpKind::kFused) {
      EXPECT_EQ(info.min_opset, 0) << "fused ops are never imported";
    }
  }
}

TEST(OpRegistry, ElementwiseOpsHaveAReferenceAndAKernelFunctor) {
  std::ifstream f(std::string(KILN_KERNELS_DIR) + "/kiln/kernels/elementwise.h");
  ASSERT_TRUE(f) << "cannot read elementwise.h under " << KILN_KERNELS_DIR;
  std::stringstream header;
  header << f.rdbuf();
  for (Op op : all_ops()) {
    const OpInfo& info = op_info(op);
    SCOPED_TRACE(info.name);
    if (!elementwise(info.kind)) {
      EXPECT_EQ(info.functor, nullptr);
      EXPECT_EQ(info.dtypes, 0);
      continue;
    }
    ASSERT_NE(info.functor, nullptr);
    EXPECT_NE(header.str().find("struct " + std::string(info.functor) + " {"), std::string::npos)
        << "kernels/kiln/kernels/elementwise.h has no op::" << info.functor;
    EXPECT_NE(info.dtypes, 0);
    const Scalar& s = info.scalar;
    if (info.kind == OpKind::kUnary || info.kind == OpKind::kPredicate) {
      EXPECT_TRUE(s.f1 || s.i1);
      EXPECT_EQ(s.f1 != nullptr, (info.dtypes & kFloatTypes) != 0);
    } else {
      EXPECT_TRUE(s.f2 || s.i2);
      EXPECT_TRUE(s.f2 || !(info.dtypes & kFloatTypes));
    }
  }
}

}  // namespace
}  // namespace kiln::ir

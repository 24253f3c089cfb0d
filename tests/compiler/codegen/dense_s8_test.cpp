// Lowering and code generation of INT8 Dense with weight groups along K (compiler/quantize's
// `weight_group`): the weight blob is s8_pack.h's for the node's group, a weight two Dense quantize
// with different groups gets a blob per group, and the generated call passes the group to
// packed_s8_view only when there is one (per-channel models generate the same code as before).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "compiler/codegen/emit_cpp.h"
#include "compiler/codegen/lowering.h"
#include "compiler/codegen/memory_plan.h"
#include "compiler/quantize/quantize.h"
#include "kiln/kernels/gemm/s8_pack.h"

namespace kiln::codegen {
namespace {

using ir::Dim;
using ir::DType;

constexpr int64_t kK = 300, kN = 20;

// x -> dense_g128, dense_g64, dense_g128_again, dense_channel: all INT8, all reading W.
struct Int8Graph {
  ir::Graph g;
  std::vector<float> w = std::vector<float>(kK * kN);
  ir::Node *g128, *g64, *g128_again, *channel;
  Int8Graph() {
    for (size_t i = 0; i < w.size(); ++i) w[i] = std::sin(0.37f * float(i)) / float(1 + i % 7);
    g.symbols = {{"seq", 8}};
    ir::Value* x = g.add_value("x", DType::kFloat32);
    x->shape = ir::Shape{Dim::symbol(0), Dim(kK)};
    g.inputs = {x};
    ir::Tensor wt;
    wt.dtype = DType::kFloat32;
    wt.dims = {kK, kN};
    wt.bytes.resize(w.size() * sizeof(float));
    std::memcpy(wt.bytes.data(), w.data(), wt.bytes.size());
    ir::Value* wv = g.add_constant("W", std::move(wt));
    auto dense = [&](const std::string& name, int64_t group) {
      ir::Value* y = g.add_value(name + ".y", DType::kFloat32);
      y->shape = ir::Shape{Dim::symbol(0), Dim(kN)};
      ir::Node* n = g.add_node("Dense", name, {x, wv}, {y});
      n->attrs["gelu"] = int64_t{0};
      n->attrs["quantize"] = std::string(quantize::kInt8);
      if (group) n->attrs["weight_group"] = group;
      g.outputs.push_back(y);
      return n;
    };
    g128 = dense("dense_g128", 128);
    g64 = dense("dense_g64", 64);
    g128_again = dense("dense_g128_again", 128);
    channel = dense("dense_channel", 0);
  }
};

const TensorInfo& weight_of(const Lowering& L, const ir::Node* n) {
  for (const LoweredNode& ln : L.nodes)
    if (ln.node == n) return L.tensors[ln.inputs[ir::DenseIn::kWeight].tensor];
  ADD_FAILURE() << "no lowered node " << n->name;
  return L.tensors.front();
}

TEST(CodegenDenseS8, WeightBlobPerGroup) {
  Int8Graph d;
  auto lowered = lower(d.g);
  ASSERT_TRUE(lowered.is_ok()) << lowered.status().message();
  const Lowering& L = *lowered;
  const TensorInfo &b128 = weight_of(L, d.g128), &b64 = weight_of(L, d.g64),
                   &again = weight_of(L, d.g128_again), &channel = weight_of(L, d.channel);
  EXPECT_EQ(&b128, &again);  // same weight, same group: one blob
  EXPECT_NE(&b128, &b64);
  EXPECT_NE(&b128, &channel);
  EXPECT_NE(b128.name, b64.name);
  for (auto [info, group] :
       {std::pair<const TensorInfo*, int64_t>{&b128, 128}, {&b64, 64}, {&channel, 0}}) {
    SCOPED_TRACE("group " + std::to_string(group));
    EXPECT_EQ(info->dtype, DType::kUInt8);
    EXPECT_EQ(info->storage, Storage::kParam);
    const size_t bytes = kernels::gemm::packed_b_s8_bytes(kK, kN, group);
    ASSERT_EQ(info->data->bytes.size(), bytes);
    std::vector<uint8_t> want(bytes);
    ASSERT_TRUE(kernels::gemm::quantize_pack_b_s8(d.w.data(), kK, kN, false, want.data(), group));
    EXPECT_EQ(info->data->bytes, want);
  }
  EXPECT_GT(kernels::gemm::packed_b_s8_bytes(kK, kN, 64),
            kernels::gemm::packed_b_s8_bytes(kK, kN, 128));
}

TEST(CodegenDenseS8, GeneratedCallPassesTheGroup) {
  Int8Graph d;
  auto lowered = lower(d.g);
  ASSERT_TRUE(lowered.is_ok()) << lowered.status().message();
  ASSERT_TRUE(plan_memory(d.g.symbols, *lowered).is_ok());
  auto sources = emit_sources(d.g, *lowered, "native", 1);
  ASSERT_TRUE(sources.is_ok()) << sources.status().message();
  std::vector<std::string> views;  // "packed_s8_view(..." to the end of the line, graph order
  const std::string& src = (*sources)[0];
  for (size_t at = 0; (at = src.find("packed_s8_view(", at)) != std::string::npos;) {
    const size_t end = src.find('\n', at);
    views.push_back(src.substr(at, end - at));
    at = end;
  }
  ASSERT_EQ(views.size(), 4u) << src;
  const std::string dims = ", " + std::to_string(kK) + ", " + std::to_string(kN) + ", nullptr";
  EXPECT_NE(views[0].find(dims + ", 128)"), std::string::npos) << views[0];
  EXPECT_NE(views[1].find(dims + ", 64)"), std::string::npos) << views[1];
  EXPECT_NE(views[2].find(dims + ", 128)"), std::string::npos) << views[2];
  EXPECT_NE(views[3].find(dims + ")"), std::string::npos) << views[3];
}

TEST(CodegenDenseS8, InvalidGroupIsNamed) {
  Int8Graph d;
  d.g64->attrs["weight_group"] = int64_t{6};
  auto lowered = lower(d.g);
  ASSERT_FALSE(lowered.is_ok());
  EXPECT_NE(lowered.status().message().find("dense_g64"), std::string::npos)
      << lowered.status().message();
  EXPECT_NE(lowered.status().message().find("weight_group 6"), std::string::npos)
      << lowered.status().message();
}

}  // namespace
}  // namespace kiln::codegen

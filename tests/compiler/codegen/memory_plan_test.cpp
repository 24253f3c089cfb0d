// Arena planning: overlap-freedom, reuse, alignment, scale-symbol checks, liveness via views.
#include "compiler/codegen/memory_plan.h"

#include <gtest/gtest.h>

namespace kiln::codegen {
namespace {

std::vector<ir::Symbol> batch_seq(int64_t seq_max = 128) {
  return {{"batch", 0}, {"seq", seq_max}};
}

ir::Dim bytes(int64_t c, int batch_pow = 0, int seq_pow = 0) {
  ir::Dim d(c);
  d.pow[0] = static_cast<int8_t>(batch_pow);
  d.pow[1] = static_cast<int8_t>(seq_pow);
  return d;
}

void expect_no_overlap(const std::vector<BufferRequest>& r, const MemoryPlan& p,
                       const std::vector<int64_t>& sizes) {
  for (size_t a = 0; a < r.size(); ++a) {
    EXPECT_EQ(p.offsets[a] % kArenaAlignment, 0);
    EXPECT_LE(p.offsets[a] + sizes[a], p.bytes);
    for (size_t b = a + 1; b < r.size(); ++b) {
      const bool live_together = r[a].first <= r[b].last && r[b].first <= r[a].last;
      const bool disjoint =
          p.offsets[a] + sizes[a] <= p.offsets[b] || p.offsets[b] + sizes[b] <= p.offsets[a];
      if (live_together) {
        EXPECT_TRUE(disjoint) << r[a].name << " vs " << r[b].name;
      }
    }
  }
}

TEST(MemoryPlan, ChainReusesMemory) {
  // t0 -> t1 -> t2 -> t3: at most two alive at a time.
  std::vector<BufferRequest> r;
  for (int i = 0; i < 4; ++i)
    r.push_back({"t" + std::to_string(i), bytes(4 * 768, 1, 1), i, i + 1});
  auto p = plan_buffers(r, batch_seq());
  ASSERT_TRUE(p.is_ok()) << p.status().message();
  EXPECT_EQ(p->scale_symbol, 0);
  EXPECT_EQ(p->bytes, 2 * 4 * 768 * 128);
  expect_no_overlap(r, *p, std::vector<int64_t>(4, 4 * 768 * 128));
}

TEST(MemoryPlan, BestFitAndAlignment) {
  std::vector<BufferRequest> r = {{"big", bytes(1000), 0, 1},  {"small", bytes(10), 0, 5},
                                  {"mid", bytes(300), 2, 3},   {"mid2", bytes(600), 2, 4},
                                  {"late", bytes(1000), 6, 7}, {"odd", bytes(7, 1, 2), 1, 6}};
  auto p = plan_buffers(r, batch_seq(13));
  ASSERT_TRUE(p.is_ok()) << p.status().message();
  std::vector<int64_t> sizes = {1024, 64, 320, 640, 1024, 7 * 13 * 13 + 64 - (7 * 13 * 13) % 64};
  expect_no_overlap(r, *p, sizes);
  // "late" reuses the space of "big".
  EXPECT_EQ(p->offsets[4], p->offsets[0]);
}

TEST(MemoryPlan, ErrorsOnSuperlinearScaleOrUnboundedSymbol) {
  auto p = plan_buffers({{"sq", bytes(4, 2, 0), 0, 1}}, batch_seq());
  ASSERT_FALSE(p.is_ok());
  EXPECT_NE(p.status().message().find("'sq'"), std::string::npos);
  EXPECT_NE(p.status().message().find("linearly"), std::string::npos);
  auto q = plan_buffers({{"t", bytes(4, 1, 1), 0, 1}}, batch_seq(0));
  ASSERT_FALSE(q.is_ok());
  EXPECT_NE(q.status().message().find("'seq'"), std::string::npos);
  // seq^2 is fine when seq is bounded; no batch symbol = no scale.
  auto r = plan_buffers({{"att", bytes(4, 2), 0, 1}}, {{"seq", 64}});
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  EXPECT_EQ(r->scale_symbol, -1);
  EXPECT_EQ(r->bytes, 4 * 64 * 64);
}

// Liveness through the lowered graph: a view extends its source's life.
TEST(MemoryPlan, ViewsExtendSourceLifetime) {
  ir::Graph g;
  g.symbols = {{"batch", 0}, {"seq", 16}};
  const ir::Dim B = ir::Dim::symbol(0), S = ir::Dim::symbol(1);
  ir::Value* x = g.add_value("x", ir::DType::kFloat32);
  x->shape = ir::Shape{B, S, 8};
  g.inputs = {x};
  auto val = [&](const std::string& n, ir::Shape s) {
    ir::Value* v = g.add_value(n, ir::DType::kFloat32);
    v->shape = s;
    return v;
  };
  ir::Value* a = val("a", {B, S, 8});
  ir::Value* av = val("a_view", {B * S, 8});
  ir::Value* b = val("b", {B, S, 8});
  ir::Value* c = val("c", {B, S, 8});
  ir::Value* d = val("d", {B * S, 8});
  ir::Tensor shp;
  shp.dtype = ir::DType::kInt64;
  shp.dims = {2};
  shp.bytes.resize(16);
  ir::Value* shape = g.add_constant("shape", shp);
  shape->sym_value = std::vector<ir::Dim>{B * S, 8};
  g.add_node("Relu", "n0", {x}, {a});
  g.add_node("Reshape", "n1", {a, shape}, {av});
  g.add_node("Relu", "n2", {x}, {b});
  g.add_node("Relu", "n3", {b}, {c});
  g.add_node("Relu", "n4", {c}, {val("unused", {B, S, 8})});  // dead in the lowering: not needed
  g.add_node("Add", "n5", {av, b}, {d});
  g.outputs = {d};
  auto L = lower(g);
  ASSERT_TRUE(L.is_ok()) << L.status().message();
  EXPECT_EQ(L->nodes.size(), 3u);  // n0, n2, n5 (n1 is a view; n3, n4 feed nothing)
  EXPECT_EQ(L->tensor_of.at(av), L->tensor_of.at(a));
  auto p = plan_memory(g.symbols, *L);
  ASSERT_TRUE(p.is_ok()) << p.status().message();
  const auto& ta = L->tensors[L->tensor_of.at(a)];
  const auto& tb = L->tensors[L->tensor_of.at(b)];
  EXPECT_NE(ta.offset, tb.offset);  // a (through a_view) is alive when b is written
  EXPECT_EQ(p->bytes, 2 * 16 * 8 * 4);
  EXPECT_EQ(L->tensors[L->tensor_of.at(d)].storage, Storage::kOutput);
}

}  // namespace
}  // namespace kiln::codegen

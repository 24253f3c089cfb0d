// Manual benchmark (not a ctest): builds a BERT-base-shaped graph as the pass pipeline would
// leave it (12 layers, hidden 768, 12 heads, exact GELU, fused LayerNorm), emits it for "native",
// reports compile time, then runs the node functions and prints time per op type.
//   kiln_codegen_bert_bench [layers=12] [hidden=768] [batch=1] [seq=128] [threads=1]
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <random>
#include <thread>

#include "compiler/codegen/emit_artifact.h"
#include "mini_runner.h"

using namespace kiln;
using ir::Dim;
using ir::DType;

namespace {

ir::Tensor f32(std::vector<int64_t> dims, uint32_t seed, float scale) {
  ir::Tensor t;
  t.dtype = DType::kFloat32;
  t.dims = std::move(dims);
  std::mt19937 g(seed);
  std::normal_distribution<float> d(0.f, scale);
  std::vector<float> v(static_cast<size_t>(t.numel()));
  for (auto& x : v) x = d(g);
  t.bytes.resize(v.size() * 4);
  std::memcpy(t.bytes.data(), v.data(), t.bytes.size());
  return t;
}

ir::Graph build(int layers, int64_t H) {
  const int64_t heads = H / 64, ff = 4 * H, vocab = 30522;
  ir::Graph g;
  g.symbols = {{"batch", 0}, {"seq", 512}};
  g.opset = 14;
  const Dim B = Dim::symbol(0), S = Dim::symbol(1);
  uint32_t seed = 1;
  auto val = [&](DType t, ir::Shape s) {
    ir::Value* v = g.add_value("", t);
    v->shape = std::move(s);
    return v;
  };
  auto w = [&](std::vector<int64_t> dims) {
    return g.add_constant("", f32(std::move(dims), seed++, 0.02f));
  };
  auto ones = [&](int64_t n) {
    ir::Tensor t = f32({n}, 0, 0.f);
    for (int64_t i = 0; i < n; ++i) t.data<float>()[i] = 1.f;
    return g.add_constant("", t);
  };
  auto node = [&](const std::string& op, std::vector<ir::Value*> in, ir::Value* out) {
    return g.add_node(op, "", std::move(in), {out});
  };
  auto sym_shape = [&](std::vector<Dim> d) {
    ir::Value* v = val(DType::kInt64, {static_cast<int64_t>(d.size())});
    v->sym_value = d;
    node("SymbolicTensor", {}, v);
    return v;
  };
  auto linear = [&](ir::Value* x, int64_t in, int64_t out) {
    ir::Value* m = val(DType::kFloat32, {B, S, out});
    node("MatMul", {x, w({in, out})}, m);
    ir::Value* a = val(DType::kFloat32, {B, S, out});
    node("Add", {m, w({out})}, a);
    return a;
  };
  auto layernorm = [&](ir::Value* x) {
    ir::Value* y = val(DType::kFloat32, {B, S, H});
    node("LayerNormalization", {x, ones(H), w({H})}, y)->attrs["epsilon"] = 1e-12f;
    return y;
  };
  ir::Value* ids = val(DType::kInt64, {B, S});
  ids->name = "input_ids";
  ir::Value* mask = val(DType::kInt64, {B, S});
  mask->name = "attention_mask";
  g.inputs = {ids, mask};
  ir::Value* emb = val(DType::kFloat32, {B, S, H});
  node("Gather", {w({vocab, H}), ids}, emb);
  ir::Value* x = layernorm(emb);
  // mask: (1 - float(mask)) * -3.4e38 as [B, 1, 1, S]
  ir::Value* m4 = val(DType::kInt64, {B, 1, 1, S});
  node("Unsqueeze",
       {mask, g.add_constant("",
                             [] {
                               ir::Tensor t;
                               t.dtype = DType::kInt64;
                               t.dims = {2};
                               t.bytes.resize(16);
                               int64_t a[2] = {1, 2};
                               std::memcpy(t.bytes.data(), a, 16);
                               return t;
                             }())},
       m4);
  ir::Value* mf = val(DType::kFloat32, {B, 1, 1, S});
  node("Cast", {m4}, mf)->attrs["to"] = int64_t{1};
  ir::Value* inv = val(DType::kFloat32, {B, 1, 1, S});
  ir::Tensor one = f32({}, 0, 0.f);
  one.data<float>()[0] = 1.f;
  node("Sub", {g.add_constant("", one), mf}, inv);
  ir::Value* bias = val(DType::kFloat32, {B, 1, 1, S});
  ir::Tensor big = f32({}, 0, 0.f);
  big.data<float>()[0] = -3.4028234663852886e+38f;
  node("Mul", {inv, g.add_constant("", big)}, bias);
  ir::Tensor eight = f32({}, 0, 0.f);
  eight.data<float>()[0] = 8.f;
  ir::Value* k8 = g.add_constant("", eight);
  for (int l = 0; l < layers; ++l) {
    auto heads_of = [&](ir::Value* t, std::vector<int64_t> perm, ir::Shape out) {
      ir::Value* r = val(DType::kFloat32, {B, S, heads, 64});
      node("Reshape", {t, sym_shape({B, S, heads, 64})}, r);
      ir::Value* p = val(DType::kFloat32, out);
      node("Transpose", {r}, p)->attrs["perm"] = perm;
      return p;
    };
    ir::Value* q = heads_of(linear(x, H, H), {0, 2, 1, 3}, {B, heads, S, 64});
    ir::Value* k = heads_of(linear(x, H, H), {0, 2, 3, 1}, {B, heads, 64, S});
    ir::Value* v = heads_of(linear(x, H, H), {0, 2, 1, 3}, {B, heads, S, 64});
    ir::Value* sc = val(DType::kFloat32, {B, heads, S, S});
    node("MatMul", {q, k}, sc);
    ir::Value* sd = val(DType::kFloat32, {B, heads, S, S});
    node("Div", {sc, k8}, sd);
    ir::Value* sm = val(DType::kFloat32, {B, heads, S, S});
    node("Add", {sd, bias}, sm);
    ir::Value* p = val(DType::kFloat32, {B, heads, S, S});
    node("Softmax", {sm}, p)->attrs["axis"] = int64_t{-1};
    ir::Value* ctx = val(DType::kFloat32, {B, heads, S, 64});
    node("MatMul", {p, v}, ctx);
    ir::Value* ct = val(DType::kFloat32, {B, S, heads, 64});
    node("Transpose", {ctx}, ct)->attrs["perm"] = std::vector<int64_t>{0, 2, 1, 3};
    ir::Value* cr = val(DType::kFloat32, {B, S, H});
    node("Reshape", {ct, sym_shape({B, S, H})}, cr);
    ir::Value* o = linear(cr, H, H);
    ir::Value* r1 = val(DType::kFloat32, {B, S, H});
    node("Add", {o, x}, r1);
    ir::Value* x1 = layernorm(r1);
    ir::Value* f1 = linear(x1, H, ff);
    ir::Value* ge = val(DType::kFloat32, {B, S, ff});
    node("Gelu", {f1}, ge);
    ir::Value* f2 = linear(ge, ff, H);
    ir::Value* r2 = val(DType::kFloat32, {B, S, H});
    node("Add", {f2, x1}, r2);
    x = layernorm(r2);
  }
  x->name = "last_hidden_state";
  g.outputs = {x};
  return g;
}

// parallel_for over std::threads (good enough for a benchmark; the runtime has a real pool).
void threads_for(void* pool, int64_t n, int64_t grain, kiln_task_fn fn, void* ctx) {
  const int threads = *static_cast<int*>(pool);
  const int64_t chunk = std::max<int64_t>(grain, (n + threads - 1) / threads);
  std::vector<std::thread> ts;
  for (int64_t b = chunk; b < n; b += chunk) ts.emplace_back(fn, ctx, b, std::min(n, b + chunk));
  fn(ctx, 0, std::min(n, chunk));
  for (auto& t : ts) t.join();
}

}  // namespace

int main(int argc, char** argv) {
  const int layers = argc > 1 ? std::atoi(argv[1]) : 12;
  const int64_t H = argc > 2 ? std::atoll(argv[2]) : 768;
  const int64_t batch = argc > 3 ? std::atoll(argv[3]) : 1,
                seq = argc > 4 ? std::atoll(argv[4]) : 128;
  int threads = argc > 5 ? std::atoi(argv[5]) : 1;
  ir::Graph g = build(layers, H);
  codegen::CodegenOptions o;
  o.output_dir = std::filesystem::temp_directory_path().string() + "/kiln_bert_bench";
  o.target = *target::target_from_name("native");
  auto t0 = std::chrono::steady_clock::now();
  Status s = codegen::emit_artifact(g, o);
  auto t1 = std::chrono::steady_clock::now();
  if (!s.is_ok()) {
    std::fprintf(stderr, "%s\n", s.message().c_str());
    return 1;
  }
  std::printf("%zu IR nodes, emit+compile %.2f s\n", g.nodes().size(),
              std::chrono::duration<double>(t1 - t0).count());
  codegen::MiniRunner r(o.output_dir);
  std::vector<int64_t> ids(batch * seq), mask(batch * seq, 1);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int64_t>(i * 131 % 30522);
  const int64_t sym[2] = {batch, seq};
  kiln_backend be{KILN_ABI_VERSION, threads, &threads, threads_for};
  std::vector<std::vector<uint8_t>> outs;
  std::map<std::string, double> per_op;
  double best = 1e9;
  for (int it = 0; it < 5; ++it) {
    std::vector<double> secs;
    auto a = std::chrono::steady_clock::now();
    std::string err = r.run(sym, {ids.data(), mask.data()}, &outs, &be, &secs);
    auto b = std::chrono::steady_clock::now();
    if (!err.empty()) {
      std::fprintf(stderr, "%s\n", err.c_str());
      return 1;
    }
    best = std::min(best, std::chrono::duration<double>(b - a).count());
    if (it == 4)
      for (size_t i = 0; i < secs.size(); ++i) per_op[r.model()["nodes"][i]["op"]] += secs[i];
  }
  std::printf("batch %ld seq %ld threads %d: best %.1f ms\n", long(batch), long(seq), threads,
              best * 1e3);
  for (auto& [op, t] : per_op) std::printf("  %-20s %8.2f ms\n", op.c_str(), t * 1e3);
  const float* y = reinterpret_cast<const float*>(outs[0].data());
  std::printf("out[0..3] = %f %f %f\n", y[0], y[1], y[2]);
  return 0;
}

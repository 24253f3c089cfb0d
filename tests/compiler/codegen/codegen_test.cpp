// End to end through code generation: build a small BERT-like graph with the IR API, emit an
// artifact for "native", dlopen model.so and run its node functions with a single-thread backend
// and buffers laid out per model.json, then compare with a naive C++ computation. The real
// runtime (runtime/) is not used on purpose.
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <random>

#include "artifact/params_format.h"
#include "compiler/codegen/emit_artifact.h"
#include "kiln/backend.h"
#include "mini_runner.h"

namespace kiln::codegen {
namespace {

using ir::Dim;
using ir::DType;
using json = nlohmann::json;

constexpr int64_t kVocab = 10, kHidden = 16, kFf = 24, kHeads = 4, kHeadDim = 6;

std::vector<float> rnd(size_t n, uint32_t seed) {
  std::mt19937 g(seed);
  std::uniform_real_distribution<float> d(-1.f, 1.f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

ir::Tensor f32(std::vector<int64_t> dims, const std::vector<float>& v) {
  ir::Tensor t;
  t.dtype = DType::kFloat32;
  t.dims = std::move(dims);
  t.bytes.resize(v.size() * 4);
  std::memcpy(t.bytes.data(), v.data(), t.bytes.size());
  return t;
}
ir::Tensor i64(std::vector<int64_t> dims, const std::vector<int64_t>& v) {
  ir::Tensor t;
  t.dtype = DType::kInt64;
  t.dims = std::move(dims);
  t.bytes.resize(v.size() * 8);
  std::memcpy(t.bytes.data(), v.data(), t.bytes.size());
  return t;
}

struct Weights {
  std::vector<float> table = rnd(kVocab * kHidden, 1), w = rnd(kHidden * kFf, 2),
                     bias = rnd(kFf, 3), gamma = rnd(kFf, 4), beta = rnd(kFf, 5);
};

// ids[b,s] -> emb = table[ids] + x; h = LN(emb @ W + bias) ; g = Gelu(h)
// q = transpose(reshape(g, [b, s, 4, 6]), [0,2,1,3]); scores = q @ q^T * 0.5
// scores = where(mask[b,1,1,s] == 0, -1e4, scores); p = softmax(scores); ctx = p @ q
// out = reshape(transpose(ctx, [0,2,1,3]), [b, s, 24]); mean = ReduceMean(h, [-1], keepdims)
ir::Graph build_graph(const Weights& W) {
  ir::Graph g;
  g.symbols = {{"batch", 0}, {"seq", 8}};
  g.opset = 14;
  g.producer = "test";
  const Dim B = Dim::symbol(0), S = Dim::symbol(1);
  auto val = [&](const std::string& n, DType t, ir::Shape s) {
    ir::Value* v = g.add_value(n, t);
    v->shape = std::move(s);
    return v;
  };
  ir::Value* ids = val("input_ids", DType::kInt64, {B, S});
  ir::Value* mask = val("attention_mask", DType::kInt64, {B, S});
  ir::Value* x = val("x", DType::kFloat32, {B, S, kHidden});
  g.inputs = {ids, mask, x};
  ir::Value* table = g.add_constant("table", f32({kVocab, kHidden}, W.table));
  ir::Value* w = g.add_constant("W", f32({kHidden, kFf}, W.w));
  ir::Value* bias = g.add_constant("bias", f32({kFf}, W.bias));
  ir::Value* gamma = g.add_constant("gamma", f32({kFf}, W.gamma));
  ir::Value* beta = g.add_constant("beta", f32({kFf}, W.beta));
  ir::Value* half = g.add_constant("half", f32({}, {0.5f}));
  ir::Value* neg = g.add_constant("neg", f32({}, {-1e4f}));
  ir::Value* zero = g.add_constant("zero", i64({}, {0}));
  ir::Value* axes12 = g.add_constant("axes12", i64({2}, {1, 2}));

  ir::Value* emb = val("emb", DType::kFloat32, {B, S, kHidden});
  g.add_node("Gather", "/embeddings/word_embeddings/Gather", {table, ids}, {emb});
  ir::Value* x1 = val("x1", DType::kFloat32, {B, S, kHidden});
  g.add_node("Add", "add0", {emb, x}, {x1});
  ir::Value* m1 = val("m1", DType::kFloat32, {B, S, kFf});
  g.add_node("MatMul", "mm1", {x1, w}, {m1});
  ir::Value* m2 = val("m2", DType::kFloat32, {B, S, kFf});
  g.add_node("Add", "add1", {m1, bias}, {m2});
  ir::Value* h = val("h", DType::kFloat32, {B, S, kFf});
  ir::Node* ln = g.add_node("LayerNormalization", "ln", {m2, gamma, beta}, {h});
  ln->attrs["axis"] = int64_t{-1};
  ln->attrs["epsilon"] = 1e-5f;
  ir::Value* gl = val("g", DType::kFloat32, {B, S, kFf});
  g.add_node("Gelu", "gelu", {h}, {gl});
  ir::Value* shp = val("shape4", DType::kInt64, {4});
  shp->sym_value = std::vector<Dim>{B, S, kHeads, kHeadDim};
  g.add_node("SymbolicTensor", "shape4_node", {}, {shp});
  ir::Value* g4 = val("g4", DType::kFloat32, {B, S, kHeads, kHeadDim});
  g.add_node("Reshape", "reshape4", {gl, shp}, {g4});
  ir::Value* q = val("q", DType::kFloat32, {B, kHeads, S, kHeadDim});
  g.add_node("Transpose", "tq", {g4}, {q})->attrs["perm"] = std::vector<int64_t>{0, 2, 1, 3};
  ir::Value* kt = val("kt", DType::kFloat32, {B, kHeads, kHeadDim, S});
  g.add_node("Transpose", "tk", {q}, {kt})->attrs["perm"] = std::vector<int64_t>{0, 1, 3, 2};
  ir::Value* sc = val("sc", DType::kFloat32, {B, kHeads, S, S});
  g.add_node("MatMul", "qk", {q, kt}, {sc});
  ir::Value* sc2 = val("sc2", DType::kFloat32, {B, kHeads, S, S});
  g.add_node("Mul", "scale", {sc, half}, {sc2});
  ir::Value* eq = val("eq", DType::kBool, {B, S});
  g.add_node("Equal", "mask_eq", {mask, zero}, {eq});
  ir::Value* eq4 = val("eq4", DType::kBool, {B, 1, 1, S});
  g.add_node("Unsqueeze", "mask_unsq", {eq, axes12}, {eq4});
  ir::Value* sc3 = val("sc3", DType::kFloat32, {B, kHeads, S, S});
  g.add_node("Where", "mask_where", {eq4, neg, sc2}, {sc3});
  ir::Value* p = val("p", DType::kFloat32, {B, kHeads, S, S});
  g.add_node("Softmax", "softmax", {sc3}, {p})->attrs["axis"] = int64_t{-1};
  ir::Value* ctx = val("ctx", DType::kFloat32, {B, kHeads, S, kHeadDim});
  g.add_node("MatMul", "pv", {p, q}, {ctx});
  ir::Value* ctx2 = val("ctx2", DType::kFloat32, {B, S, kHeads, kHeadDim});
  g.add_node("Transpose", "tctx", {ctx}, {ctx2})->attrs["perm"] = std::vector<int64_t>{0, 2, 1, 3};
  ir::Value* shp3 = val("shape3", DType::kInt64, {3});
  shp3->sym_value = std::vector<Dim>{B, S, kFf};
  g.add_node("SymbolicTensor", "shape3_node", {}, {shp3});
  ir::Value* out = val("out", DType::kFloat32, {B, S, kFf});
  g.add_node("Reshape", "reshape_out", {ctx2, shp3}, {out});
  ir::Value* mean = val("mean", DType::kFloat32, {B, S, 1});
  ir::Node* rm = g.add_node("ReduceMean", "mean", {h}, {mean});
  rm->attrs["axes"] = std::vector<int64_t>{-1};
  rm->attrs["keepdims"] = int64_t{1};
  g.outputs = {out, mean, x};
  return g;
}

struct Reference {
  std::vector<float> out, mean;
};

Reference reference(const Weights& W, int64_t B, int64_t S, const std::vector<int64_t>& ids,
                    const std::vector<int64_t>& mask, const std::vector<float>& x) {
  std::vector<double> h(B * S * kFf), gl(B * S * kFf);
  Reference r;
  r.mean.resize(B * S);
  for (int64_t t = 0; t < B * S; ++t) {
    double row[kFf];
    for (int64_t j = 0; j < kFf; ++j) {
      double acc = W.bias[j];
      for (int64_t k = 0; k < kHidden; ++k)
        acc += (double(W.table[ids[t] * kHidden + k]) + x[t * kHidden + k]) * W.w[k * kFf + j];
      row[j] = acc;
    }
    double mu = 0, var = 0;
    for (double v : row) mu += v;
    mu /= kFf;
    for (double v : row) var += (v - mu) * (v - mu);
    var /= kFf;
    double hm = 0;
    for (int64_t j = 0; j < kFf; ++j) {
      const double v = (row[j] - mu) / std::sqrt(var + 1e-5) * W.gamma[j] + W.beta[j];
      h[t * kFf + j] = v;
      hm += v;
      gl[t * kFf + j] = 0.5 * v * (1 + std::erf(v / std::sqrt(2.0)));
    }
    r.mean[t] = float(hm / kFf);
  }
  r.out.assign(B * S * kFf, 0.f);
  auto qv = [&](int64_t b, int64_t hd, int64_t s, int64_t d) {
    return gl[(b * S + s) * kFf + hd * kHeadDim + d];
  };
  for (int64_t b = 0; b < B; ++b)
    for (int64_t hd = 0; hd < kHeads; ++hd)
      for (int64_t i = 0; i < S; ++i) {
        std::vector<double> sc(S);
        double mx = -1e300, sum = 0;
        for (int64_t j = 0; j < S; ++j) {
          double acc = 0;
          for (int64_t d = 0; d < kHeadDim; ++d) acc += qv(b, hd, i, d) * qv(b, hd, j, d);
          sc[j] = mask[b * S + j] == 0 ? -1e4 : acc * 0.5;
          mx = std::max(mx, sc[j]);
        }
        for (auto& v : sc) sum += (v = std::exp(v - mx));
        for (int64_t d = 0; d < kHeadDim; ++d) {
          double acc = 0;
          for (int64_t j = 0; j < S; ++j) acc += sc[j] / sum * qv(b, hd, j, d);
          r.out[(b * S + i) * kFf + hd * kHeadDim + d] = float(acc);
        }
      }
  return r;
}

class CodegenTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // Per process: ctest runs each test in its own process, possibly in parallel.
    dir_ = new std::string(::testing::TempDir() + "/kiln_codegen_test_" + std::to_string(getpid()));
    ir::Graph g = build_graph(*weights_);
    CodegenOptions o;
    o.output_dir = *dir_;
    auto t = target::target_from_name("native");
    ASSERT_TRUE(t.is_ok());
    o.target = *t;
    o.source_path = "test.onnx";
    o.source_sha256 = "00";
    *status_ = emit_artifact(g, o);
  }
  static void TearDownTestSuite() { std::filesystem::remove_all(*dir_); }
  static std::string* dir_;
  static Weights* weights_;
  static Status* status_;
};
std::string* CodegenTest::dir_ = nullptr;
Weights* CodegenTest::weights_ = new Weights();
Status* CodegenTest::status_ = new Status();

TEST_F(CodegenTest, ModelJsonDescribesTheArtifact) {
  ASSERT_TRUE(status_->is_ok()) << status_->message();
  MiniRunner r(*dir_);
  const json& m = r.model();
  EXPECT_EQ(m["format"], "kiln");
  EXPECT_EQ(m["format_version"], 1);
  EXPECT_EQ(m["compiler"]["version"], KILN_VERSION);
  EXPECT_EQ(m["target"]["name"], "native");
  EXPECT_EQ(m["source"]["path"], "test.onnx");
  EXPECT_EQ(m["source"]["opset"], 14);
  EXPECT_EQ(m["arena"]["scale"], "batch");
  EXPECT_EQ(m["arena"]["alignment"], 64);
  EXPECT_EQ(m["symbols"][1]["max"], 8);
  // Params: only the constants read at run time (table, W, bias, gamma, beta); small scalars
  // are inlined and shape operands are compile-time only.
  EXPECT_EQ(m["params"]["count"], 5);
  std::vector<std::string> ops;
  for (const auto& n : m["nodes"]) ops.push_back(n["op"]);
  EXPECT_EQ(std::count(ops.begin(), ops.end(), "SymbolicTensor"), 0);
  EXPECT_EQ(std::count(ops.begin(), ops.end(), "Unsqueeze"), 0);  // view
  EXPECT_EQ(ops.back(), "Copy");                                  // input x as an output
  EXPECT_EQ(m["outputs"].size(), 3u);
  for (const auto& t : m["tensors"])
    if (t["storage"] == "arena") {
      EXPECT_EQ(t["offset"].get<int64_t>() % 64, 0);
    }
  EXPECT_EQ(m["tensors"][0]["shape"], json::parse(R"(["batch", "seq"])"));
}

TEST_F(CodegenTest, NodesMatchNaiveComputation) {
  ASSERT_TRUE(status_->is_ok()) << status_->message();
  MiniRunner r(*dir_);
  ASSERT_NE(r.so(), nullptr) << dlerror();
  auto abi = reinterpret_cast<kiln_model_abi_version_fn>(dlsym(r.so(), "kiln_model_abi_version"));
  auto tgt = reinterpret_cast<kiln_model_target_fn>(dlsym(r.so(), "kiln_model_target"));
  ASSERT_TRUE(abi && tgt);
  EXPECT_EQ(abi(), KILN_ABI_VERSION);
  EXPECT_STREQ(tgt(), "native");
  for (auto [B, S] : std::vector<std::pair<int64_t, int64_t>>{{2, 5}, {1, 8}, {3, 1}, {4, 7}}) {
    std::vector<int64_t> ids(B * S), mask(B * S);
    for (int64_t i = 0; i < B * S; ++i) {
      ids[i] = (i * 7 + 3) % kVocab;
      mask[i] = (i % S) < S - 1 || S == 1 ? 1 : 0;  // last position padded
    }
    auto x = rnd(B * S * kHidden, 9);
    const int64_t sym[2] = {B, S};
    std::vector<std::vector<uint8_t>> outs;
    ASSERT_EQ(r.run(sym, {ids.data(), mask.data(), x.data()}, &outs), "");
    Reference ref = reference(*weights_, B, S, ids, mask, x);
    const float* out = reinterpret_cast<const float*>(outs[0].data());
    const float* mean = reinterpret_cast<const float*>(outs[1].data());
    ASSERT_EQ(outs[0].size(), ref.out.size() * 4);
    for (size_t i = 0; i < ref.out.size(); ++i)
      ASSERT_NEAR(out[i], ref.out[i], 1e-4) << B << "x" << S << " @" << i;
    for (size_t i = 0; i < ref.mean.size(); ++i) ASSERT_NEAR(mean[i], ref.mean[i], 1e-5);
    ASSERT_EQ(std::memcmp(outs[2].data(), x.data(), x.size() * 4), 0);
  }
}

TEST_F(CodegenTest, BadTokenIdIsReported) {
  ASSERT_TRUE(status_->is_ok()) << status_->message();
  MiniRunner r(*dir_);
  std::vector<int64_t> ids = {1, kVocab}, mask = {1, 1};
  auto x = rnd(2 * kHidden, 9);
  const int64_t sym[2] = {1, 2};
  std::vector<std::vector<uint8_t>> outs;
  EXPECT_EQ(r.run(sym, {ids.data(), mask.data(), x.data()}, &outs),
            "node '/embeddings/word_embeddings/Gather': index 10 in 'input_ids' is out of range "
            "[0, 10)");
}

// The same graph cross-compiles for the Pi 5 (generated code and kernels are portable C++).
TEST(Codegen, CrossCompilesForRpi5) {
  if (std::system("command -v aarch64-linux-gnu-g++ >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "aarch64-linux-gnu-g++ is not installed";
  Weights w;
  ir::Graph g = build_graph(w);
  CodegenOptions o;
  o.output_dir = ::testing::TempDir() + "/kiln_codegen_rpi5_" + std::to_string(getpid());
  o.target = *target::target_from_name("rpi5");
  Status s = emit_artifact(g, o);
  ASSERT_TRUE(s.is_ok()) << s.message();
  std::ifstream so(o.output_dir + "/model.so", std::ios::binary);
  unsigned char elf[20] = {};
  so.read(reinterpret_cast<char*>(elf), sizeof(elf));
  EXPECT_EQ(elf[18] | (elf[19] << 8), 183);  // e_machine = EM_AARCH64
  std::ifstream jf(o.output_dir + "/model.json");
  const json m = json::parse(jf);
  EXPECT_EQ(m["target"]["arch"], "aarch64");
  EXPECT_EQ(m["target"]["cpu"], "cortex-a76");
  std::filesystem::remove_all(o.output_dir);
}

TEST(Codegen, MissingCrossCompilerIsExplained) {
  ir::Graph g;
  ir::Value* x = g.add_value("x", DType::kFloat32);
  x->shape = ir::Shape{3};
  ir::Value* y = g.add_value("y", DType::kFloat32);
  y->shape = ir::Shape{3};
  g.add_node("Relu", "r", {x}, {y});
  g.inputs = {x};
  g.outputs = {y};
  CodegenOptions o;
  o.output_dir = ::testing::TempDir() + "/kiln_codegen_missing_cxx_" + std::to_string(getpid());
  o.target = *target::target_from_name("rpi4");
  o.target.cxx = "aarch64-linux-gnu-g++-does-not-exist";
  Status s = emit_artifact(g, o);
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("not found: apt-get install g++-aarch64-linux-gnu"), std::string::npos)
      << s.message();
  std::filesystem::remove_all(o.output_dir);
}

TEST(Codegen, UnsupportedOpNamesTheNode) {
  ir::Graph g;
  ir::Value* x = g.add_value("x", DType::kFloat32);
  x->shape = ir::Shape{3};
  ir::Value* y = g.add_value("y", DType::kFloat32);
  y->shape = ir::Shape{3};
  g.add_node("Identity", "hs", {x}, {y});  // simplify removes it: not a runtime op
  g.inputs = {x};
  g.outputs = {y};
  CodegenOptions o;
  o.output_dir = ::testing::TempDir() + "/kiln_codegen_unsupported_" + std::to_string(getpid());
  o.target = *target::target_from_name("native");
  Status s = emit_artifact(g, o);
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("node 'hs' (Identity)"), std::string::npos) << s.message();
  std::filesystem::remove_all(o.output_dir);
}

TEST(Codegen, CompilerErrorsAreReturnedAndKernelsDirIsFromTheEnvironment) {
  ir::Graph g;
  ir::Value* x = g.add_value("x", DType::kFloat32);
  x->shape = ir::Shape{3};
  ir::Value* y = g.add_value("y", DType::kFloat32);
  y->shape = ir::Shape{3};
  g.add_node("Relu", "r", {x}, {y});
  g.inputs = {x};
  g.outputs = {y};
  CodegenOptions o;
  o.output_dir = ::testing::TempDir() + "/kiln_codegen_env_" + std::to_string(getpid());
  o.target = *target::target_from_name("native");
  setenv("KILN_KERNELS_DIR", "/nonexistent-kiln-kernels", 1);
  Status s = emit_artifact(g, o);
  unsetenv("KILN_KERNELS_DIR");
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("g++ failed"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("kiln/kernels/kernels.h"), std::string::npos) << s.message();
  std::filesystem::remove_all(o.output_dir);
}

}  // namespace
}  // namespace kiln::codegen

// Loading and running the toy artifact: outputs for several shapes, reuse without re-planning,
// thread counts, and every bad input/run call.
#include <dlfcn.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kiln/c_api.h"
#include "kiln/runtime.hpp"
#include "test_artifact.h"

namespace kiln::test {
namespace {

class RuntimeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(make_temp_dir("run"));
    write_default_artifact(*dir_, KILN_TEST_MODEL_SO);
  }
  static void TearDownTestSuite() {
    remove_tree(*dir_);
    delete dir_;
  }
  static std::string* dir_;
};
std::string* RuntimeTest::dir_ = nullptr;

std::vector<int64_t> make_ids(int64_t n, int64_t seed) {
  std::vector<int64_t> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = (i * 37 + seed * 11) % kVocab;
  return v;
}
std::vector<int64_t> make_types(int64_t n) {
  std::vector<int64_t> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = (i / 3) % 2;
  return v;
}

void check_outputs(Model& m, int64_t batch, int64_t seq, const std::vector<int64_t>& ids,
                   const std::vector<int64_t>& types) {
  TensorInfo hidden = m.get_output("hidden");
  ASSERT_EQ(hidden.shape, (std::vector<int64_t>{batch, seq, kHidden}));
  ASSERT_EQ(hidden.nbytes, static_cast<size_t>(batch * seq * kHidden * 4));
  std::vector<float> want = expected_hidden(ids, types);
  ASSERT_EQ(0, std::memcmp(hidden.as<float>(), want.data(), hidden.nbytes));
  TensorInfo pooled = m.get_output(1);
  ASSERT_EQ(pooled.name, "pooled");
  ASSERT_EQ(pooled.shape, (std::vector<int64_t>{batch, kHidden}));
  for (int64_t b = 0; b < batch; ++b)
    for (int h = 0; h < kHidden; ++h)
      ASSERT_EQ(pooled.as<float>()[b * kHidden + h], want[(b * seq) * kHidden + h]);
}

void run_shape(Model& m, int64_t batch, int64_t seq, int64_t seed) {
  auto ids = make_ids(batch * seq, seed);
  auto types = make_types(batch * seq);
  m.set_input("input_ids", {batch, seq}, ids.data());
  m.set_input("token_type_ids", {batch, seq}, types.data());
  m.run();
  check_outputs(m, batch, seq, ids, types);
}

TEST_F(RuntimeTest, RunsSeveralShapes) {
  Model m(*dir_);
  for (int64_t batch : {1, 2, 3, 4})
    for (int64_t seq : {1, 2, 7, 15, 16}) {
      SCOPED_TRACE("batch " + std::to_string(batch) + " seq " + std::to_string(seq));
      run_shape(m, batch, seq, batch + seq);
    }
}

TEST_F(RuntimeTest, DescribesTheModel) {
  Model m(*dir_);
  EXPECT_EQ(m.num_inputs(), 2);
  EXPECT_EQ(m.num_outputs(), 2);
  TensorInfo in = m.input_info(0);
  EXPECT_EQ(in.name, "input_ids");
  EXPECT_EQ(in.dtype, KILN_INT64);
  EXPECT_EQ(in.shape, (std::vector<int64_t>{-1, -1}));
  TensorInfo out = m.output_info(0);
  EXPECT_EQ(out.shape, (std::vector<int64_t>{-1, -1, kHidden}));
  auto d = nlohmann::json::parse(m.describe());
  EXPECT_EQ(d["target"]["name"], "test");
  EXPECT_EQ(d["ops"]["Gather"], 2);
  EXPECT_EQ(d["nodes"].size(), 4u);
  EXPECT_EQ(d["arena"]["bytes"], 2 * kMaxSeq * kHidden * 4);
  EXPECT_EQ(d["arena"]["tensors"][1]["offset"], kMaxSeq * kHidden * 4);
  EXPECT_EQ(d["params"]["count"], 3);
  EXPECT_EQ(d["symbols"][1]["max"], kMaxSeq);
  EXPECT_EQ(std::string(kiln_version()), KILN_VERSION);
  EXPECT_STREQ(kiln_dtype_name(KILN_BOOL), "bool");
}

TEST_F(RuntimeTest, SameShapeReusesBuffers) {
  Model m(*dir_);
  run_shape(m, 2, 9, 1);
  const void* hidden = m.get_output(0).data;
  for (int i = 0; i < 5; ++i) {
    run_shape(m, 2, 9, i);
    EXPECT_EQ(m.get_output(0).data, hidden) << "output buffer moved on a same-shape run";
  }
  // Smaller shapes fit the existing buffers too.
  run_shape(m, 1, 3, 7);
  EXPECT_EQ(m.get_output(0).data, hidden);
  // Repeated run() without set_input gives the same result.
  m.run();
  m.run();
  auto ids = make_ids(3, 7);
  check_outputs(m, 1, 3, ids, make_types(3));
}

TEST_F(RuntimeTest, ThreadCountsGiveIdenticalResults) {
  for (int threads : {1, 2, 3, 4, 8}) {
    SCOPED_TRACE("threads " + std::to_string(threads));
    LoadOptions o;
    o.num_threads = threads;
    Model m(*dir_, o);
    EXPECT_EQ(m.num_threads(), threads);
    run_shape(m, 4, 16, threads);
    run_shape(m, 3, 5, threads);
  }
  Model m(*dir_);
  for (int threads : {1, 4, 2, 1, 3}) {
    m.set_num_threads(threads);
    EXPECT_EQ(m.num_threads(), threads);
    run_shape(m, 4, 13, threads);
  }
  EXPECT_EQ(kiln_model_set_num_threads(m.get(), -1), KILN_ERROR_INVALID_ARGUMENT);
}

// The fixture counts loop chunks run off the calling thread; reach it through the handle the
// runtime holds (RTLD_NOLOAD).
TEST_F(RuntimeTest, ParallelForRunsOnWorkers) {
  LoadOptions o;
  o.num_threads = 4;
  Model m(*dir_, o);
  void* so = dlopen((*dir_ + "/model.so").c_str(), RTLD_NOW | RTLD_NOLOAD);
  ASSERT_NE(so, nullptr) << dlerror();
  auto worker_chunks = reinterpret_cast<long (*)()>(dlsym(so, "kiln_test_worker_chunks"));
  ASSERT_NE(worker_chunks, nullptr);
  long before = worker_chunks();
  run_shape(m, 4, 16, 1);  // 64 rows: three loops of 4 chunks, the caller runs one of each
  EXPECT_EQ(worker_chunks() - before, 9);
  before = worker_chunks();
  run_shape(m, 1, 3, 1);  // 3 rows, grains 4 and 2: gathers inline, the add in 2 chunks
  EXPECT_EQ(worker_chunks() - before, 1);
  m.set_num_threads(1);
  before = worker_chunks();
  run_shape(m, 4, 16, 1);
  EXPECT_EQ(worker_chunks(), before) << "one thread must not use the pool";
  dlclose(so);
}

TEST_F(RuntimeTest, NumThreadsFromEnvironment) {
  ASSERT_EQ(setenv("KILN_NUM_THREADS", "3", 1), 0);
  {
    Model m(*dir_);
    EXPECT_EQ(m.num_threads(), 3);
    run_shape(m, 2, 4, 0);
  }
  LoadOptions o;
  o.num_threads = 2;  // the option wins over the environment
  EXPECT_EQ(Model(*dir_, o).num_threads(), 2);
  ASSERT_EQ(setenv("KILN_NUM_THREADS", "junk", 1), 0);
  EXPECT_GE(Model(*dir_).num_threads(), 1);
  unsetenv("KILN_NUM_THREADS");
}

TEST_F(RuntimeTest, Int32DataForInt64Inputs) {
  Model m(*dir_);
  std::vector<int32_t> ids = {5, 6, 7, 99}, types = {0, 1, 1, 0};
  m.set_input("input_ids", {1, 4}, ids.data());
  m.set_input("token_type_ids", {1, 4}, types.data());
  m.run();
  check_outputs(m, 1, 4, {5, 6, 7, 99}, {0, 1, 1, 0});
}

kiln_status set_raw(Model& m, int index, kiln_dtype dtype, std::vector<int64_t> shape,
                    const void* data) {
  return kiln_model_set_input(m.get(), index, dtype, shape.data(),
                              static_cast<int32_t>(shape.size()), data);
}

std::string last_error() {
  return kiln_last_error();
}

TEST_F(RuntimeTest, RejectsBadInputs) {
  Model m(*dir_);
  std::vector<int64_t> ids(64, 1);
  std::vector<float> f(64, 1.f);
  EXPECT_EQ(kiln_model_input_index(m.get(), "input_idz"), -1);
  EXPECT_NE(last_error().find("no input named 'input_idz'"), std::string::npos) << last_error();
  EXPECT_NE(last_error().find("'input_ids', 'token_type_ids'"), std::string::npos);
  EXPECT_THROW(m.set_input("nope", {1, 1}, ids.data()), Error);

  EXPECT_EQ(set_raw(m, 2, KILN_INT64, {1, 1}, ids.data()), KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(last_error().find("input index 2 is out of range"), std::string::npos);
  EXPECT_EQ(set_raw(m, -1, KILN_INT64, {1, 1}, ids.data()), KILN_ERROR_INVALID_ARGUMENT);

  EXPECT_EQ(set_raw(m, 0, KILN_FLOAT32, {1, 4}, f.data()), KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(last_error().find("input 'input_ids': dtype float32, expected int64"),
            std::string::npos)
      << last_error();
  EXPECT_EQ(set_raw(m, 0, KILN_INT64, {1, 2, 2}, ids.data()), KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(last_error().find("input 'input_ids': rank 3, expected 2 [batch, seq]"),
            std::string::npos)
      << last_error();
  EXPECT_EQ(set_raw(m, 0, KILN_INT64, {1, -4}, ids.data()), KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(last_error().find("negative dimension"), std::string::npos);
  EXPECT_EQ(set_raw(m, 0, KILN_INT64, {1, 4}, nullptr), KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(kiln_model_set_input(m.get(), 0, KILN_INT64, nullptr, 2, ids.data()),
            KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(kiln_model_set_input(nullptr, 0, KILN_INT64, nullptr, 2, ids.data()),
            KILN_ERROR_INVALID_ARGUMENT);
}

TEST_F(RuntimeTest, RunChecksInputs) {
  Model m(*dir_);
  std::vector<int64_t> ids(20 * 4, 1), types(20 * 4, 0);
  // run before set_input
  EXPECT_EQ(kiln_model_run(m.get()), KILN_ERROR_STATE);
  EXPECT_NE(last_error().find("input 'input_ids' is not set"), std::string::npos) << last_error();
  kiln_tensor_info info;
  EXPECT_EQ(kiln_model_get_output(m.get(), 0, &info), KILN_ERROR_STATE);
  m.set_input("input_ids", {1, 8}, ids.data());
  EXPECT_EQ(kiln_model_run(m.get()), KILN_ERROR_STATE);
  EXPECT_NE(last_error().find("input 'token_type_ids' is not set"), std::string::npos);

  // inconsistent seq across inputs
  m.set_input("token_type_ids", {1, 7}, types.data());
  EXPECT_EQ(kiln_model_run(m.get()), KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(last_error().find("inputs 'input_ids' and 'token_type_ids' disagree on seq: 8 vs 7"),
            std::string::npos)
      << last_error();
  // inconsistent batch
  m.set_input("token_type_ids", {2, 8}, types.data());
  EXPECT_EQ(kiln_model_run(m.get()), KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(last_error().find("disagree on batch: 1 vs 2"), std::string::npos) << last_error();

  // seq > max
  m.set_input("input_ids", {1, 17}, ids.data());
  m.set_input("token_type_ids", {1, 17}, types.data());
  EXPECT_EQ(kiln_model_run(m.get()), KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(last_error().find("input 'input_ids': seq = 17 exceeds the compiled maximum 16"),
            std::string::npos)
      << last_error();
  // batch > max
  m.set_input("input_ids", {5, 4}, ids.data());
  m.set_input("token_type_ids", {5, 4}, types.data());
  EXPECT_EQ(kiln_model_run(m.get()), KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(last_error().find("batch = 5 exceeds the compiled maximum 4"), std::string::npos);
  // zero-sized dims
  m.set_input("input_ids", {1, 0}, ids.data());
  m.set_input("token_type_ids", {1, 0}, types.data());
  EXPECT_EQ(kiln_model_run(m.get()), KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(last_error().find("seq = 0, must be >= 1"), std::string::npos) << last_error();
  EXPECT_EQ(kiln_model_get_output(m.get(), 0, &info), KILN_ERROR_STATE);

  // and it recovers
  run_shape(m, 2, 3, 4);
  EXPECT_EQ(kiln_model_get_output(m.get(), 2, &info), KILN_ERROR_INVALID_ARGUMENT);
}

TEST_F(RuntimeTest, NodeErrorNamesTheNode) {
  Model m(*dir_);
  std::vector<int64_t> ids = {1, 2, 100, 3}, types = {0, 0, 0, 0};
  m.set_input("input_ids", {1, 4}, ids.data());
  m.set_input("token_type_ids", {1, 4}, types.data());
  EXPECT_EQ(kiln_model_run(m.get()), KILN_ERROR_RUNTIME);
  EXPECT_NE(last_error().find("node '/embeddings/word/Gather' (Gather): "), std::string::npos)
      << last_error();
  EXPECT_EQ(last_error(),
            "node '/embeddings/word/Gather' (Gather): input_ids[2] = 100 is out of range [0, 100)");
  kiln_tensor_info info;
  EXPECT_EQ(kiln_model_get_output(m.get(), 0, &info), KILN_ERROR_STATE);
  types[3] = -1;
  ids[2] = 4;
  m.set_input("input_ids", {1, 4}, ids.data());
  m.set_input("token_type_ids", {1, 4}, types.data());
  try {
    m.run();
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.status(), KILN_ERROR_RUNTIME);
    EXPECT_NE(std::string(e.what()).find("node '/embeddings/type/Gather' (Gather)"),
              std::string::npos);
  }
}

TEST_F(RuntimeTest, NullArgumentsDoNotCrash) {
  kiln_model* m = reinterpret_cast<kiln_model*>(1);
  EXPECT_EQ(kiln_model_load(nullptr, nullptr, &m), KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(m, nullptr);
  EXPECT_EQ(kiln_model_load(dir_->c_str(), nullptr, nullptr), KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(kiln_model_run(nullptr), KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(kiln_model_num_inputs(nullptr), 0);
  EXPECT_EQ(kiln_model_input_index(nullptr, "x"), -1);
  kiln_model_free(nullptr);
}

// The profile names every node of model.json once, with one call per profiled run, and the op
// totals add up to the nodes; it counts nothing while off.
TEST_F(RuntimeTest, ProfileTimesEveryNode) {
  LoadOptions o;
  o.profile = true;
  Model m(*dir_, o);
  for (int i = 0; i < 3; ++i) run_shape(m, 2, 7, i);
  const nlohmann::json desc = nlohmann::json::parse(m.describe());
  nlohmann::json p = nlohmann::json::parse(m.profile());
  EXPECT_TRUE(p["enabled"].get<bool>());
  EXPECT_EQ(p["runs"], 3);
  ASSERT_EQ(p["nodes"].size(), desc["nodes"].size());
  double node_ms = 0;
  for (size_t n = 0; n < p["nodes"].size(); ++n) {
    SCOPED_TRACE("node " + std::to_string(n));
    EXPECT_EQ(p["nodes"][n]["name"], desc["nodes"][n]["name"]);
    EXPECT_EQ(p["nodes"][n]["op"], desc["nodes"][n]["op"]);
    EXPECT_EQ(p["nodes"][n]["calls"], 3);
    EXPECT_GE(p["nodes"][n]["ms"].get<double>(), 0.0);
    node_ms += p["nodes"][n]["ms"].get<double>();
  }
  EXPECT_GT(node_ms, 0.0);
  EXPECT_LE(node_ms, p["run_ms"].get<double>() * (1 + 1e-9));
  int64_t op_nodes = 0, op_calls = 0;
  double op_ms = 0;
  for (const auto& op : p["ops"]) {
    EXPECT_EQ(desc["ops"][op["op"].get<std::string>()], op["nodes"]);
    op_nodes += op["nodes"].get<int64_t>();
    op_calls += op["calls"].get<int64_t>();
    op_ms += op["ms"].get<double>();
  }
  EXPECT_EQ(op_nodes, static_cast<int64_t>(desc["nodes"].size()));
  EXPECT_EQ(op_calls, 3 * op_nodes);
  EXPECT_NEAR(op_ms, node_ms, 1e-6 * node_ms);

  m.set_profiling(false);
  run_shape(m, 1, 4, 1);
  EXPECT_EQ(nlohmann::json::parse(m.profile())["runs"], 3) << "counted a run while off";
  m.set_profiling(true);  // clears
  p = nlohmann::json::parse(m.profile());
  EXPECT_EQ(p["runs"], 0);
  EXPECT_EQ(p["nodes"][0]["ms"], 0.0);

  EXPECT_FALSE(nlohmann::json::parse(Model(*dir_).profile())["enabled"].get<bool>());
  ASSERT_EQ(setenv("KILN_PROFILE", "1", 1), 0);
  {
    Model from_env(*dir_);
    run_shape(from_env, 1, 3, 2);
    EXPECT_EQ(nlohmann::json::parse(from_env.profile())["runs"], 1);
  }
  unsetenv("KILN_PROFILE");
  EXPECT_EQ(kiln_model_set_profiling(nullptr, 1), KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_STREQ(kiln_model_profile(nullptr), "{}");
}

TEST_F(RuntimeTest, ParamsVerificationCanBeSkipped) {
  LoadOptions o;
  o.verify_params = false;
  Model m(*dir_, o);
  run_shape(m, 1, 5, 3);
}

}  // namespace
}  // namespace kiln::test

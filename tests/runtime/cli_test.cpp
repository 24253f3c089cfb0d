// kiln-rt's commands called in-process through kiln::tools::rt_main: run writes correct .npy
// outputs, bench/inspect work, and errors exit non-zero.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "commands.h"
#include "npy.h"
#include "test_artifact.h"

namespace kiln::test {
namespace {

int rt(std::vector<std::string> args) {
  args.insert(args.begin(), "kiln-rt");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(&a[0]);
  argv.push_back(nullptr);
  return tools::rt_main(static_cast<int>(args.size()), argv.data());
}

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = make_temp_dir("cli");
    write_default_artifact(dir_, KILN_TEST_MODEL_SO);
    ids_ = {0, 1, 2, 3, 99, 5};
    types_ = {0, 1, 0, 1, 0, 1};
    std::string err;
    const int64_t shape[] = {2, 3};
    ASSERT_TRUE(tools::write_npy(dir_ + "/ids.npy", KILN_INT64, shape, 2, ids_.data(), 48, &err));
    ASSERT_TRUE(
        tools::write_npy(dir_ + "/types.npy", KILN_INT64, shape, 2, types_.data(), 48, &err));
  }
  void TearDown() override { remove_tree(dir_); }
  std::string dir_;
  std::vector<int64_t> ids_, types_;
};

TEST_F(CliTest, RunWritesOutputs) {
  ASSERT_EQ(rt({"run", dir_, "--input", "input_ids=" + dir_ + "/ids.npy", "--input",
                "token_type_ids=" + dir_ + "/types.npy", "--output-dir", dir_ + "/out", "--threads",
                "2", "--verbose"}),
            0);
  tools::NpyArray hidden;
  std::string err;
  ASSERT_TRUE(tools::read_npy(dir_ + "/out/hidden.npy", &hidden, &err)) << err;
  EXPECT_EQ(hidden.dtype, KILN_FLOAT32);
  EXPECT_EQ(hidden.shape, (std::vector<int64_t>{2, 3, kHidden}));
  auto want = expected_hidden(ids_, types_);
  ASSERT_EQ(hidden.data.size(), want.size() * 4);
  EXPECT_EQ(0, std::memcmp(hidden.data.data(), want.data(), hidden.data.size()));
  tools::NpyArray pooled;
  ASSERT_TRUE(tools::read_npy(dir_ + "/out/pooled.npy", &pooled, &err)) << err;
  EXPECT_EQ(pooled.shape, (std::vector<int64_t>{2, kHidden}));
}

// --flag=value works like --flag value; a repeated single-value option keeps its last value.
TEST_F(CliTest, RunInlineValuesAndRepeats) {
  ASSERT_EQ(rt({"run", dir_, "--input=input_ids=" + dir_ + "/ids.npy", "--input",
                "token_type_ids=" + dir_ + "/types.npy", "--output-dir=" + dir_ + "/nope",
                "--output-dir", dir_ + "/out2", "--threads=1", "--threads", "2"}),
            0);
  tools::NpyArray hidden;
  std::string err;
  ASSERT_TRUE(tools::read_npy(dir_ + "/out2/hidden.npy", &hidden, &err)) << err;
  EXPECT_EQ(hidden.shape, (std::vector<int64_t>{2, 3, kHidden}));
}

TEST_F(CliTest, RunErrors) {
  const std::string ids = "input_ids=" + dir_ + "/ids.npy";
  const std::string types = "token_type_ids=" + dir_ + "/types.npy";
  EXPECT_NE(rt({"run", dir_, "--input", ids}), 0);  // missing input
  EXPECT_NE(rt({"run", dir_, "--input", ids, "--input", "foo=" + dir_ + "/ids.npy"}), 0);
  EXPECT_NE(rt({"run", dir_, "--input", ids, "--input", ids}), 0);  // twice
  EXPECT_NE(rt({"run", dir_, "--input", ids, "--input", "token_type_ids=/nonexistent.npy"}), 0);
  EXPECT_NE(rt({"run", dir_, "--input", "input_ids"}), 0);                      // no '='
  EXPECT_NE(rt({"run", dir_ + "/nope", "--input", ids, "--input", types}), 0);  // no artifact
  EXPECT_NE(rt({"run"}), 0);
  EXPECT_NE(rt({"run", dir_, "--bogus"}), 0);
  EXPECT_NE(rt({"run", dir_, "--threads", "x", "--input", ids, "--input", types}), 0);
  EXPECT_NE(rt({"run", dir_, "--threads", "0", "--input", ids, "--input", types}), 0);
  EXPECT_NE(rt({"run", dir_, "--input", ids, "--input", types, "--threads"}), 0);  // no value
  EXPECT_NE(rt({"run", dir_, "--input", ids, types}), 0);  // one value per --input
  EXPECT_NE(rt({"frobnicate"}), 0);
  EXPECT_NE(rt({}), 0);
  EXPECT_EQ(rt({"run", "--help"}), 0);
  EXPECT_EQ(rt({"--help"}), 0);
}

TEST_F(CliTest, BenchAndInspect) {
  EXPECT_EQ(rt({"bench", dir_, "--runs", "3", "--warmup", "1", "--json"}), 0);
  EXPECT_EQ(rt({"bench", dir_, "--batch", "4", "--seq", "16", "--runs", "2", "--threads", "2"}), 0);
  EXPECT_NE(rt({"bench", dir_, "--seq", "17", "--runs", "1"}), 0);  // above the max
  EXPECT_NE(rt({"bench", dir_, "--seq", "0"}), 0);
  EXPECT_NE(rt({"bench", dir_, "--runs", "1.5"}), 0);
  EXPECT_NE(rt({"bench", dir_, "--warmup", "-1"}), 0);
  EXPECT_NE(rt({"inspect"}), 0);
  EXPECT_NE(rt({"inspect", dir_, "--bogus"}), 0);
  EXPECT_EQ(rt({"inspect", dir_}), 0);
  EXPECT_EQ(rt({"inspect", dir_, "--json"}), 0);
  EXPECT_EQ(rt({"bench", "--help"}), 0);
  EXPECT_EQ(rt({"inspect", "-h"}), 0);
}

}  // namespace
}  // namespace kiln::test

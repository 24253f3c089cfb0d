// The tuning runners' url parsing and the local runner against fake probes (shell scripts): every
// way a probe run can fail gives an error that says how. The ssh runner is tested against a real
// sshd in tests/tune/test_ssh_runner.py.
#include "compiler/tune/runner.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace kiln::tune {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

class LocalRunnerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/kiln-runner-test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }

  // A fake probe: a /bin/sh script with `body`.
  std::string probe(const std::string& body) {
    const std::string path = (dir_ / ("probe" + std::to_string(n_++))).string();
    std::ofstream(path) << "#!/bin/sh\n" << body << "\n";
    chmod(path.c_str(), 0700);
    return path;
  }

  Result<json> run(const std::string& body, int timeout = 30, json request = {{"protocol", "x"}}) {
    RunnerOptions o;
    o.url = "local";
    o.probe = probe(body);
    o.timeout_seconds = timeout;
    auto runner = make_runner(o);
    if (!runner) return runner.status();
    return runner.value()->run(request);
  }

  fs::path dir_;
  int n_ = 0;
};

TEST_F(LocalRunnerTest, ReturnsTheProbesJsonAndFeedsItTheRequest) {
  auto r = run("cat");  // echoes the request
  ASSERT_TRUE(r) << r.status().message();
  EXPECT_EQ(r.value(), (json{{"protocol", "x"}}));
}

TEST_F(LocalRunnerTest, LargeRequestAndResponseDoNotDeadlock) {
  // 4 MB each way: more than any pipe buffer, so writing and reading must interleave.
  json request = {{"blob", std::string(size_t(4) << 20, 'a')}};
  auto r = run("cat; echo noise >&2", 30, request);
  ASSERT_TRUE(r) << r.status().message();
  EXPECT_EQ(r.value(), request);
}

TEST_F(LocalRunnerTest, ProbesOwnErrorIsSurfacedVerbatim) {
  auto r = run("echo '{\"error\": \"unknown op \\\"Gemm\\\" in request\"}'; exit 2");
  ASSERT_FALSE(r);
  EXPECT_NE(r.status().message().find("unknown op \"Gemm\" in request"), std::string::npos)
      << r.status().message();
}

TEST_F(LocalRunnerTest, InvalidJson) {
  auto r = run("echo 'cpu: cortex-a76'");
  ASSERT_FALSE(r);
  EXPECT_NE(r.status().message().find("invalid JSON"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("cpu: cortex-a76"), std::string::npos);
}

TEST_F(LocalRunnerTest, NoJson) {
  auto r = run("echo 'the probe is sad' >&2");
  ASSERT_FALSE(r);
  EXPECT_NE(r.status().message().find("wrote no JSON"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("the probe is sad"), std::string::npos);
}

TEST_F(LocalRunnerTest, ExitCodeWithLastStderrLine) {
  auto r = run("echo first >&2; echo 'cannot open /dev/cpu' >&2; exit 3");
  ASSERT_FALSE(r);
  EXPECT_NE(r.status().message().find("exited with code 3"), std::string::npos)
      << r.status().message();
  EXPECT_NE(r.status().message().find("cannot open /dev/cpu"), std::string::npos);
}

TEST_F(LocalRunnerTest, CrashNamesTheSignal) {
  auto r = run("kill -SEGV $$");
  ASSERT_FALSE(r);
  EXPECT_NE(r.status().message().find("crashed (signal 11, SIGSEGV) on local"), std::string::npos)
      << r.status().message();
}

TEST_F(LocalRunnerTest, TimeoutKillsTheProbe) {
  const auto t0 = std::chrono::steady_clock::now();
  auto r = run("exec sleep 30", 1);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_FALSE(r);
  EXPECT_NE(r.status().message().find("timed out after 1 s"), std::string::npos)
      << r.status().message();
  EXPECT_LT(seconds, 5);
}

TEST_F(LocalRunnerTest, ProbeThatIgnoresStdinStillWorks) {
  auto r = run("echo '{\"ok\": true}'", 30, {{"blob", std::string(size_t(1) << 20, 'a')}});
  ASSERT_TRUE(r) << r.status().message();
  EXPECT_EQ(r.value()["ok"], true);
}

TEST(MakeRunner, MissingProbeAndBadUrls) {
  RunnerOptions o;
  o.url = "local";
  o.probe = "/nonexistent/kiln-tune-probe";
  auto r = make_runner(o);
  ASSERT_FALSE(r);
  EXPECT_NE(r.status().message().find("does not exist"), std::string::npos);
  for (const char* url : {"tcp://board", "qemu:", "qemu:-cpu", "qemu:a b", "", "ssh:/host"}) {
    o.url = url;
    EXPECT_FALSE(make_runner(o)) << url;
  }
}

TEST(ParseSshUrl, AcceptsUserHostPort) {
  auto u = parse_ssh_url("ssh://pi@pi5.local:2222");
  ASSERT_TRUE(u) << u.status().message();
  EXPECT_EQ(u->user, "pi");
  EXPECT_EQ(u->host, "pi5.local");
  EXPECT_EQ(u->port, 2222);
  u = parse_ssh_url("ssh://192.168.1.7");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->user, "");
  EXPECT_EQ(u->host, "192.168.1.7");
  EXPECT_EQ(u->port, 0);
  EXPECT_TRUE(parse_ssh_url("ssh://lab_pi5"));  // an ssh_config Host alias
}

TEST(ParseSshUrl, RefusesInjectionAndJunk) {
  for (const char* url : {"ssh://-oProxyCommand=x",
                          "ssh://a b",
                          "ssh://host;rm -rf ~",
                          "ssh://'host'",
                          "ssh://\"host\"",
                          "ssh://-host",
                          "ssh://.host",
                          "ssh://-l@host",
                          "ssh://@host",
                          "ssh://user@",
                          "ssh://host:0",
                          "ssh://host:65536",
                          "ssh://host:22x",
                          "ssh://host:",
                          "ssh://host$(id)",
                          "ssh://host`id`",
                          "ssh://u@v@host",
                          "ssh://host/path",
                          "ssh://",
                          "ssh://host\n",
                          "ssh://[::1]:22",
                          "ssh://host:-1"})
    EXPECT_FALSE(parse_ssh_url(url)) << url;
}

TEST(ParseSshEmulator, OnlyQemuAarch64WithACpu) {
  auto e = parse_ssh_emulator("qemu-aarch64 -cpu cortex-a76");
  ASSERT_TRUE(e);
  EXPECT_EQ(e.value(), (std::vector<std::string>{"qemu-aarch64", "-cpu", "cortex-a76"}));
  EXPECT_TRUE(parse_ssh_emulator("qemu-aarch64"));
  for (const char* bad : {"sh", "qemu-aarch64 -cpu", "qemu-aarch64 -cpu a;b",
                          "qemu-aarch64  -cpu a", "qemu-aarch64 -L /", "qemu-aarch64 -cpu -x",
                          "qemu-aarch64 -cpu a b", "/usr/bin/qemu-aarch64"})
    EXPECT_FALSE(parse_ssh_emulator(bad)) << bad;
}

}  // namespace
}  // namespace kiln::tune

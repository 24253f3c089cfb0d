// Compiler driver; see toolchain.h.
#include "compiler/codegen/toolchain.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <sstream>
#include <thread>

#include "compiler/util/install_layout.h"

namespace kiln::codegen {

namespace {

std::string shell_quote(const std::string& s) {
  std::string r = "'";
  for (char ch : s) r += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
  return r + "'";
}

bool find_in_path(const std::string& prog) {
  if (prog.find('/') != std::string::npos) return access(prog.c_str(), X_OK) == 0;
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path ? path : "/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    const std::string full = (dir.empty() ? "." : dir) + "/" + prog;
    struct stat st;
    if (stat(full.c_str(), &st) == 0 && S_ISREG(st.st_mode) && access(full.c_str(), X_OK) == 0)
      return true;
  }
  return false;
}

std::string dir_from_env(const char* env, const std::string& fallback) {
  const char* v = std::getenv(env);
  return v && *v ? v : fallback;
}

// Runs a shell command; returns its exit status and combined stdout/stderr.
int run(const std::string& cmd, std::string* output) {
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return -1;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) output->append(buf, n);
  const int st = pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

// KILN_EXTRA_CXXFLAGS: more flags for compiling and linking a model.so for the host's own
// architecture, split at spaces (scripts/test.sh --sanitize instruments generated code like the
// runtime that loads it; cross builds run under qemu with an uninstrumented runtime).
std::string extra_flags(const target::Target& target) {
#if defined(__x86_64__)
  if (target.arch != "x86_64") return "";
#elif defined(__aarch64__)
  if (target.arch != "aarch64") return "";
#endif
  std::istringstream words(dir_from_env("KILN_EXTRA_CXXFLAGS", ""));
  std::string flags, w;
  while (words >> w) flags += " " + shell_quote(w);
  return flags;
}

std::string truncated(const std::string& s, size_t max = 4000) {
  return s.size() <= max ? s : s.substr(0, max) + "\n... (truncated)";
}

}  // namespace

std::vector<std::string> base_cxx_flags() {
  // -ffp-contract=fast: FMA in the matmul and normalisation loops (one rounding instead of two;
  // results stay within 1e-4 of PyTorch). -fno-math-errno lets sqrt/exp inline; no kernel reads
  // errno. -fvect-cost-model=dynamic: -O2's "very cheap" model refuses loops that need an
  // epilogue, i.e. every kernel loop with a run-time trip count.
  return {"-O2",
          "-std=c++17",
          "-fPIC",
          "-fvisibility=hidden",
          "-ffp-contract=fast",
          "-fno-math-errno",
          "-fvect-cost-model=dynamic"};
}

Status build_shared_library(const target::Target& target, const std::vector<std::string>& sources,
                            const std::string& output, int jobs) {
  if (!find_in_path(target.cxx)) {
    if (target.arch == "aarch64" && target.cxx.find("aarch64") != std::string::npos)
      return Status::error(target.cxx + " not found: apt-get install g++-aarch64-linux-gnu");
    if (target.cxx == "g++" || target.cxx == "c++")
      return Status::error(target.cxx + " not found: apt-get install g++ (target '" + target.name +
                           "')");
    return Status::error(target.cxx + " not found: install a C++ compiler for target '" +
                         target.name + "'");
  }
  // An installed package's own headers (the wheel), else the source tree's.
  const std::string package = util::installed_package_dir();
  const std::string kernels = dir_from_env(
      "KILN_KERNELS_DIR", package.empty() ? KILN_DEFAULT_KERNELS_DIR : package + "/kernels");
  const std::string include = dir_from_env(
      "KILN_INCLUDE_DIR", package.empty() ? KILN_DEFAULT_INCLUDE_DIR : package + "/include");
  std::string flags;
  for (const auto& f : base_cxx_flags()) flags += " " + f;
  for (const auto& f : target.cxx_flags) flags += " " + shell_quote(f);
  for (const auto& d : target.defines) flags += " " + shell_quote("-D" + d);
  flags += " -I" + shell_quote(kernels) + " -I" + shell_quote(include);
  const std::string extra = extra_flags(target);
  flags += extra;

  std::vector<std::string> objects;
  for (const auto& s : sources) objects.push_back(s + ".o");
  std::atomic<size_t> next{0};
  std::mutex mu;
  std::string first_error;
  auto worker = [&] {
    for (size_t i; (i = next++) < sources.size();) {
      std::string out;
      const std::string cmd = shell_quote(target.cxx) + flags + " -c " + shell_quote(sources[i]) +
                              " -o " + shell_quote(objects[i]);
      if (run(cmd, &out) != 0) {
        std::lock_guard<std::mutex> lock(mu);
        if (first_error.empty())
          first_error = target.cxx + " failed on " + sources[i] + ":\n" + truncated(out);
      }
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < std::max(1, std::min<int>(jobs, static_cast<int>(sources.size()))); ++t)
    threads.emplace_back(worker);
  for (auto& t : threads) t.join();
  auto cleanup = [&] {
    for (const auto& o : objects) std::remove(o.c_str());
  };
  if (!first_error.empty()) {
    cleanup();
    return Status::error(first_error);
  }
  const std::string tmp = output + ".tmp";
  std::string link = shell_quote(target.cxx) + " -shared -fPIC";
  for (const auto& f : target.cxx_flags) link += " " + shell_quote(f);
  link += extra;
  for (const auto& o : objects) link += " " + shell_quote(o);
  link += " -o " + shell_quote(tmp);
  std::string out;
  const int rc = run(link, &out);
  cleanup();
  if (rc != 0) {
    std::remove(tmp.c_str());
    return Status::error(target.cxx + " failed to link " + output + ":\n" + truncated(out));
  }
  if (std::rename(tmp.c_str(), output.c_str()) != 0) return Status::error("cannot write " + output);
  return Status::ok();
}

}  // namespace kiln::codegen

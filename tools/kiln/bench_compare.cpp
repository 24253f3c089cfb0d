// `kiln bench --compare PEERS [options]`: the side-by-side benchmark (bench/compare.py) from the
// CLI. kiln has no Python peers of its own, so this only assembles the command line and execs
// Debian's python3 on the script in the source tree this binary was built from.
#include "tools/kiln/bench_compare.h"

#include <unistd.h>

#include <cerrno>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

namespace kiln::tools {
namespace {

namespace fs = std::filesystem;

// The build directory of this binary (BUILD/tools/kiln/kiln), so compare.py compiles with the
// same kiln; empty if the binary does not sit in a build tree.
std::string own_build_dir() {
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return {};
  const fs::path build = exe.parent_path().parent_path().parent_path();
  return fs::exists(build / "CMakeCache.txt", ec) ? build.string() : std::string{};
}

}  // namespace

bool wants_compare(int argc, char** argv) {
  for (int i = 2; i < argc; ++i)
    if (std::strcmp(argv[i], "--compare") == 0 || std::strncmp(argv[i], "--compare=", 10) == 0)
      return true;
  return false;
}

int bench_compare_main(int argc, char** argv) {
  std::string peers = "torch,onnxruntime,tvm";
  std::vector<std::string> rest;
  for (int i = 2; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--compare") {
      if (i + 1 < argc && argv[i + 1][0] != '-') peers = argv[++i];
    } else if (arg.rfind("--compare=", 0) == 0) {
      peers = arg.substr(10);
    } else if (arg == "--systems") {
      std::fprintf(stderr, "kiln bench --compare: use --compare PEERS instead of --systems\n");
      return 2;
    } else {
      rest.push_back(arg);
    }
  }
  // kiln always runs; INT8 peers bring kiln INT8 along.
  std::string systems = "kiln";
  if (peers.find("int8") != std::string::npos) systems += ",kiln-int8";
  systems += "," + peers;

  const std::string script = std::string(KILN_SOURCE_DIR) + "/bench/compare.py";
  if (!fs::exists(script)) {
    std::fprintf(stderr, "kiln bench --compare: %s not found (it ships with the source tree)\n",
                 script.c_str());
    return 2;
  }
  const std::string build = own_build_dir();
  if (!build.empty()) setenv("KILN_BUILD_DIR", build.c_str(), /*overwrite=*/0);

  std::vector<std::string> args = {"/usr/bin/python3", script, "--systems", systems};
  args.insert(args.end(), rest.begin(), rest.end());
  std::vector<char*> cargs;
  for (std::string& s : args) cargs.push_back(s.data());
  cargs.push_back(nullptr);
  std::fflush(stdout);
  execv(cargs[0], cargs.data());
  std::fprintf(stderr, "kiln bench --compare: cannot run %s: %s\n", cargs[0], std::strerror(errno));
  return 2;
}

}  // namespace kiln::tools

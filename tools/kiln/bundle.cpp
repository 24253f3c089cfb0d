// Builds the deploy bundle; see bundle.h.
#include "tools/kiln/bundle.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <vector>

#include <nlohmann/json.hpp>

#include "compiler/util/install_layout.h"
#include "compiler/util/sha256.h"
#include "tools/kiln/binaries.h"

#ifndef KILN_SOURCE_DIR
#define KILN_SOURCE_DIR ""
#endif

namespace kiln::tools {
namespace {

namespace fs = std::filesystem;

struct RuntimeFiles {
  fs::path library, cli;
};

// Where the bundle's runtime comes from, first found: $KILN_RUNTIME_DIR /
// $KILN_AARCH64_RUNTIME_DIR; the board runtime built with zig (any glibc since 2.17:
// cmake/portable_runtime.cmake), which the kiln wheel carries in runtimes/<arch>/ and a build tree
// in portable-<arch>/; else the g++ build of that architecture (the host build itself, or
// build-aarch64/ beside it), which needs a glibc as new as the build machine's.
Status find_runtime(const std::string& arch, RuntimeFiles* out) {
  const char* env_name = arch == "aarch64" ? "KILN_AARCH64_RUNTIME_DIR" : "KILN_RUNTIME_DIR";
  const char* env = std::getenv(env_name);
  const std::string package = util::installed_package_dir();  // the `kiln` wheel
  std::vector<fs::path> dirs;
  if (env && *env) {
    dirs = {env};
  } else if (!package.empty()) {
    dirs = {fs::path(package) / "runtimes" / arch};
    if (arch == host_arch()) dirs.push_back(package);
  } else {
    const fs::path root = kiln_build_root();
    dirs = {root / ("portable-" + arch)};
    if (arch == host_arch())
      dirs.push_back(root);
    else if (arch == "aarch64")
      dirs.push_back(root.parent_path() / "build-aarch64");
  }
  const std::string how =
      !package.empty()
          ? "this kiln wheel has no " + arch +
                " runtime: build it with KILN_PORTABLE_RUNTIMES=" + arch +
                ", or unpack a kiln_runtime-*_" + arch + ".whl and point " + env_name +
                " at its kiln/ folder"
          : "build it with scripts/build.sh" + std::string(arch == host_arch() ? "" : " --aarch64");
  const std::pair<const char*, const char*> layouts[] = {
      {"runtime/libkiln_runtime.so", "tools/kiln-rt/kiln-rt"},
      {"libkiln_runtime.so", "kiln-rt"},
      {"lib/libkiln_runtime.so", "bin/kiln-rt"}};
  std::string looked;
  for (const fs::path& dir : dirs) {
    looked += (looked.empty() ? "" : ", ") + dir.string();
    for (const auto& [lib, cli] : layouts) {
      if (!fs::exists(dir / lib) || !fs::exists(dir / cli)) continue;
      for (const fs::path& p : {dir / lib, dir / cli}) {
        const std::string got = elf_arch(p);
        if (got != arch)
          return Status::error(p.string() + " is " + (got.empty() ? "not an ELF file" : got) +
                               ", the target needs " + arch + " (" + how + ", or point " +
                               env_name + " at an " + arch + " build)");
      }
      *out = {dir / lib, dir / cli};
      return Status::ok();
    }
  }
  return Status::error("no " + arch +
                       " runtime for the bundle (libkiln_runtime.so and kiln-rt) in " + looked +
                       ": " + how + (env && *env ? "" : std::string(", or set ") + env_name));
}

Status copy_into(const fs::path& from, const fs::path& to) {
  std::error_code ec;
  fs::copy_file(from, to, fs::copy_options::overwrite_existing, ec);
  if (ec)
    return Status::error("cannot copy " + from.string() + " to " + to.string() + ": " +
                         ec.message());
  return Status::ok();
}

Status run(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = fork();
  if (pid < 0) return Status::error("fork failed");
  if (pid == 0) {
    execvp(args[0], args.data());
    _exit(127);
  }
  int status = 0;
  if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::string cmd;
    for (const std::string& a : argv) cmd += (cmd.empty() ? "" : " ") + a;
    return Status::error(
        "'" + cmd + "' failed" +
        (WIFEXITED(status) && WEXITSTATUS(status) == 127 ? " (not installed?)" : ""));
  }
  return Status::ok();
}

// embeds: the artifact has a tokenizer and model.json "pooling" (a sentence-embedding model).
std::string board_readme(const BundleOptions& o, const std::string& name,
                         const std::string& tokenizer_file, bool embeds) {
  const bool has_tokenizer = !tokenizer_file.empty();
  const bool arm = o.target_arch == "aarch64";
  std::string s =
      "# " + name + ": a kiln model for " + o.target_name + " (" + o.target_arch + ")\n\n";
  s += "Contents: the compiled model (model.json, model.so, model.params" +
       (has_tokenizer ? ", " + tokenizer_file : std::string()) +
       "), the kiln runtime (libkiln_runtime.so, kiln-rt), its Python binding (kiln/), the same "
       "runtime and binding as a wheel (kiln_runtime-*.whl), infer.py, SHA256SUMS.\n\n";
  if (arm)
    s += "Needs a 64-bit OS (Raspberry Pi OS 64-bit / Debian arm64 / Ubuntu arm64): on a 32-bit "
         "userland `uname -m` may still say aarch64 but `./kiln-rt` fails with \"No such file or "
         "directory\" / \"cannot execute\"; infer.py says so.\n\n";
  s += "```sh\n";
  s += "sha256sum -c SHA256SUMS            # optional: check the copy\n";
  s += "python3 infer.py                   # needs python3-numpy";
  if (embeds) {
    s += "; embeds texts (m.embed)\n";
    s += "python3 infer.py --text \"a sentence\" --text \"another one\"\n";
    s += "./kiln-rt embed . --text \"a sentence\" --json\n";
    s += "```\n\nAn embedding server (OpenAI /v1/embeddings, text-embeddings-inference /embed, "
         "/health, /metrics; 127.0.0.1 only unless --host 0.0.0.0; `--api-key-file FILE` "
         "requires `Authorization: Bearer KEY`; `./kiln-rt serve --help` lists the limits):\n\n";
    s += "```sh\n";
    s += "./kiln-rt serve . --port 8080 --threads 4 &\n";
    s += "curl -s http://127.0.0.1:8080/v1/embeddings -H 'Content-Type: application/json' \\\n"
         "     -d '{\"input\": [\"a sentence\", \"another one\"]}'\n";
  } else {
    s += has_tokenizer ? "; --text \"a sentence\" to tokenize\n" : "; --ids 101,2023,102\n";
  }
  if (has_tokenizer && !embeds)
    s += "./kiln-rt run . --text \"a sentence\" --text \"another one\"\n";
  s += "./kiln-rt run . --input input_ids=ids.npy --input attention_mask=mask.npy ...\n";
  s += "./kiln-rt bench . --seq 128 --threads 4\n";
  s += "```\n\nThreads: --threads N or KILN_NUM_THREADS (default: all cores). ";
  s += "See docs/deploy-raspberry-pi.md in the kiln repository.\n\n";
  s += "For `import kiln.runtime` and `kiln-rt` anywhere, install the wheel (offline; numpy from "
       "apt):\n\n```sh\nsudo apt install python3-numpy python3-venv\n"
       "python3 -m venv --system-site-packages ~/kiln-venv\n"
       "~/kiln-venv/bin/pip install --no-index kiln_runtime-*.whl\n```\n";
  return s;
}

fs::path python_dir() {
  const char* env = std::getenv("KILN_PYTHON_DIR");
  if (env && *env) return env;
  const std::string package = util::installed_package_dir();
  return package.empty() ? fs::path(KILN_SOURCE_DIR) / "python" : fs::path(package).parent_path();
}

fs::path infer_py() {
  const std::string package = util::installed_package_dir();
  return package.empty() ? fs::path(KILN_SOURCE_DIR) / "examples" / "infer.py"
                         : fs::path(package) / "share" / "infer.py";
}

// The board wheel (kiln_runtime-*.whl) of the bundle's runtime, written into `dir` by the
// package's own builder (python/kiln/_runtime_wheel.py, stdlib only); its file name.
Status write_runtime_wheel(const RuntimeFiles& rt, const fs::path& dir, std::string* name) {
  const fs::path builder = python_dir() / "kiln" / "_runtime_wheel.py";
  KILN_RETURN_IF_ERROR(
      run({"python3", builder.string(), "--lib", rt.library.string(), "--cli", rt.cli.string(),
           "--python-dir", python_dir().string(), "--out", dir.string(), "--quiet"}));
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.path().extension() == ".whl") {
      *name = e.path().filename().string();
      return Status::ok();
    }
  return Status::error(builder.string() + " wrote no wheel into " + dir.string());
}

Status check_python_files() {
  const fs::path py_dir = python_dir();
  for (const fs::path& p :
       {py_dir / "kiln" / "__init__.py", py_dir / "kiln" / "runtime.py",
        py_dir / "kiln" / "_cli.py", py_dir / "kiln" / "_runtime_wheel.py", infer_py()})
    if (!fs::exists(p))
      return Status::error(p.string() +
                           " not found (set KILN_PYTHON_DIR to the folder holding "
                           "kiln/, or run kiln from its build tree)");
  return Status::ok();
}

}  // namespace

Status check_bundle_inputs(const std::string& arch) {
  RuntimeFiles rt;
  KILN_RETURN_IF_ERROR(find_runtime(arch, &rt));
  return check_python_files();
}

Status make_bundle(const BundleOptions& o, uint64_t* archive_bytes) {
  RuntimeFiles rt;
  KILN_RETURN_IF_ERROR(find_runtime(o.target_arch, &rt));
  KILN_RETURN_IF_ERROR(check_python_files());
  const fs::path py_dir = python_dir(), infer = infer_py();

  // The archive's top directory is the archive's name without .tar.gz / .tgz.
  fs::path output = fs::absolute(o.output);
  std::string name = output.filename().string();
  for (const char* ext : {".tar.gz", ".tgz"}) {
    const std::string e = ext;
    if (name.size() > e.size() && name.compare(name.size() - e.size(), e.size(), e) == 0) {
      name.resize(name.size() - e.size());
      break;
    }
  }
  if (name.empty() || name == "." || name == "..")
    return Status::error("--bundle " + o.output + ": expected a name like out.tar.gz");

  char tmpl[] = "/tmp/kiln-bundle-XXXXXX";
  if (!mkdtemp(tmpl)) return Status::error("cannot create a temporary directory in /tmp");
  const fs::path staging = tmpl, top = staging / name;
  struct Cleanup {
    fs::path dir;
    ~Cleanup() {
      std::error_code ec;
      fs::remove_all(dir, ec);
    }
  } cleanup{staging};
  std::error_code ec;
  fs::create_directories(top / "kiln", ec);
  if (ec) return Status::error(top.string() + ": " + ec.message());

  // The artifact: model.json and the files it names.
  const fs::path art = o.artifact_dir;
  nlohmann::json model;
  try {
    std::ifstream f(art / "model.json");
    model = nlohmann::json::parse(f);
  } catch (const std::exception& e) {
    return Status::error((art / "model.json").string() + ": " + e.what());
  }
  std::vector<std::string> files = {"model.json", model.value("library", "model.so"),
                                    model["params"].value("file", "model.params")};
  std::string tokenizer_file;  // vocab.txt (bert_wordpiece) or tokenizer.json (tokenizer_json)
  if (model.contains("tokenizer"))
    tokenizer_file = model["tokenizer"].value(
        "file", model["tokenizer"].value("vocab", std::string("vocab.txt")));
  if (!tokenizer_file.empty()) files.push_back(tokenizer_file);
  if (model.contains("tuning"))  // kiln compile --tuning-log: the log travels with the artifact
    files.push_back(model["tuning"]["log"].value("file", std::string("tuning.json")));
  for (const std::string& f : files) KILN_RETURN_IF_ERROR(copy_into(art / f, top / f));
  KILN_RETURN_IF_ERROR(copy_into(rt.library, top / "libkiln_runtime.so"));
  KILN_RETURN_IF_ERROR(copy_into(rt.cli, top / "kiln-rt"));
  KILN_RETURN_IF_ERROR(copy_into(py_dir / "kiln" / "__init__.py", top / "kiln" / "__init__.py"));
  KILN_RETURN_IF_ERROR(copy_into(py_dir / "kiln" / "runtime.py", top / "kiln" / "runtime.py"));
  KILN_RETURN_IF_ERROR(copy_into(infer, top / "infer.py"));
  fs::permissions(top / "kiln-rt", fs::perms::owner_all | fs::perms::group_read |
                                       fs::perms::group_exec | fs::perms::others_read |
                                       fs::perms::others_exec);
  fs::permissions(top / "infer.py",
                  fs::perms::owner_exec | fs::perms::group_exec | fs::perms::others_exec,
                  fs::perm_options::add);
  {
    std::ofstream readme(top / "README.md");
    readme << board_readme(o, name, tokenizer_file,
                           !tokenizer_file.empty() && model.contains("pooling"));
  }
  std::string wheel;  // `pip install kiln_runtime-*.whl` on the board, offline
  KILN_RETURN_IF_ERROR(write_runtime_wheel(rt, top, &wheel));
  files.insert(files.end(), {"libkiln_runtime.so", "kiln-rt", "kiln/__init__.py", "kiln/runtime.py",
                             "infer.py", "README.md", wheel});
  std::string sums;
  for (const std::string& f : files) {
    KILN_ASSIGN_OR_RETURN(auto h, util::sha256_file((top / f).string()));
    sums += h + "  " + f + "\n";
  }
  {
    std::ofstream out(top / "SHA256SUMS");
    out << sums;
  }
  fs::create_directories(output.parent_path(), ec);
  KILN_RETURN_IF_ERROR(run({"tar", "-czf", output.string(), "-C", staging.string(), name}));
  *archive_bytes = fs::file_size(output, ec);
  return Status::ok();
}

}  // namespace kiln::tools

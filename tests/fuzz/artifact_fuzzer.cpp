// Fuzz target: the artifact loader as a whole (Model::load: model.json, the target check,
// model.params against model.json, model.so's checksum, dlopen and symbols, the tokenizer), then
// encode when the artifact has a tokenizer. Input: model.json, kPartSeparator, model.params, and
// optionally kPartSeparator and the tokenizer file (written under the name model.json gives it).
//
// model.so is always the same good library (the runtime tests' hand-written model, copied once):
// dlopen runs a library's code, so a mutated model.so crashes in the dynamic loader, not in kiln;
// the runtime's defence against that is model.json's library checksum, checked before dlopen
// (runtime/model_load.cpp; hostile_artifact_test.cpp and test_corrupt_artifact.py cover it). For
// the same reason an input whose model.json names a library other than model.so is skipped: it
// would dlopen fuzzer-made bytes (model.params, say) and libFuzzer can forge a CRC-32 by
// comparison tracing. Nothing is run: model.so trusts the shapes its model.json was compiled
// with (graph_crc32 ties the two; the fixture, like hand-written libraries, has none).
#include <dlfcn.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>

#include "runtime/model.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

const std::string& artifact_dir() {
  static const std::string dir = [] {
    const std::string d = kiln::fuzz::scratch_dir();
    std::ifstream so(KILN_FUZZ_MODEL_SO, std::ios::binary);
    if (!so) std::abort();
    kiln::fuzz::write_file(d + "/model.so", std::string(std::istreambuf_iterator<char>(so), {}));
    // Pinned: the loader's dlopen then finds it loaded and its dlclose never unmaps it, so
    // libFuzzer's coverage counters inside it stay valid (and no run pays for ld.so).
    if (!dlopen((d + "/model.so").c_str(), RTLD_NOW | RTLD_NODELETE)) std::abort();
    return d;
  }();
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& dir = artifact_dir();
  const std::vector<std::string> parts = kiln::fuzz::split_parts(data, size);
  kiln::fuzz::write_file(dir + "/model.json", parts[0]);
  kiln::fuzz::write_file(dir + "/model.params", parts.size() > 1 ? parts[1] : "");
  static std::string tokenizer_path;  // the previous input's, removed so files do not pile up
  if (!tokenizer_path.empty()) std::remove(tokenizer_path.c_str());
  tokenizer_path.clear();
  kiln::rt::ModelDesc desc;
  if (kiln::rt::parse_model_json(dir + "/model.json", &desc).ok()) {
    if (desc.library != "model.so") return 0;
    const std::string& tok = desc.tokenizer.vocab_file;
    if (desc.tokenizer.present && tok != "model.json" && tok != "model.params" &&
        tok != "model.so") {
      tokenizer_path = dir + "/" + tok;
      kiln::fuzz::write_file(tokenizer_path, parts.size() > 2 ? parts[2] : "");
    }
  }
  kiln_load_options opts{1, 1};
  std::unique_ptr<kiln::rt::Model> model;
  const kiln::rt::Status s = kiln::rt::Model::load(dir, &opts, &model);
  if (!s.ok()) {
    if (s.message.empty()) std::abort();
    return 0;
  }
  model->describe();
  if (model->has_tokenizer()) {
    const char* texts[] = {"Hello, world!", "caf\xc3\xa9 \xe4\xbd\xa0\xe5\xa5\xbd"};
    kiln_encoding enc;
    model->encode(texts, 2, 0, &enc);
  }
  return 0;
}

// Fuzz target: model.json parsing and validation (parse_model_json: every section, the memory
// plan check and the graph checksum). The runtime reads it from a file, so the input is written
// to one first.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "runtime/model_desc.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = kiln::fuzz::scratch_dir() + "/model.json";
  kiln::fuzz::write_file(path, std::string(reinterpret_cast<const char*>(data), size));
  kiln::rt::ModelDesc desc;
  const kiln::rt::Status s = kiln::rt::parse_model_json(path, &desc);
  if (!s.ok() && s.message.find(path) == std::string::npos) std::abort();  // must name the file
  return 0;
}

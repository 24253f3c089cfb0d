// Fuzz target: ONNX import (protobuf parse, initializers, attributes, every op's import and shape
// inference) and then the whole pass pipeline (constant folding evaluates constant subgraphs,
// the fusions, the output contract check), as `kiln compile` runs them before code generation.
// The importer reads a file (and external data next to it), so the input is written to one.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "compiler/frontend/onnx/import.h"
#include "compiler/passes/pipeline.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = kiln::fuzz::scratch_dir() + "/model.onnx";
  kiln::fuzz::write_file(path, std::string(reinterpret_cast<const char*>(data), size));
  auto g = kiln::frontend::import_onnx(path, kiln::frontend::ImportOptions{});
  if (!g.is_ok()) {
    if (g.status().message().empty()) std::abort();
    return 0;
  }
  auto report = kiln::passes::run_pipeline(**g);
  if (report.is_ok()) kiln::passes::unfused_warnings(**g);
  return 0;
}

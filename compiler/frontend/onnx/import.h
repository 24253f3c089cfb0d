// ONNX import: reads a .onnx file (with optional external data) into a kiln IR graph with every
// value's dtype and symbolic shape inferred.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "compiler/ir/graph.h"

namespace kiln::frontend {

struct ImportOptions {
  int64_t max_seq = 0;  // 0 = default: min(512, model's max positions)
};

// Errors (as Status, never exceptions): missing/corrupt file, unsupported op/domain/dtype,
// subgraph attributes, missing or short external data, failed shape inference.
Result<std::unique_ptr<ir::Graph>> import_onnx(const std::string& path, const ImportOptions& opts);

}  // namespace kiln::frontend

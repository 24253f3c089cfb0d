// The pass pipeline: ONNX-level graph -> runtime op set (the contract in docs/architecture.md).
#pragma once

#include <functional>
#include <string>

#include "compiler/ir/graph.h"

namespace kiln::passes {

struct PipelineOptions {
  // Called after each pass (for `kiln compile --dump-ir`).
  std::function<void(const std::string& pass_name, const ir::Graph&)> after_pass;
};

Status run_pipeline(ir::Graph& g, const PipelineOptions& opts = {});

// Checks the "Contract of the pass pipeline's output"; the error names the first violation.
Status check_pipeline_output(const ir::Graph& g);

}  // namespace kiln::passes

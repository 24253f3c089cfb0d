// The pass pipeline: ONNX-level graph -> runtime op set (the contract in docs/architecture.md).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "compiler/ir/graph.h"

namespace kiln::passes {

struct PipelineOptions {
  // Called after each pass (for `kiln compile --dump-ir`).
  std::function<void(const std::string& pass_name, const ir::Graph&)> after_pass;
};

// What one fusion did: `fused` nodes of kiln op `op` made from `replaced` nodes (the nodes that
// disappeared plus the fused ones; helper nodes a fusion adds count against it).
struct FusionCount {
  std::string op;
  int fused = 0;
  int replaced = 0;
};

struct PipelineReport {
  std::vector<FusionCount> fusions;  // in pipeline order, only those that fired
};

Result<PipelineReport> run_pipeline(ir::Graph& g, const PipelineOptions& opts = {});

// Warnings for what the fast paths missed in a pipeline's output: a MatMul by a constant weight
// (a generic MatMul: no packed GEMM, no INT8) and a softmax over MatMul scores (attention left
// unfused: it materialises the [B, heads, S, S] scores).
std::vector<std::string> unfused_warnings(const ir::Graph& g);

// Checks the "Contract of the pass pipeline's output"; the error names the first violation.
Status check_pipeline_output(const ir::Graph& g);

}  // namespace kiln::passes

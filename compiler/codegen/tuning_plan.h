// `kiln compile --tuning-log`: the tuned schedules codegen builds into model.so (emit_node's
// Dense, through kernels/gemm/tuned.h) and what model.json "tuning" records. Made by the compile
// driver from the tuning log (compiler/tune/tuning_log.h).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "compiler/ir/graph.h"
#include "compiler/tune/tuning_log.h"

namespace kiln::codegen {

struct TuningPlan {
  std::string cpu_key, cpu_name;  // model.so uses the rows only on a CPU with this key
  std::string log_file, log_sha256, runner;
  int threads = 0;
  std::map<const ir::Node*, std::vector<tune::TunedRow>> nodes;  // tuned Dense nodes only
};

}  // namespace kiln::codegen

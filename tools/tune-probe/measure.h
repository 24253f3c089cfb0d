// The timing side of kiln-tune-probe: runs a parsed task's candidates on the GEMM drivers
// (driver.h, s8_driver.h) and reports their times and their difference from the default. This is
// the only translation unit of the probe that compiles kernels; it is built with model.so's FP
// flags (-ffp-contract=fast -fno-math-errno) so the kernels are the ones model.so runs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kiln/backend.h"
#include "request.h"

namespace kiln::tune_probe {

struct TimingOptions {
  double min_time_ms = 300;  // keep running rounds until this much time has passed ...
  int max_rounds = 200;      // ... or this many rounds ran (at least 5 rounds unless this is less)
};

// Every variant built into the probe, per op in table order, and the one dispatch picks here:
// {"dense_f32": [{"name", "kernel", "tile", "needs", "supported", "schedule"}, ...], ...} and
// {"dense_f32": "avx512", "dense_s8": "avx512vnni"}.
nlohmann::json variants_json();
nlohmann::json defaults_json();

// {"id", "candidates": [...]} or {"id", "error"} (protocol in probe.h). Never throws: a failed
// allocation is the task's error.
nlohmann::json measure_task(const TaskRequest& task, const kiln_backend* be,
                            const TimingOptions& options);

}  // namespace kiln::tune_probe

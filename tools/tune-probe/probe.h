// kiln-tune-probe: the one program `kiln tune` runs on the target (locally, over ssh, under qemu).
// It reads one JSON request on stdin, times GEMM schedules with the kernels built into it, and
// writes one JSON answer on stdout (nothing else goes to stdout; messages go to stderr).
//
// Request (protocol "kiln-tune-probe/1"; every field but "protocol" optional):
//   {"protocol": "kiln-tune-probe/1", "threads": 2, "cpus": [0, 1], "min_time_ms": 300,
//    "max_rounds": 200,
//    "tasks": [{"id": "t0", "op": "dense_f32" | "dense_s8", "M": 128, "N": 2304, "K": 768,
//               "bias": true, "gelu": false, "residual": false, "layer_norm": false,
//               "weight_group": 0 (dense_s8: K rows per weight scale, 0 = per channel),
//               "candidates": [{"variant": "avx512", "mr": 14, "panels": 2, "mc": 112, "kc": 0,
//                               "nc": 0, "threads": 0, "prefetch": 1}, ...]}]}
//   No tasks: identify only. cpus: pin the process (and so the pool's threads) to these cores.
//   threads: default = the CPUs the process may run on. A candidate's missing schedule fields
//   take its variant's default; candidate 0 should be the default (the others are checked
//   against it).
// Answer:
//   {"protocol", "kiln_version", "cpu": {cpu_identity.h's fields}, "threads", "cpus",
//    "cache": {"l1d", "l2", "l3"} (bytes, 0 = unknown), "variants": {"dense_f32": [rows in
//    table order], "dense_s8": [...]}, "default": {"dense_f32": name, "dense_s8": name},
//    "results": [{"id", "op", "weight_group" (when not 0), "candidates": [{"variant", "schedule",
//    "median_ns", "min_ns", "max_ns", "spread", "runs", "max_rel_diff"} | {"error"}]} | {"id",
//    "op", "error"}]}
// Exit status: 0 answered (some tasks or candidates may carry an "error"); 2 the request was
// refused (malformed JSON, wrong protocol, a bad top-level field, a cpu that is not available),
// answered with {"protocol", "error"} and the message on stderr; 1 an internal failure.
#pragma once

#include <iosfwd>

namespace kiln::tune_probe {

int tune_probe_main(std::istream& in, std::ostream& out, std::ostream& err);

}  // namespace kiln::tune_probe

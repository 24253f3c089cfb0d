// `kiln tune` (issue 14): the command line (tune_cmd.cpp: parsing, the probe's location, the
// runner, --identify) and the tuning run itself (run_tuning, tune_run.cpp).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "compiler/tune/runner.h"
#include "tools/kiln/quantize_args.h"

namespace kiln::tools {

// Everything `kiln tune` parsed, checked and resolved (paths absolute where they matter).
struct TuneArgs {
  std::string model;                // MODEL.onnx ("" only with --identify)
  std::string target = "native";    // a compiler/target preset name
  std::string target_arch;          // its architecture: "x86_64" | "aarch64"
  std::string runner = "local";     // local | ssh://[user@]host[:port] | qemu:<cpu> (tests)
  std::string probe;                // kiln-tune-probe for the target (found if not given)
  std::string ssh_config;           // -F FILE for ssh and scp ("" = the user's own)
  std::string budget = "5m";        // as given
  double budget_seconds = 300;      // parsed: 90s, 5m, 1h (a bare number is seconds)
  std::vector<int64_t> seq;         // sequence lengths to tune for (empty: the search's default)
  std::vector<int64_t> batch;       // batch sizes to tune for (empty: the search's default)
  std::vector<int> threads;         // the model's thread count (one; empty: the probe's cores)
  std::string cpus;                 // as given, e.g. "0-3" or "4,5" ("" = not pinned)
  std::vector<int> cpu_list;        // cpus expanded: the cores the probe is pinned to
  QuantizeArgs int8;                // as kiln compile will be given: the artifact's GEMMs
  std::string tokenizer, vocab;     // the tokenizer of --calibrate FILE.txt (tokenizer.json, vocab)
  bool cased = false;               // --vocab is cased
  std::string output;               // -o tuning.json
  bool identify = false;            // only ask the probe who it runs on
  bool json = false;                // --identify: print the probe's raw JSON response
  bool verbose = false;             // print every candidate's time
  int probe_timeout_seconds = 900;  // per probe run (KILN_TUNE_PROBE_TIMEOUT, for tests)
};

// `kiln tune ...`: argv after the command name. Returns the process exit code.
int tune_main(int argc, char** argv);

// ---- The tuning run: search, tuning log and its output (tune_run.cpp, the lead's part). ----
// Called with a connected runner for a.target; prints progress and errors ("kiln tune: error:
// ...") itself. Returns the process exit code. SIGINT/SIGTERM only set a flag while it runs
// (kiln::tune::interrupted(), compiler/tune/process.h; the probe run in progress is killed and
// fails with "interrupted"): a long loop outside the runner should check it and return 130, so
// that the runner's destructor still cleans up the board.
int run_tuning(const TuneArgs& a, kiln::tune::Runner& runner);

}  // namespace kiln::tools

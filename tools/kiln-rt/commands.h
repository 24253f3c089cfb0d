// kiln-rt's commands as a library, so the compiler CLI can forward `kiln run|bench|inspect`.
// rt_main (cli.cpp) parses the command line with CLI11 into one of the argument structs below and
// runs that command (commands.cpp).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "kiln/runtime.hpp"

namespace kiln::tools {

// argv[1] is the subcommand: run, bench, embed, serve or inspect (see `kiln-rt --help`). Returns
// the exit code (CLI11's for a bad command line); errors go to stderr prefixed "kiln-rt: error: ".
int rt_main(int argc, char** argv);

// 0 threads: KILN_NUM_THREADS or the number of cores.
struct RunArgs {
  std::string dir;
  std::vector<std::pair<std::string, std::string>> inputs;  // --input NAME=FILE.npy
  std::vector<std::string> texts;                           // --text, for the packed tokenizer
  std::string output_dir = ".";
  int threads = 0;
  bool verbose = false;
};

struct BenchArgs {
  std::string dir;
  int64_t batch = 1;
  int64_t seq = 0;  // 0: min(128, compiled maximum)
  int threads = 0;
  int64_t runs = 20;
  int64_t warmup = 3;
  bool profile = false;
  bool json = false;
};

struct EmbedArgs {
  std::string dir;
  std::vector<std::string> texts;  // --text, in order
  std::string file;                // --file: one text per line, after the --text ones
  int threads = 0;
  int max_batch = 0;  // 0: kiln_model_embed's default
  bool json = false;
};

// kiln-rt serve (serve/server.cpp). Limits: see `kiln-rt serve --help`.
struct ServeArgs {
  std::string dir;
  std::string host = "127.0.0.1";
  int port = 8080;  // 0: any free port (printed)
  int threads = 0;  // the model's threads
  int http_threads = 16;
  std::string api_key_file;
  std::string model_name;  // "": the artifact directory's name
  int64_t max_body = 4 << 20;
  int64_t max_inputs = 256;
  int64_t max_input_bytes = 256 << 10;
  int64_t max_queue = 256;
  int64_t batch_tokens = 8192;
  // Texts per model run. kiln_model_embed's default (up to 32) padded a micro-batch of ~14 mixed
  // texts to 3.25x its tokens; runs of 4 pad to 1.47x and served 2.1x the requests/s (MiniLM
  // shape, 1 thread; docs/measurements.md).
  int max_batch = 4;
  int timeout = 10;  // seconds a client may stay silent while sending or receiving
};

struct InspectArgs {
  std::string dir;
  bool json = false;
};

// Each returns the exit code and throws std::runtime_error (kiln::Error among them) on bad input
// or a failed run.
int cmd_run(const RunArgs& a);
int cmd_bench(const BenchArgs& a);
int cmd_inspect(const InspectArgs& a);
int cmd_embed(const EmbedArgs& a);
int cmd_serve(const ServeArgs& a);  // returns when SIGINT or SIGTERM arrives

// Loads the artifact for a text command (embed, serve): throws "COMMAND: this artifact has no
// tokenizer (...)" when it has none.
Model load_text_model(const std::string& dir, int threads, const char* command);

}  // namespace kiln::tools

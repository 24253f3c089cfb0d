// kiln-rt's command line: run, bench, embed, serve and inspect with their options and help, parsed
// by CLI11 (header-only, compiled in; the compiler CLI `kiln` uses it too) into commands.h's
// arguments.
#include <CLI/CLI.hpp>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

#include "commands.h"
#include "kiln/kernels/gemm/variant_names.h"

namespace kiln::tools {
namespace {

// A decimal integer in [lo, hi], handed on to CLI11 in canonical form (CLI11 alone would read
// "010" as octal). The message keeps kiln-rt's wording: "--threads: expected an integer in
// [1, 1024], got 'x'".
CLI::Validator int_in(int64_t lo, int64_t hi) {
  return CLI::Validator(
      [lo, hi](std::string& v) {
        char* end = nullptr;
        errno = 0;
        const int64_t x = std::strtoll(v.c_str(), &end, 10);
        if (v.empty() || *end != '\0' || errno != 0 || x < lo || x > hi)
          return "expected an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) +
                 "], got '" + v + "'";
        v = std::to_string(x);
        return std::string();
      },
      "");
}

// A command on one artifact, `kiln-rt NAME [OPTIONS] DIR`; its --help ends with the footer.
CLI::App* add_command(CLI::App& app, const char* name, const char* description, const char* footer,
                      std::string* dir) {
  CLI::App* cmd = app.add_subcommand(name, description);
  cmd->footer(footer);
  cmd->add_option("DIR", *dir, "artifact directory")->required();
  return cmd;
}

void add_threads(CLI::App* cmd, int* threads) {
  cmd->add_option("--threads", *threads,
                  "threads (default: KILN_NUM_THREADS or the number of cores)")
      ->transform(int_in(1, 1024));
}

CLI::App* add_run(CLI::App& app, RunArgs* a) {
  CLI::App* cmd = add_command(
      app, "run", "run a kiln artifact on .npy inputs",
      "Loads the artifact in DIR (model.json, model.so, model.params), sets each input from a\n"
      ".npy file (float32/int64/int32/bool/int8/uint8, C order; int32 is accepted for int64\n"
      "inputs), runs once and writes NAME.npy for every output to --output-dir. Prints each\n"
      "output's name, shape, dtype and checksums: sum = sum of elements, sum_abs = sum of\n"
      "absolute values.",
      &a->dir);
  cmd->add_option_function<std::vector<std::string>>(
         "--input",
         [a](const std::vector<std::string>& values) {
           for (const std::string& v : values) {
             const size_t eq = v.find('=');
             a->inputs.emplace_back(v.substr(0, eq), v.substr(eq + 1));
           }
         },
         "the value of input NAME, a .npy file; one --input for every model input")
      ->type_name("NAME=FILE")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
      ->allow_extra_args(false)
      ->check(
          [](const std::string& v) {
            const size_t eq = v.find('=');
            return eq == std::string::npos || eq == 0 || eq + 1 == v.size()
                       ? "expects NAME=FILE.npy, got '" + v + "'"
                       : std::string();
          },
          "");
  cmd->add_option("--text", a->texts,
                  "a text for the packed tokenizer (artifacts compiled with --tokenizer or\n"
                  "--vocab); repeat for a batch: sets input_ids, attention_mask and\n"
                  "token_type_ids, padded to the longest (too long: truncated, warning)")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
      ->allow_extra_args(false);
  cmd->add_option("--output-dir", a->output_dir,
                  "where to write outputs (default \".\"; created if missing)");
  add_threads(cmd, &a->threads);
  cmd->add_flag(
      "--verbose", a->verbose,
      std::string("print load/run times, the bound shapes and the kernel variants\n"
                  "model.so picked; KILN_GEMM_VARIANT=NAME and KILN_GEMM_S8_VARIANT=NAME\n"
                  "force one when this CPU and target allow it (FP32 NAME:") +
          kernels::gemm::kGemmF32VariantNames +
          ";\nINT8 NAME:" + kernels::gemm::kGemmS8VariantNames + ")");
  return cmd;
}

CLI::App* add_bench(CLI::App& app, BenchArgs* a) {
  CLI::App* cmd = add_command(
      app, "bench", "time runs on generated inputs",
      "Generates valid inputs (int inputs: *mask* = 1, *type* = 0, others ids in [0, 100); float\n"
      "inputs uniform in [-1, 1); bool inputs true), runs --warmup untimed then --runs timed runs\n"
      "and prints median/min/mean/max milliseconds.",
      &a->dir);
  cmd->add_option("--batch", a->batch, "value of symbol 'batch' (default 1)")
      ->transform(int_in(1, 1 << 20));
  cmd->add_option("--seq", a->seq,
                  "value of symbol 'seq' and other symbols (default min(128, compiled max))")
      ->transform(int_in(1, 1 << 24));
  add_threads(cmd, &a->threads);
  cmd->add_option("--runs", a->runs, "timed runs (default 20)")->transform(int_in(1, 1000000));
  cmd->add_option("--warmup", a->warmup, "untimed runs first (default 3)")
      ->transform(int_in(0, 1000000));
  cmd->add_flag("--profile", a->profile,
                "time every node during the timed runs (also on with KILN_PROFILE=1) and\n"
                "print ms per run by op type and the 10 slowest nodes");
  cmd->add_flag("--json", a->json,
                "print one JSON object: median_ms, min_ms, mean_ms, max_ms, runs, warmup,\n"
                "threads, batch, seq, target (and profile, see kiln_model_profile)");
  return cmd;
}

CLI::App* add_embed(CLI::App& app, EmbedArgs* a) {
  CLI::App* cmd = add_command(
      app, "embed", "sentence embeddings of texts",
      "Tokenizes the texts with the artifact's tokenizer, runs them in batches of similar\n"
      "length, pools (model.json \"pooling\": kiln compile --pooling, or a [batch, dim]\n"
      "output) and L2-normalises when the artifact says so. Prints one line per text, the\n"
      "vector's values separated by spaces, in input order (--json: one JSON object).",
      &a->dir);
  cmd->add_option("--text", a->texts, "a text; repeat for more")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
      ->allow_extra_args(false);
  cmd->add_option("--file", a->file,
                  "a UTF-8 file with one text per line (after the --text ones; every line\n"
                  "counts, empty ones too; a trailing newline ends the last line)");
  add_threads(cmd, &a->threads);
  cmd->add_option("--max-batch", a->max_batch,
                  "texts per run (default: as many as keep the arena under 128 MiB, <= 32)")
      ->transform(int_in(1, 1 << 20));
  cmd->add_flag("--json", a->json,
                "print {\"dim\", \"embeddings\": [[...], ...], \"tokens\", \"padded_tokens\",\n"
                "\"runs\", \"truncated\", \"ms\"}");
  return cmd;
}

CLI::App* add_serve(CLI::App& app, ServeArgs* a) {
  CLI::App* cmd = add_command(
      app, "serve", "sentence embeddings over HTTP",
      "Serves the artifact's embeddings (as `kiln-rt embed`) over HTTP/1.1:\n"
      "  POST /v1/embeddings  OpenAI: {\"input\": str | [str], \"model\"?, \"encoding_format\"?:\n"
      "                       \"float\" | \"base64\"} -> {\"data\": [{\"embedding\", ...}], "
      "\"usage\"}\n"
      "  POST /embed          text-embeddings-inference: {\"inputs\": str | [str], "
      "\"normalize\"?,\n"
      "                       \"truncate\"?} -> [[...], ...]\n"
      "  GET /health, GET /metrics (Prometheus text)\n"
      "Requests are queued (--max-queue, then 503) and one thread runs the model on\n"
      "micro-batches of them (--batch-tokens). Texts longer than the compiled maximum are\n"
      "truncated (TEI \"truncate\": false: 413). Bad requests get a 4xx with a JSON error.\n"
      "Binds 127.0.0.1 unless --host says otherwise; SIGINT / SIGTERM stop it.",
      &a->dir);
  cmd->add_option("--host", a->host, "address to listen on (default 127.0.0.1; 0.0.0.0: all)");
  cmd->add_option("--port", a->port, "port (default 8080; 0: any free one, printed)")
      ->transform(int_in(0, 65535));
  add_threads(cmd, &a->threads);
  cmd->add_option("--http-threads", a->http_threads,
                  "connections served at once (default 16; each open connection holds one)")
      ->transform(int_in(1, 1024));
  cmd->add_option("--api-key-file", a->api_key_file,
                  "require `Authorization: Bearer KEY` (KEY: the file's first line) on every\n"
                  "endpoint but /health");
  cmd->add_option("--model-name", a->model_name,
                  "the model name answers carry (default: DIR's name)");
  cmd->add_option("--max-body", a->max_body, "request body bytes (default 4194304)")
      ->transform(int_in(64, int64_t{1} << 30));
  cmd->add_option("--max-inputs", a->max_inputs, "texts per request (default 256)")
      ->transform(int_in(1, 1 << 20));
  cmd->add_option("--max-input-bytes", a->max_input_bytes, "UTF-8 bytes per text (default 262144)")
      ->transform(int_in(1, int64_t{1} << 30));
  cmd->add_option("--max-queue", a->max_queue, "requests waiting for the model (default 256)")
      ->transform(int_in(1, 1 << 20));
  cmd->add_option("--batch-tokens", a->batch_tokens,
                  "tokens per micro-batch, estimated from text bytes (default 8192; a request\n"
                  "is never split, so one larger request makes a batch alone)")
      ->transform(int_in(1, int64_t{1} << 30));
  cmd->add_option("--max-batch", a->max_batch,
                  "texts per model run (default 4: a micro-batch's texts sorted by length,\n"
                  "4 to a run, pad little; the arena is sized for it at start)")
      ->transform(int_in(1, 1 << 16));
  cmd->add_option("--timeout", a->timeout,
                  "seconds a client may stay silent mid-request (default 10)")
      ->transform(int_in(1, 3600));
  return cmd;
}

CLI::App* add_inspect(CLI::App& app, InspectArgs* a) {
  CLI::App* cmd = add_command(
      app, "inspect", "describe an artifact",
      "Prints the artifact's target and required CPU features (and whether this CPU has them),\n"
      "the kernel variants model.so picked on this CPU, symbols, inputs and outputs, op\n"
      "histogram, fusions, nodes, memory plan and params.",
      &a->dir);
  cmd->add_flag("--json", a->json, "print kiln_model_describe()'s JSON instead");
  return cmd;
}

// CLI11's message, except where kiln-rt says more than CLI11 can: which commands exist, and that
// DIR is the artifact directory.
std::string failure_message(const CLI::App* app, const CLI::Error& e) {
  std::string message = e.what();
  const std::vector<CLI::App*> command = app->get_subcommands();
  const std::vector<std::string> rest = app->remaining();
  if (command.empty()) {
    message = (rest.empty() ? "missing command" : "unknown command '" + rest.front() + "'") +
              " (expected run, bench, embed, serve or inspect)";
  } else if (e.get_name() == "RequiredError" && command[0]->get_option("DIR")->count() == 0) {
    message = command[0]->get_name() + ": missing artifact directory DIR";
  }
  return "kiln-rt: error: " + message + "\nRun with --help for more information.\n";
}

}  // namespace

int rt_main(int argc, char** argv) {
  CLI::App app{
      "kiln-rt: run, benchmark and inspect kiln artifacts, embed texts, serve embeddings over HTTP "
      "(libkiln_runtime only)",
      "kiln-rt"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("kiln-rt ") + KILN_VERSION);
  app.footer("`kiln-rt COMMAND --help` shows a command's options.");
  app.failure_message(failure_message);
  // A repeated option: the last one counts (--input and --text collect every one).
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  RunArgs run;
  BenchArgs bench;
  InspectArgs inspect;
  EmbedArgs embed;
  ServeArgs serve;
  CLI::App* run_cmd = add_run(app, &run);
  CLI::App* bench_cmd = add_bench(app, &bench);
  CLI::App* embed_cmd = add_embed(app, &embed);
  CLI::App* serve_cmd = add_serve(app, &serve);
  add_inspect(app, &inspect);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    if (*run_cmd) return cmd_run(run);
    if (*bench_cmd) return cmd_bench(bench);
    if (*embed_cmd) return cmd_embed(embed);
    if (*serve_cmd) return cmd_serve(serve);
    return cmd_inspect(inspect);
  } catch (const std::exception& e) {  // kiln::Error, a bad input or output file, ...
    std::fprintf(stderr, "kiln-rt: error: %s\n", e.what());
    return 1;
  }
}

}  // namespace kiln::tools

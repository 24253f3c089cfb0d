// `kiln`: the compiler CLI on the PC. `kiln compile` turns an ONNX model into an artifact
// directory; `kiln run|bench|inspect` are the same commands as the board's `kiln-rt`.
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <string>

#include "compiler/codegen/emit_artifact.h"
#include "compiler/frontend/onnx/import.h"
#include "compiler/ir/printer.h"
#include "compiler/passes/pipeline.h"
#include "compiler/quantize/quantize.h"
#include "compiler/target/target.h"
#include "compiler/util/sha256.h"
#include "tools/kiln-rt/commands.h"
#include "tools/kiln/bench_compare.h"
#include "tools/kiln/bundle.h"
#include "tools/kiln/compile.h"
#include "tools/kiln/pack_vocab.h"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

using kiln::tools::CompileArgs;

int fail(const std::string& message) {
  std::fprintf(stderr, "kiln: error: %s\n", message.c_str());
  return 1;
}

// What model.json's "quantization" says about an INT8 artifact (see compiler/quantize).
kiln::codegen::QuantizationMetadata int8_metadata(const kiln::quantize::QuantizeReport& r) {
  kiln::codegen::QuantizationMetadata m;
  m.mode = "int8-dynamic";
  m.weights = "per-channel symmetric int8";
  m.activations =
      "per-row (per-token) asymmetric int8 computed at run time from each row's min/max, int32 "
      "accumulation, dequantized to float32 before bias/GELU/residual";
  m.excluded = r.excluded;
  return m;
}

}  // namespace

int kiln::tools::compile(const CompileArgs& a) {
  auto t0 = Clock::now();
  if (a.quantize != "none" && a.quantize != "int8")
    return fail("unknown --quantize value '" + a.quantize + "' (expected int8 or none)");
  if (a.quantize == "none" && !a.quantize_exclude.empty())
    return fail("--quantize-exclude needs --quantize int8");
  auto target = kiln::target::target_from_name(a.target);
  if (!target) return fail(target.status().message());
  if (a.cased && a.vocab.empty()) return fail("--cased describes a vocabulary: give --vocab too");
  if (!a.bundle.empty())  // fail before compiling when the board's runtime is missing
    if (auto s = kiln::tools::check_bundle_inputs(target.value().arch); !s)
      return fail("--bundle: " + s.message());

  kiln::frontend::ImportOptions import_opts;
  import_opts.max_seq = a.max_seq;
  auto graph = kiln::frontend::import_onnx(a.model, import_opts);
  if (!graph) return fail(graph.status().message());
  kiln::ir::Graph& g = *graph.value();
  size_t onnx_nodes = g.nodes().size();
  if (a.dump_ir) std::cout << "=== after import ===\n" << kiln::ir::print_graph(g) << "\n";
  double t_import = seconds_since(t0);

  kiln::passes::PipelineOptions pipeline;
  if (a.dump_ir)
    pipeline.after_pass = [](const std::string& pass, const kiln::ir::Graph& graph) {
      std::cout << "=== after " << pass << " ===\n" << kiln::ir::print_graph(graph) << "\n";
    };
  auto t1 = Clock::now();
  if (auto s = kiln::passes::run_pipeline(g, pipeline); !s)
    return fail(a.model + ": " + s.message());
  kiln::codegen::QuantizationMetadata quantization;
  size_t quantized_layers = 0, quantized_tables = 0;
  if (a.quantize == "int8") {
    auto report = kiln::quantize::quantize_int8(g, {a.quantize_exclude});
    if (!report) return fail(a.model + ": quantize: " + report.status().message());
    for (const auto& w : report->warnings) std::fprintf(stderr, "kiln: warning: %s\n", w.c_str());
    quantized_layers = report->quantized.size();
    quantized_tables = report->embeddings.size();
    if (quantized_layers + quantized_tables > 0) quantization = int8_metadata(*report);
    if (a.dump_ir) std::cout << "=== after quantize_int8 ===\n" << kiln::ir::print_graph(g) << "\n";
  }
  if (a.model_outputs)
    for (const auto* v : g.outputs) a.model_outputs->push_back(v->name);
  if (a.expose_dense_outputs)
    for (const auto& n : g.nodes())
      if (n->op == "Dense" && !g.is_graph_output(n->outputs[0])) g.outputs.push_back(n->outputs[0]);
  double t_passes = seconds_since(t1);

  auto hash = kiln::util::sha256_file(a.model);
  if (!hash) return fail(hash.status().message());

  kiln::codegen::CodegenOptions cg;
  cg.output_dir = a.output_dir;
  cg.target = target.value();
  cg.source_path = fs::path(a.model).filename().string();
  cg.source_sha256 = hash.value();
  cg.jobs = a.jobs;
  cg.quantization = quantization;
  auto t2 = Clock::now();
  std::error_code ec;
  fs::create_directories(a.output_dir, ec);
  if (ec) return fail(a.output_dir + ": cannot create directory: " + ec.message());
  if (auto s = kiln::codegen::emit_artifact(g, cg); !s) return fail(s.message());
  if (!a.vocab.empty())
    if (auto s = kiln::tools::pack_vocab(a.output_dir, a.vocab, !a.cased); !s)
      return fail(s.message());
  double t_codegen = seconds_since(t2);
  if (a.quiet) return 0;

  std::map<std::string, int> ops;
  for (auto& n : g.nodes()) ops[n->op]++;
  std::printf("kiln: compiled %s for %s (%s) -> %s\n", a.model.c_str(), cg.target.name.c_str(),
              cg.target.arch.c_str(), a.output_dir.c_str());
  std::printf("  graph: %zu ONNX nodes -> %zu nodes:", onnx_nodes, g.nodes().size());
  for (auto& [op, count] : ops) std::printf(" %s:%d", op.c_str(), count);
  std::printf("\n  symbols:");
  for (auto& s : g.symbols)
    std::printf(" %s (max %s)", s.name.c_str(),
                s.max ? std::to_string(s.max).c_str() : "unbounded");
  std::printf("\n  files:");
  for (const char* f : {"model.json", "model.so", "model.params"}) {
    auto size = fs::file_size(fs::path(a.output_dir) / f, ec);
    std::printf(" %s %.2f MB", f, ec ? 0.0 : size / 1e6);
  }
  std::printf("\n  time: import %.2f s, passes %.2f s, codegen+build %.2f s, total %.2f s\n",
              t_import, t_passes, t_codegen, seconds_since(t0));
  if (!quantization.mode.empty())
    std::printf("  quantization: int8 (%zu Dense layers, %zu embedding tables; %zu excluded)\n",
                quantized_layers, quantized_tables, quantization.excluded.size());
  if (!a.vocab.empty())
    std::printf("  tokenizer: %s (%s)\n", a.vocab.c_str(), a.cased ? "cased" : "lower-case");
  if (!a.bundle.empty()) {
    uint64_t bytes = 0;
    if (auto s = kiln::tools::make_bundle({a.output_dir, a.bundle, cg.target.name, cg.target.arch},
                                          &bytes);
        !s)
      return fail("--bundle: " + s.message());
    std::printf("  bundle: %s (%.1f MB)\n", a.bundle.c_str(), bytes / 1e6);
  }
  return 0;
}

int main(int argc, char** argv) {
  if (argc >= 2) {
    std::string cmd = argv[1];
    if (cmd == "bench" && kiln::tools::wants_compare(argc, argv))
      return kiln::tools::bench_compare_main(argc, argv);
    if (cmd == "run" || cmd == "bench" || cmd == "inspect") return kiln::tools::rt_main(argc, argv);
    if (cmd == "quant-report") return kiln::tools::quant_report_main(argc - 1, argv + 1);
  }
  CLI::App app{"kiln: compile PyTorch transformers (ONNX) into fast artifacts for x86 and aarch64"};
  app.require_subcommand(1);
  CompileArgs a;
  auto* c = app.add_subcommand("compile", "compile MODEL.onnx into an artifact directory");
  c->add_option("model", a.model, "ONNX model file")->required();
  c->add_option("-o,--output", a.output_dir, "output directory")->required();
  c->add_option("--target", a.target,
                "native | x86-64-v3 | x86-64-v4 | aarch64 | rpi4 | rpi5 (default native)");
  c->add_option("--max-seq", a.max_seq,
                "compiled maximum sequence length (default: min(512, model's max positions))");
  c->add_flag("--dump-ir", a.dump_ir, "print the graph after import and after each pass");
  c->add_option("-j,--jobs", a.jobs, "parallel C++ compiler processes (default 2)");
  c->add_option("--vocab", a.vocab,
                "BERT vocab.txt: pack a WordPiece tokenizer (kiln-rt run --text, m.encode)");
  c->add_flag("--cased", a.cased, "the vocabulary is cased (default: lower-case + strip accents)");
  c->add_option("--bundle", a.bundle,
                "also write OUT.tar.gz: artifact + the target's runtime + infer.py for the board");
  c->add_option("--quantize", a.quantize,
                "int8: INT8 dynamic quantization of the weight GEMMs and embedding tables "
                "(default none)");
  c->add_option("--quantize-exclude", a.quantize_exclude,
                "keep layers whose node or weight name matches this glob (* and ?) in FP32; "
                "repeatable")
      ->allow_extra_args(false);
  app.add_subcommand("quant-report",
                     "per-layer INT8 vs FP32 accuracy (kiln quant-report MODEL.onnx --help)");
  app.add_subcommand("run", "run an artifact on .npy inputs (same as kiln-rt run)");
  app.add_subcommand("bench",
                     "time an artifact (same as kiln-rt bench); bench --compare "
                     "torch,onnxruntime,tvm[,ort-int8,torch-int8] [--config base --seq 16,128 "
                     "--threads 1,2 --rounds 3]: kiln vs peers side by side (bench/compare.py)");
  app.add_subcommand("inspect", "describe an artifact (same as kiln-rt inspect)");
  CLI11_PARSE(app, argc, argv);
  return kiln::tools::compile(a);
}

// `kiln`: the compiler CLI on the PC. `kiln compile` turns an ONNX model into an artifact
// directory; `kiln run|bench|inspect` are the same commands as the board's `kiln-rt`.
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <string>

#include "compiler/driver/compile.h"
#include "compiler/ir/ops.h"
#include "compiler/ir/printer.h"
#include "compiler/quantize/weight_groups.h"
#include "compiler/target/target.h"
#include "kiln/kernels/gemm/s8_pack.h"
#include "runtime/tokenizer.h"
#include "runtime/tokenizer_json.h"
#include "tools/kiln-rt/commands.h"
#include "tools/kiln/bench_compare.h"
#include "tools/kiln/bundle.h"
#include "tools/kiln/calibration_file.h"
#include "tools/kiln/compile.h"
#include "tools/kiln/pack_pooling.h"
#include "tools/kiln/pack_vocab.h"
#include "tools/kiln/quantize_args.h"
#include "tools/kiln/tune_cmd.h"
#include "tools/kiln/variants.h"

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

// `kiln ops`: the op registry, as a table or (--json) for tools and the op harness.
int print_ops(bool json) {
  using namespace kiln::ir;
  if (json) std::printf("[\n");
  bool first = true;
  for (Op op : all_ops()) {
    const OpInfo& i = op_info(op);
    std::string operands;
    for (size_t k = 0; k < 32; ++k)
      if (is_shape_operand(op, k)) operands += (operands.empty() ? "" : ",") + std::to_string(k);
    if (json) {
      std::printf(
          "%s  {\"name\": \"%s\", \"kind\": \"%s\", \"min_opset\": %d, \"runtime\": %s, "
          "\"shape_operands\": [%s]}",
          first ? "" : ",\n", i.name, op_kind_name(i.kind), i.min_opset,
          i.runtime ? "true" : "false", operands.c_str());
    } else {
      std::printf("%-20s %-14s %-16s %-8s %s\n", i.name, op_kind_name(i.kind),
                  i.min_opset ? ("opset >= " + std::to_string(i.min_opset)).c_str() : "kiln's own",
                  i.runtime ? "runs" : "removed",
                  operands.empty() ? "" : ("shape operands " + operands).c_str());
    }
    first = false;
  }
  if (json) std::printf("\n]\n");
  return 0;
}

}  // namespace

int kiln::tools::compile(const CompileArgs& a) {
  auto t0 = Clock::now();
  if (const std::string e = kiln::tools::check_quantize_args(a.int8); !e.empty()) return fail(e);
  auto target = kiln::target::target_from_name(a.target);
  if (!target) return fail(target.status().message());
  if (a.cased && a.vocab.empty()) return fail("--cased describes a vocabulary: give --vocab too");
  if (!a.vocab.empty() && !a.tokenizer.empty())
    return fail("--vocab and --tokenizer both give the tokenizer: choose one");
  if (!a.pooling.empty() && !kiln::tools::is_pooling_mode(a.pooling))
    return fail("--pooling: unknown mode '" + a.pooling +
                "' (expected cls, mean, max, last or none)");
  if (!a.pooling_output.empty() && a.pooling.empty() && !a.normalize)
    return fail("--pooling-output names the output to pool: give --pooling too");
  kiln::tools::TokenizerJson tokenizer;  // read before compiling: a bad file fails fast
  if (!a.tokenizer.empty())
    if (auto s = kiln::tools::read_tokenizer_json(a.tokenizer, &tokenizer); !s)
      return fail(s.message());
  if (!a.bundle.empty())  // fail before compiling when the board's runtime is missing
    if (auto s = kiln::tools::check_bundle_inputs(target.value().arch); !s)
      return fail("--bundle: " + s.message());

  kiln::CompileOptions o;
  o.model = a.model;
  o.output_dir = a.output_dir;
  o.target = a.target;
  o.max_seq = a.max_seq;
  o.jobs = a.jobs;
  o.tuning_log = a.tuning_log;
  kiln::tools::QuantizeSetup quantize;
  if (auto st =
          quantize.apply(a.int8, a.tokenizer.empty() ? nullptr : &tokenizer, a.vocab, a.cased, &o);
      !st)
    return fail(st.message());
  o.expose_dense_outputs = a.expose_dense_outputs;
  if (a.dump_ir)
    o.after_stage = [](const std::string& stage, const kiln::ir::Graph& g) {
      std::cout << "=== after " << stage << " ===\n" << kiln::ir::print_graph(g) << "\n";
    };
  auto report = kiln::compile(o);
  if (!report) return fail(report.status().message());
  const kiln::CompileReport& r = report.value();
  for (const auto& w : r.warnings) std::fprintf(stderr, "kiln: warning: %s\n", w.c_str());
  if (a.model_outputs) *a.model_outputs = r.model_outputs;
  if (!a.vocab.empty())
    if (auto s = kiln::tools::pack_vocab(a.output_dir, a.vocab, !a.cased); !s)
      return fail(s.message());
  if (!a.tokenizer.empty())
    if (auto s = kiln::tools::pack_tokenizer_json(a.output_dir, tokenizer); !s)
      return fail(s.message());
  if (!a.pooling.empty() || a.normalize)
    if (auto s = kiln::tools::pack_pooling(a.output_dir, a.pooling.empty() ? "none" : a.pooling,
                                           a.normalize, a.pooling_output);
        !s)
      return fail(s.message());
  if (a.quiet) return 0;

  size_t nodes = 0;
  for (const auto& [op, count] : r.ops) nodes += count;
  std::printf("kiln: compiled %s for %s (%s) -> %s\n", a.model.c_str(), r.target.name.c_str(),
              r.target.arch.c_str(), a.output_dir.c_str());
  std::printf("  graph: %zu ONNX nodes -> %zu nodes:", r.onnx_nodes, nodes);
  for (const auto& [op, count] : r.ops) std::printf(" %s:%d", op.c_str(), count);
  std::printf("\n  fusions:");
  if (r.fusions.empty()) std::printf(" none");
  for (size_t i = 0; i < r.fusions.size(); ++i)
    std::printf("%s %s %d (from %d nodes)", i ? "," : "", r.fusions[i].op.c_str(),
                r.fusions[i].fused, r.fusions[i].replaced);
  std::printf("\n  symbols:");
  for (const auto& s : r.symbols)
    std::printf(" %s (max %s)", s.name.c_str(),
                s.max ? std::to_string(s.max).c_str() : "unbounded");
  std::printf("\n  files:");
  for (const char* f : {"model.json", "model.so", "model.params"}) {
    std::error_code ec;
    auto size = fs::file_size(fs::path(a.output_dir) / f, ec);
    std::printf(" %s %.2f MB", f, ec ? 0.0 : size / 1e6);
  }
  std::printf("\n  time: import %.2f s, passes %.2f s, codegen+build %.2f s, total %.2f s\n",
              r.import_seconds, r.passes_seconds, r.codegen_seconds, seconds_since(t0));
  if (a.int8.quantize == "int8")
    std::printf("  quantization: int8 (%zu Dense layers, %zu embedding tables; %zu excluded)\n",
                r.quantized_layers, r.quantized_tables, r.quantize_excluded.size());
  if (r.calibrated && !a.int8.no_smoothing)
    std::printf("  smoothing: %zu of %zu Dense layers, calibrated on %s in %.1f s\n",
                r.smoothed_layers, r.quantized_layers,
                a.int8.calibrate.empty() ? "generated inputs" : a.int8.calibrate.c_str(),
                r.calibration_seconds);
  if (const int64_t group = a.int8.weight_group.value_or(kernels::gemm::kS8WeightGroup);
      r.quantized_layers > 0 && group > 0)
    std::printf(
        "  weight groups of %lld along K: %zu of %zu Dense layers (where they cut the "
        "weight's rounding error >= %.2fx what they cut on Gaussian weights)\n",
        static_cast<long long>(group), r.grouped_layers, r.quantized_layers,
        quantize::kMinWeightGroupExcess);
  if (const auto& mp = r.mixed_precision) {
    std::printf(
        "  mixed precision: mean cosine %.6f (worst vector %.6f) for --min-cosine %g, %zu of "
        "%zu layers kept in FP32 (INT8 everywhere: %.6f); %d emulated runs\n",
        mp->chosen.mean_cosine, mp->chosen.worst_cosine, a.int8.min_cosine, mp->kept_fp32.size(),
        mp->candidates, mp->int8.mean_cosine, mp->runs);
    for (const auto& k : mp->kept_fp32)
      std::printf("    fp32: %s%s%s%s (mean cosine %.6f when only it is INT8)\n", k.name.c_str(),
                  k.name.find(k.weight) == std::string::npos ? " (" : "",
                  k.name.find(k.weight) == std::string::npos ? k.weight.c_str() : "",
                  k.name.find(k.weight) == std::string::npos ? ")" : "", k.alone_cosine);
  }
  if (!a.tuning_log.empty())
    std::printf(
        "  tuning: %zu of %zu Dense nodes use tuned schedules on %s (%s; defaults on any "
        "other CPU)\n",
        r.tuned_nodes, r.dense_nodes, r.tuning_cpu.c_str(), a.tuning_log.c_str());
  if (!a.vocab.empty())
    std::printf("  tokenizer: %s (%s)\n", a.vocab.c_str(), a.cased ? "cased" : "lower-case");
  if (!a.tokenizer.empty()) std::printf("  tokenizer: %s\n", a.tokenizer.c_str());
  if (!a.pooling.empty() || a.normalize)
    std::printf("  pooling: %s%s\n", a.pooling.empty() ? "none" : a.pooling.c_str(),
                a.normalize ? ", L2-normalised" : "");
  if (!a.bundle.empty()) {
    uint64_t bytes = 0;
    if (auto s = kiln::tools::make_bundle({a.output_dir, a.bundle, r.target.name, r.target.arch},
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
    if (cmd == "run" || cmd == "bench" || cmd == "embed" || cmd == "inspect")
      return kiln::tools::rt_main(argc, argv);
    if (cmd == "quant-report") return kiln::tools::quant_report_main(argc - 1, argv + 1);
    if (cmd == "tune") return kiln::tools::tune_main(argc - 1, argv + 1);
  }
  CLI::App app{"kiln: compile PyTorch transformers (ONNX) into fast artifacts for x86 and aarch64"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("kiln ") + KILN_VERSION);
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
  c->add_option("--tokenizer", a.tokenizer,
                "Hugging Face tokenizer.json (WordPiece, byte-level BPE or Unigram): pack it "
                "(kiln-rt run --text, m.encode)");
  c->add_option("--pooling", a.pooling,
                "sentence embeddings (kiln-rt embed, m.embed): pool the output over the tokens\n"
                "with cls | mean | max | last (padding never counted), or none for an output\n"
                "that is already [batch, dim]");
  c->add_flag("--normalize", a.normalize, "L2-normalise the embeddings (alone: --pooling none)");
  c->add_option("--pooling-output", a.pooling_output,
                "the output to pool (default last_hidden_state, or the only one that fits)");
  c->add_option("--bundle", a.bundle,
                "also write OUT.tar.gz: artifact + the target's runtime + infer.py for the board");
  kiln::tools::add_quantize_options(*c, a.int8);
  c->add_option("--tuning-log", a.tuning_log,
                "kiln tune's tuning.json: build its tuned GEMM schedules into model.so (used on "
                "the CPU it was measured on, defaults elsewhere)");
  app.add_subcommand("quant-report", "per-Dense INT8 error analysis (kiln quant-report --help)");
  app.add_subcommand("tune",
                     "tune kernel schedules on the target CPU, here or on a board over ssh "
                     "(kiln tune --help)");
  app.add_subcommand("run", "run an artifact on .npy inputs (same as kiln-rt run)");
  app.add_subcommand("bench",
                     "time an artifact (same as kiln-rt bench); bench --compare "
                     "torch,onnxruntime,tvm[,ort-int8,torch-int8] [--config base --seq 16,128 "
                     "--threads 1,2 --rounds 3]: kiln vs peers side by side (bench/compare.py)");
  app.add_subcommand("inspect", "describe an artifact (same as kiln-rt inspect)");
  bool ops_json = false;
  auto* ops = app.add_subcommand("ops", "list the ops kiln imports and runs (its op registry)");
  ops->add_flag("--json", ops_json, "as JSON");
  bool variants_json = false;
  auto* variants = app.add_subcommand(
      "variants", "list the GEMM kernel variants (KILN_GEMM_VARIANT / KILN_GEMM_S8_VARIANT)");
  variants->add_flag("--json", variants_json, "as JSON");
  CLI11_PARSE(app, argc, argv);
  if (*ops) return print_ops(ops_json);
  if (*variants) return kiln::tools::print_variants(variants_json);
  return kiln::tools::compile(a);
}

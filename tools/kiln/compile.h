// `kiln compile`'s command line: kiln::compile (compiler/driver) plus what only the CLI does
// (vocabulary, bundle, the summary), shared by the compile and quant-report commands.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "tools/kiln/quantize_args.h"

namespace kiln::tools {

struct CompileArgs {
  std::string model;
  std::string output_dir;
  std::string target = "native";
  int64_t max_seq = 0;
  bool dump_ir = false;
  int jobs = 2;
  std::string vocab;           // BERT vocab.txt to pack (tokenizer on the board)
  bool cased = false;          // the vocabulary is cased: no lower-casing / accent stripping
  std::string tokenizer;       // Hugging Face tokenizer.json to pack (instead of vocab)
  std::string pooling;         // cls | mean | max | last | none: model.json "pooling"
  bool normalize = false;      // L2-normalise the embeddings (implies --pooling none alone)
  std::string pooling_output;  // the output to pool; empty: the model's (pack_pooling.h)
  std::string bundle;          // out.tar.gz: artifact + runtime + infer.py for the board
  QuantizeArgs int8;           // --quantize and the options of the INT8 artifact
  std::string tuning_log;      // kiln tune's tuning.json: tuned schedules into model.so
  // Internal (quant-report): every Dense output becomes an extra graph output, after the
  // original outputs, named after its value.
  bool expose_dense_outputs = false;
  std::vector<std::string>* model_outputs = nullptr;  // if set: receives the original output names
  bool quiet = false;  // no summary on stdout (warnings still go to stderr)
};

// Compiles a.model into a.output_dir; prints errors ("kiln: error: ...") and warnings
// ("kiln: warning: ...") to stderr. Returns the process exit code (0 = success).
int compile(const CompileArgs& a);

// `kiln quant-report MODEL.onnx ...`: argv after the command name (quant_report_cmd.cpp); with
// --compiled, quant_report_compiled_main (quant_report.cpp) gets the rest.
int quant_report_main(int argc, char** argv);
int quant_report_compiled_main(int argc, char** argv);

}  // namespace kiln::tools

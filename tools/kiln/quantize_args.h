// The INT8 options that decide which Dense nodes run INT8 and how: `kiln compile` and `kiln tune`
// take the same ones, so that the tuner measures the GEMMs the compile builds (a layer that
// --min-cosine or --quantize-exclude keeps in FP32 is an FP32 GEMM in the artifact, and only
// weight groups the compile keeps are grouped GEMMs).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "compiler/driver/compile.h"
#include "runtime/tokenizer.h"
#include "tools/kiln/calibration_file.h"
#include "tools/kiln/pack_vocab.h"

namespace CLI {
class App;
}

namespace kiln::tools {

struct QuantizeArgs {
  std::string quantize = "none";        // none | int8 (compiler/quantize)
  std::vector<std::string> exclude;     // --quantize-exclude glob patterns
  std::string calibrate;                // .npz / .npy / .txt; empty: generated inputs
  bool no_smoothing = false;            // compiler/quantize/smooth.h off
  double min_cosine = 0;                // mixed precision (quantize/mixed_precision.h)
  std::optional<int64_t> weight_group;  // --int8-weight-group; unset: the default
};

// Registers --quantize, --quantize-exclude, --calibrate, --no-smoothing, --int8-weight-group and
// --min-cosine on `app`.
void add_quantize_options(CLI::App& app, QuantizeArgs& q);

// "" when q is consistent, else the error naming the flag ("--min-cosine needs --quantize int8").
std::string check_quantize_args(const QuantizeArgs& q);

// "" if --int8-weight-group `group` is one the INT8 GEMM takes, else the error (naming the flag).
std::string check_int8_weight_group(int64_t group);

// Puts q into the compile options, with o->calibration reading q.calibrate. A .txt is tokenized
// with the runtime's own tokenizer, from `tokenizer_json` (a read tokenizer.json, may be null) or
// `vocab` (vocab.txt, lower-cased unless `cased`); this object owns it, so it must outlive the
// compile.
class QuantizeSetup {
 public:
  QuantizeSetup() = default;
  QuantizeSetup(const QuantizeSetup&) = delete;  // o->calibration refers to this object
  QuantizeSetup& operator=(const QuantizeSetup&) = delete;
  Status apply(const QuantizeArgs& q, const TokenizerJson* tokenizer_json, const std::string& vocab,
               bool cased, CompileOptions* o);

 private:
  std::unique_ptr<rt::TextTokenizer> tokenizer_;
  TextEncoder encoder_;
};

}  // namespace kiln::tools

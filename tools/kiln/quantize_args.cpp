// kiln compile's and kiln tune's INT8 options (quantize_args.h).
#include "tools/kiln/quantize_args.h"

#include <CLI/CLI.hpp>

#include "kiln/kernels/gemm/s8_pack.h"
#include "runtime/tokenizer_json.h"

namespace kiln::tools {

void add_quantize_options(CLI::App& app, QuantizeArgs& q) {
  app.add_option("--quantize", q.quantize,
                 "int8: INT8 dynamic quantization of the weight GEMMs and embedding tables "
                 "(default none)");
  app.add_option("--quantize-exclude", q.exclude,
                 "keep layers whose node or weight name matches this glob (* and ?) in FP32; "
                 "repeatable")
      ->allow_extra_args(false);
  app.add_option("--calibrate", q.calibrate,
                 "INT8 calibration inputs: FILE.npz (numpy.savez, keys = graph input names), "
                 "FILE.npy (the first input) or FILE.txt (a text per line, first 64, with "
                 "--tokenizer / --vocab); default: generated token ids, seq 128");
  app.add_flag("--no-smoothing", q.no_smoothing,
               "INT8 without activation smoothing (outlier channels then cost accuracy)");
  app.add_option("--int8-weight-group", q.weight_group,
                 "INT8 weight scales per group of N input channels; 0 = one scale per output "
                 "channel; default " +
                     std::to_string(kernels::gemm::kS8WeightGroup));
  app.add_option("--min-cosine", q.min_cosine,
                 "INT8 mixed precision: keep the fewest layers in FP32 for the outputs' mean "
                 "per-vector cosine to FP32 on the calibration inputs to reach this, e.g. 0.9995 "
                 "(measured on an emulation of the INT8 kernels)")
      ->check(CLI::Range(1e-9, 1.0));
}

std::string check_int8_weight_group(int64_t group) {
  if (kernels::gemm::valid_s8_weight_group(group)) return "";
  return "--int8-weight-group " + std::to_string(group) + ": expected 0 (one scale per output " +
         "channel) or a multiple of 4 from 4 to " +
         std::to_string(kernels::gemm::kMaxS8WeightGroup);
}

std::string check_quantize_args(const QuantizeArgs& q) {
  if (q.quantize != "none" && q.quantize != "int8")
    return "unknown --quantize value '" + q.quantize + "' (expected int8 or none)";
  if (q.quantize == "none") {
    if (!q.exclude.empty()) return "--quantize-exclude needs --quantize int8";
    if (q.no_smoothing) return "--no-smoothing needs --quantize int8";
    if (q.min_cosine > 0) return "--min-cosine needs --quantize int8";
    if (q.weight_group) return "--int8-weight-group needs --quantize int8";
    if (!q.calibrate.empty()) return "--calibrate needs --quantize int8";
  }
  if (q.weight_group) return check_int8_weight_group(*q.weight_group);
  return "";
}

Status QuantizeSetup::apply(const QuantizeArgs& q, const TokenizerJson* tokenizer_json,
                            const std::string& vocab, bool cased, CompileOptions* o) {
  o->quantize = q.quantize;
  o->quantize_exclude = q.exclude;
  o->smooth = !q.no_smoothing;
  if (q.weight_group) o->int8_weight_group = *q.weight_group;
  o->min_cosine = q.min_cosine;
  if (q.calibrate.empty()) return Status::ok();
  const std::string& file = q.calibrate;
  if (file.size() > 4 && file.compare(file.size() - 4, 4, ".txt") == 0) {
    rt::Status s;
    if (tokenizer_json) {
      s = rt::parse_tokenizer_json(tokenizer_json->text, tokenizer_json->path, &tokenizer_);
    } else if (!vocab.empty()) {
      std::unique_ptr<rt::Tokenizer> wordpiece;
      rt::TokenizerOptions options;
      options.lower_case = !cased;
      s = rt::Tokenizer::load(vocab, options, &wordpiece);
      tokenizer_ = std::move(wordpiece);
    } else {
      return Status::error("--calibrate " + file +
                           ": a text file (one text per line) needs the tokenizer: give "
                           "--tokenizer tokenizer.json or --vocab vocab.txt");
    }
    if (!s.ok()) return Status::error(s.message);
    encoder_.pad_id = tokenizer_->pad_id();
    encoder_.encode = [this](const std::string& text, int64_t max_len) {
      return tokenizer_->encode(text, max_len, nullptr);
    };
  }
  o->calibration = [file, this](const ir::Graph& g) {
    return read_calibration_file(file, g, encoder_.encode ? &encoder_ : nullptr);
  };
  return Status::ok();
}

}  // namespace kiln::tools

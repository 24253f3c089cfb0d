// ONNX Einsum equations ("bhqd,bhkd->bhqk", "...ij,...jk->...ik", implicit "ij,jk"), resolved
// against the operands' ranks into one label per dimension. Shape inference, the evaluator and the
// importer's lowering (frontend/onnx/einsum.cpp) all read equations through this one parser.
#pragma once

#include <string>
#include <vector>

#include "compiler/ir/status.h"

namespace kiln::ir {

// Labels: letters are 0..51 ('A'..'Z' then 'a'..'z', so the implicit output's alphabetical
// order is the label order, as numpy sorts it); the dims an ellipsis stands for are
// kEllipsisLabel + j, right-aligned over all operands (numpy broadcasting of "...").
constexpr int kEllipsisLabel = 64;

struct EinsumLabels {
  std::vector<std::vector<int>> inputs;  // per operand, one label per dimension
  std::vector<int> output;               // one label per output dimension
  int ellipsis_dims = 0;                 // the widest ellipsis among the operands
};

// Resolves `equation` for operands of the given ranks; the message says what is wrong with it
// (callers prefix the node). Spaces are ignored; without "->" the output is the ellipsis dims then
// the letters that occur once, in alphabetical order.
Result<EinsumLabels> parse_einsum(const std::string& equation, const std::vector<size_t>& ranks);

// "b", "..." dim j, for messages.
std::string einsum_label_name(int label);

}  // namespace kiln::ir

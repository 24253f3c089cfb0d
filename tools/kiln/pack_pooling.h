// `kiln compile --pooling cls|mean|max|last|none [--normalize] [--pooling-output NAME]`: records
// in model.json's "pooling" section how kiln_model_embed turns the model's output into one
// vector per text (runtime/pooling.h, runtime/model_embed.cpp).
#pragma once

#include <string>

#include "compiler/ir/status.h"

namespace kiln::tools {

// The modes the runtime pools with; "none" = the output is already [batch, dim].
bool is_pooling_mode(const std::string& mode);

// Checks the output (float32, [batch, seq, dim] for a pooling mode, [batch, dim] for none, dim
// fixed) and writes {"mode", "output", "normalize"} into artifact_dir/model.json. An empty
// output picks the model's: last_hidden_state if it has one of the right rank, else its only
// float32 output of that rank.
Status pack_pooling(const std::string& artifact_dir, const std::string& mode, bool normalize,
                    const std::string& output);

}  // namespace kiln::tools

// onnx::TensorProto -> ir::Tensor: raw_data, typed fields (float_data, int64_data, ...) and
// external data files (data_location = EXTERNAL, relative to the model's directory).
#pragma once

#include <optional>
#include <string>

#include "onnx/onnx.pb.h"

#include "compiler/ir/graph.h"

namespace kiln::frontend {

// ONNX element type -> kiln dtype; nullopt for types kiln does not support (string, bf16, ...).
std::optional<ir::DType> dtype_from_proto(int32_t elem_type);
// "STRING", "BFLOAT16", ... for messages.
std::string proto_dtype_name(int32_t elem_type);

// `what` names the tensor in messages ("initializer 'w'", "attribute 'value' of node 'n'").
Result<ir::Tensor> tensor_from_proto(const onnx::TensorProto& t, const std::string& model_dir,
                                     const std::string& what);

}  // namespace kiln::frontend

// Conversion of ONNX tensors (initializers, attribute tensors) to ir::Tensor; see tensor_proto.h.
#include "compiler/frontend/onnx/tensor_proto.h"

#include <cstring>
#include <filesystem>
#include <fstream>

namespace kiln::frontend {
namespace {

using onnx::TensorProto;

template <class Src, class Dst>
void copy_converted(const Src& src, ir::Tensor& t) {
  Dst* d = t.data<Dst>();
  for (int i = 0; i < src.size(); ++i) d[i] = static_cast<Dst>(src.Get(i));
}

std::string dims_str(const TensorProto& p) {
  std::string s = "[";
  for (int i = 0; i < p.dims_size(); ++i) s += (i ? ", " : "") + std::to_string(p.dims(i));
  return s + "]";
}

// A non-negative decimal integer (external data offset / length), else -1.
int64_t parse_count(const std::string& s) {
  int64_t v = 0;
  if (s.empty()) return -1;
  for (char c : s)
    if (c < '0' || c > '9' || __builtin_mul_overflow(v, 10, &v) ||
        __builtin_add_overflow(v, c - '0', &v))
      return -1;
  return v;
}

// Reads `need` bytes into t.bytes, allocated only once the file is known to hold them.
Status read_external(const TensorProto& p, const std::string& model_dir, const std::string& what,
                     size_t need, ir::Tensor& t) {
  std::string location;
  int64_t offset = 0, length = -1;
  for (const auto& kv : p.external_data()) {
    if (kv.key() == "location") location = kv.value();
    if (kv.key() == "offset" && (offset = parse_count(kv.value())) < 0)
      return Status::error(what + ": external data offset '" + kv.value() +
                           "' is not a byte count");
    if (kv.key() == "length" && (length = parse_count(kv.value())) < 0)
      return Status::error(what + ": external data length '" + kv.value() +
                           "' is not a byte count");
  }
  if (location.empty()) return Status::error(what + ": external data without a 'location'");
  if (length >= 0 && static_cast<size_t>(length) != need)
    return Status::error(what + ": external data length " + std::to_string(length) +
                         " does not match its " + ir::dtype_name(t.dtype) + " shape (" +
                         std::to_string(need) + " bytes)");
  std::filesystem::path file = std::filesystem::path(model_dir) / location;
  std::ifstream f(file, std::ios::binary);
  if (!f) return Status::error(what + ": cannot open external data file '" + file.string() + "'");
  f.seekg(0, std::ios::end);
  int64_t size = f.tellg();
  if (size < 0 || offset > size || need > static_cast<uint64_t>(size - offset))
    return Status::error(what + ": external data file '" + file.string() + "' is too short (" +
                         std::to_string(size) + " bytes, need " + std::to_string(need) +
                         " bytes at offset " + std::to_string(offset) + ")");
  t.bytes.resize(need);
  f.seekg(offset);
  f.read(reinterpret_cast<char*>(t.bytes.data()), static_cast<std::streamsize>(need));
  if (!f) return Status::error(what + ": cannot read external data file '" + file.string() + "'");
  return Status::ok();
}

}  // namespace

std::optional<ir::DType> dtype_from_proto(int32_t elem_type) {
  switch (elem_type) {
    case TensorProto::FLOAT:
      return ir::DType::kFloat32;
    case TensorProto::INT64:
      return ir::DType::kInt64;
    case TensorProto::INT32:
      return ir::DType::kInt32;
    case TensorProto::INT8:
      return ir::DType::kInt8;
    case TensorProto::UINT8:
      return ir::DType::kUInt8;
    case TensorProto::BOOL:
      return ir::DType::kBool;
    case TensorProto::FLOAT16:
      return ir::DType::kFloat16;
    case TensorProto::DOUBLE:
      return ir::DType::kFloat64;
    default:
      return std::nullopt;
  }
}

std::string proto_dtype_name(int32_t elem_type) {
  if (!TensorProto::DataType_IsValid(elem_type)) return "unknown type " + std::to_string(elem_type);
  return TensorProto::DataType_Name(static_cast<TensorProto::DataType>(elem_type));
}

Result<ir::Tensor> tensor_from_proto(const TensorProto& p, const std::string& model_dir,
                                     const std::string& what) {
  auto dtype = dtype_from_proto(p.data_type());
  if (!dtype)
    return Status::error(what + " has unsupported dtype " + proto_dtype_name(p.data_type()));
  ir::Tensor t;
  t.dtype = *dtype;
  // The shape's size is checked against the bytes that hold the data (raw, typed or external)
  // before anything is allocated: the file bounds every tensor, whatever its dims claim.
  int64_t numel = 1, nbytes = 0;
  for (int64_t d : p.dims()) {
    if (d < 0) return Status::error(what + " has a negative dimension " + std::to_string(d));
    t.dims.push_back(d);
    if (__builtin_mul_overflow(numel, d, &numel))
      return Status::error(what + " has more than 2^63 elements (dims " + dims_str(p) + ")");
  }
  if (__builtin_mul_overflow(numel, static_cast<int64_t>(ir::dtype_size(t.dtype)), &nbytes))
    return Status::error(what + " has more than 2^63 bytes (dims " + dims_str(p) + ")");
  const size_t need = static_cast<size_t>(nbytes);
  if (p.data_location() == TensorProto::EXTERNAL) {
    KILN_RETURN_IF_ERROR(read_external(p, model_dir, what, need, t));
    return t;
  }
  if (p.has_raw_data()) {
    if (p.raw_data().size() != need)
      return Status::error(what + " has " + std::to_string(p.raw_data().size()) +
                           " bytes of raw data, its " + ir::dtype_name(t.dtype) + " shape needs " +
                           std::to_string(need));
    t.bytes.resize(need);
    if (need) std::memcpy(t.bytes.data(), p.raw_data().data(), need);  // (empty: data() is null)
    return t;
  }
  // Typed fields: int32_data also carries int8/uint8/bool/float16 (as bit patterns).
  int count = 0;
  switch (t.dtype) {
    case ir::DType::kFloat32:
      count = p.float_data_size();
      break;
    case ir::DType::kFloat64:
      count = p.double_data_size();
      break;
    case ir::DType::kInt64:
      count = p.int64_data_size();
      break;
    default:
      count = p.int32_data_size();
      break;
  }
  if (count != numel)
    return Status::error(what + " has " + std::to_string(count) + " " + ir::dtype_name(t.dtype) +
                         " elements, its shape needs " + std::to_string(numel));
  t.bytes.resize(need);
  switch (t.dtype) {
    case ir::DType::kFloat32:
      copy_converted<decltype(p.float_data()), float>(p.float_data(), t);
      break;
    case ir::DType::kFloat64:
      copy_converted<decltype(p.double_data()), double>(p.double_data(), t);
      break;
    case ir::DType::kInt64:
      copy_converted<decltype(p.int64_data()), int64_t>(p.int64_data(), t);
      break;
    case ir::DType::kInt32:
      copy_converted<decltype(p.int32_data()), int32_t>(p.int32_data(), t);
      break;
    case ir::DType::kInt8:
      copy_converted<decltype(p.int32_data()), int8_t>(p.int32_data(), t);
      break;
    case ir::DType::kUInt8:
    case ir::DType::kBool:
      copy_converted<decltype(p.int32_data()), uint8_t>(p.int32_data(), t);
      break;
    case ir::DType::kFloat16:
      copy_converted<decltype(p.int32_data()), uint16_t>(p.int32_data(), t);
      break;
  }
  return t;
}

}  // namespace kiln::frontend

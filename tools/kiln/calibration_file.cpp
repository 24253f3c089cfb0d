// Reading --calibrate files; see calibration_file.h.
#include "tools/kiln/calibration_file.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <sstream>

#include "tools/kiln-rt/npy.h"

namespace kiln::tools {
namespace {

// The arrays of an .npz (a zip of .npy files) by name without ".npy"; numpy.savez's stored
// entries only (savez_compressed deflates: an error says so).
bool read_npz(const std::string& path, std::map<std::string, NpyArray>* out, std::string* error) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return *error = path + ": cannot open", false;
  std::stringstream ss;
  ss << f.rdbuf();
  const std::string z = ss.str();
  auto u16 = [&](size_t at) {
    return uint32_t(uint8_t(z[at])) | uint32_t(uint8_t(z[at + 1])) << 8;
  };
  auto u32 = [&](size_t at) { return u16(at) | u16(at + 2) << 16; };
  size_t at = 0;
  while (at + 30 <= z.size() && u32(at) == 0x04034b50) {  // local file header
    const uint32_t method = u16(at + 8), name_len = u16(at + 26), extra_len = u16(at + 28);
    uint64_t size = u32(at + 18);
    const std::string name = z.substr(at + 30, name_len);
    const size_t data = at + 30 + name_len + extra_len;
    if (size == 0xffffffffu && extra_len >= 20 && u16(at + 30 + name_len) == 1)  // zip64
      size = u32(at + 30 + name_len + 12) | uint64_t(u32(at + 30 + name_len + 16)) << 32;
    if (method != 0)
      return *error = path + ": entry '" + name +
                      "' is compressed (numpy.savez_compressed); save with numpy.savez",
             false;
    if (data + size > z.size()) return *error = path + ": entry '" + name + "' is cut off", false;
    std::string key = name.size() > 4 && name.compare(name.size() - 4, 4, ".npy") == 0
                          ? name.substr(0, name.size() - 4)
                          : name;
    if (!parse_npy(z.substr(data, size), path + ":" + name, &(*out)[key], error)) return false;
    at = data + size;
  }
  if (out->empty()) return *error = path + ": no arrays (not an .npz?)", false;
  return true;
}

Result<ir::Tensor> to_tensor(const NpyArray& a, ir::DType want, const std::string& what) {
  ir::Tensor t;
  t.dtype = want;
  t.dims = a.shape;
  t.bytes.resize(static_cast<size_t>(a.numel()) * ir::dtype_size(want));
  const bool int_in = a.dtype == KILN_INT64 || a.dtype == KILN_INT32;
  if (want == ir::DType::kFloat32 && a.dtype == KILN_FLOAT32) {
    std::memcpy(t.bytes.data(), a.data.data(), t.bytes.size());
  } else if ((want == ir::DType::kInt64 || want == ir::DType::kInt32) && int_in) {
    for (int64_t i = 0; i < a.numel(); ++i) {
      const int64_t v = a.dtype == KILN_INT64 ? reinterpret_cast<const int64_t*>(a.data.data())[i]
                                              : reinterpret_cast<const int32_t*>(a.data.data())[i];
      if (want == ir::DType::kInt64)
        t.data<int64_t>()[i] = v;
      else
        t.data<int32_t>()[i] = static_cast<int32_t>(v);
    }
  } else {
    return Status::error(what + ": dtype does not match the graph input (" + ir::dtype_name(want) +
                         ")");
  }
  return t;
}

bool is_int(ir::DType t) {
  return t == ir::DType::kInt64 || t == ir::DType::kInt32;
}

// [n, len] of `values` (row-major) as a tensor of an integer or float graph input's dtype.
ir::Tensor rows_tensor(ir::DType dtype, int64_t n, int64_t len,
                       const std::vector<int64_t>& values) {
  ir::Tensor t;
  t.dtype = dtype;
  t.dims = {n, len};
  t.bytes.resize(values.size() * ir::dtype_size(dtype));
  for (size_t i = 0; i < values.size(); ++i) {
    if (dtype == ir::DType::kInt64) t.data<int64_t>()[i] = values[i];
    if (dtype == ir::DType::kInt32) t.data<int32_t>()[i] = static_cast<int32_t>(values[i]);
    if (dtype == ir::DType::kFloat32) t.data<float>()[i] = static_cast<float>(values[i]);
  }
  return t;
}

Result<std::map<std::string, ir::Tensor>> read_texts(const std::string& path, const ir::Graph& g,
                                                     const TextEncoder& text) {
  const ir::Value* ids = nullptr;
  for (const ir::Value* v : g.inputs)
    if (!ids && is_int(v->dtype) && v->name.find("mask") == std::string::npos) ids = v;
  if (!ids || !ids->shape || ids->shape->size() != 2)
    return Status::error(path + ": text calibration needs a [batch, seq] token-id input");
  int64_t max_len = kCalibrationTextTokens;
  for (int s = 0; s < static_cast<int>(g.symbols.size()); ++s)
    if ((*ids->shape)[1] == ir::Dim::symbol(s) && g.symbols[s].max > 0)
      max_len = std::min(max_len, g.symbols[s].max);
  std::ifstream f(path);
  if (!f) return Status::error(path + ": cannot open");
  std::vector<std::vector<int64_t>> rows;
  size_t longest = 0;
  for (std::string line; rows.size() < kMaxCalibrationTexts && std::getline(f, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    rows.push_back(text.encode(line, max_len));
    longest = std::max(longest, rows.back().size());
  }
  if (rows.empty()) return Status::error(path + ": no text (one text per line)");
  const int64_t n = static_cast<int64_t>(rows.size()), len = static_cast<int64_t>(longest);
  std::vector<int64_t> id_values, mask_values;
  for (const auto& r : rows)
    for (size_t k = 0; k < longest; ++k) {
      id_values.push_back(k < r.size() ? r[k] : text.pad_id);
      mask_values.push_back(k < r.size());
    }
  std::map<std::string, ir::Tensor> out;
  out[ids->name] = rows_tensor(ids->dtype, n, len, id_values);
  for (const ir::Value* v : g.inputs)
    if (v->name.find("mask") != std::string::npos && v->shape && v->shape->size() == 2 &&
        (is_int(v->dtype) || v->dtype == ir::DType::kFloat32))
      out[v->name] = rows_tensor(v->dtype, n, len, mask_values);
  return out;
}

}  // namespace

Result<std::map<std::string, ir::Tensor>> read_calibration_file(const std::string& path,
                                                                const ir::Graph& g,
                                                                const TextEncoder* text) {
  if (path.size() > 4 && path.substr(path.size() - 4) == ".txt") {
    if (!text)
      return Status::error(path +
                           ": a text file (one text per line) needs the model's tokenizer: "
                           "kiln compile --tokenizer tokenizer.json or --vocab vocab.txt");
    return read_texts(path, g, *text);
  }
  std::map<std::string, NpyArray> arrays;
  std::string error;
  const bool npz = path.size() > 4 && path.substr(path.size() - 4) == ".npz";
  if (g.inputs.empty()) return Status::error(path + ": the model has no inputs");
  if (npz ? !read_npz(path, &arrays, &error) : !read_npy(path, &arrays[g.inputs[0]->name], &error))
    return Status::error(error);
  std::map<std::string, ir::Tensor> out;
  for (const ir::Value* v : g.inputs) {
    auto it = arrays.find(v->name);
    if (it == arrays.end()) continue;
    KILN_ASSIGN_OR_RETURN(out[v->name],
                          to_tensor(it->second, v->dtype, path + ": '" + v->name + "'"));
  }
  for (const auto& [name, array] : arrays)
    if (!out.count(name))
      return Status::error(path + ": array '" + name + "' is not a graph input");
  return out;
}

}  // namespace kiln::tools

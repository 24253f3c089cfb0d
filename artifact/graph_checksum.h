// The graph checksum ties model.json to the model.so compiled with it: model.so has the shapes,
// strides and tensor slots of model.json baked in, so a model.json edited after compilation (or
// one from another compile) must be refused, not run. The compiler stores the CRC-32 of the
// sections model.so depends on in model.json ("graph_crc32") and in model.so
// (kiln_model_graph_crc32); the runtime recomputes it from the file and compares all three.
#pragma once

#include <cstdint>
#include <string>

#include "artifact/crc32.h"

namespace kiln::artifact {

// The model.json sections model.so depends on.
constexpr const char* kGraphSections[] = {"symbols", "params",  "arena", "tensors",
                                          "inputs",  "outputs", "nodes"};

// Json is nlohmann::json (keys sorted, so `dump()` is canonical: the writer converts its
// ordered_json first). Absent sections count as null.
template <class Json>
uint32_t graph_checksum(const Json& root) {
  Json s = Json::object();
  for (const char* key : kGraphSections) s[key] = root.contains(key) ? root[key] : Json();
  const std::string text = s.dump();
  return crc32(text.data(), text.size());
}

}  // namespace kiln::artifact

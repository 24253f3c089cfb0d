// A minimal executor over model.json / model.params / model.so for codegen tests: enough to
// call the node functions in order with buffers laid out per the artifact. Not the runtime.
#pragma once

#include <dlfcn.h>

#include <cctype>
#include <chrono>
#include <cstring>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "artifact/params_format.h"
#include "kiln/backend.h"

namespace kiln::codegen {

// A minimal executor over model.json, enough to run the node functions.
using json = nlohmann::json;

class MiniRunner {
 public:
  explicit MiniRunner(const std::string& dir) {
    std::ifstream jf(dir + "/model.json");
    j_ = json::parse(jf);
    std::ifstream pf(dir + "/model.params", std::ios::binary);
    std::vector<char> bytes((std::istreambuf_iterator<char>(pf)), std::istreambuf_iterator<char>());
    params_.resize(bytes.size() / 8 + 8);  // uint64 storage: 8-byte aligned is enough here
    std::memcpy(params_.data(), bytes.data(), bytes.size());
    so_ = dlopen((dir + "/model.so").c_str(), RTLD_NOW | RTLD_LOCAL);
  }
  ~MiniRunner() {
    if (so_) dlclose(so_);
  }
  void* so() const { return so_; }
  const json& model() const { return j_; }

  int64_t eval(const json& dim, const int64_t* sym) const {
    if (dim.is_number()) return dim.get<int64_t>();
    // monomial "c*a*b^2"
    int64_t v = 1;
    std::string s = dim.get<std::string>(), tok;
    size_t pos = 0;
    while (pos <= s.size()) {
      size_t e = s.find('*', pos);
      tok = s.substr(pos, e == std::string::npos ? std::string::npos : e - pos);
      int p = 1;
      if (auto c = tok.find('^'); c != std::string::npos) {
        p = std::stoi(tok.substr(c + 1));
        tok = tok.substr(0, c);
      }
      int64_t base = 0;
      if (std::isdigit(static_cast<unsigned char>(tok[0]))) {
        base = std::stoll(tok);
      } else {
        for (size_t i = 0; i < j_["symbols"].size(); ++i)
          if (j_["symbols"][i]["name"] == tok) base = sym[i];
      }
      for (int k = 0; k < p; ++k) v *= base;
      if (e == std::string::npos) break;
      pos = e + 1;
    }
    return v;
  }
  int64_t numel(const json& t, const int64_t* sym) const {
    int64_t n = 1;
    for (const auto& d : t["shape"]) n *= eval(d, sym);
    return n;
  }

  // Runs all nodes; returns the first error ("" if none). outputs receive the output buffers.
  std::string run(const int64_t* sym, const std::vector<const void*>& inputs,
                  std::vector<std::vector<uint8_t>>* outputs, const kiln_backend* backend = nullptr,
                  std::vector<double>* node_seconds = nullptr) {
    const int64_t scale = j_["arena"]["scale"].is_null() ? 1 : sym[0];
    arena_.assign(j_["arena"]["bytes"].get<int64_t>() * scale / 8 + 8, 0);
    std::vector<void*> ptr;
    outputs->assign(j_["outputs"].size(), {});
    // param table: entry index -> data pointer
    std::vector<void*> param_ptr;
    {
      const auto* base = reinterpret_cast<const uint8_t*>(params_.data());
      artifact::ParamsHeader h;
      std::memcpy(&h, base, sizeof(h));
      size_t pos = h.table_offset;
      for (uint32_t i = 0; i < h.count; ++i) {
        uint32_t len, dt, rank;
        std::memcpy(&len, base + pos, 4);
        pos += 4 + len;
        std::memcpy(&dt, base + pos, 4);
        std::memcpy(&rank, base + pos + 4, 4);
        pos += 8 + 8 * rank;
        uint64_t off;
        std::memcpy(&off, base + pos, 8);
        pos += 8 + 8 + 4;
        param_ptr.push_back(const_cast<uint8_t*>(base) + off);
      }
    }
    for (const auto& t : j_["tensors"]) {
      const std::string st = t["storage"];
      if (st == "input") {
        ptr.push_back(const_cast<void*>(inputs[t["index"].get<size_t>()]));
      } else if (st == "param") {
        ptr.push_back(param_ptr[t["index"].get<size_t>()]);
      } else if (st == "arena") {
        ptr.push_back(reinterpret_cast<uint8_t*>(arena_.data()) +
                      scale * t["offset"].get<int64_t>());
      } else {
        auto& o = (*outputs)[t["index"].get<size_t>()];
        const size_t es = t["dtype"] == "float32" ? 4 : t["dtype"] == "int64" ? 8 : 1;
        o.assign(numel(t, sym) * es, 0xEE);
        ptr.push_back(o.data());
      }
    }
    kiln_backend serial{KILN_ABI_VERSION, 1, nullptr, nullptr};
    const kiln_backend& be = backend ? *backend : serial;
    char err[512] = "";
    for (const auto& n : j_["nodes"]) {
      std::vector<void*> args;
      for (int t : n["inputs"]) args.push_back(ptr[t]);
      for (int t : n["outputs"]) args.push_back(ptr[t]);
      auto fn = reinterpret_cast<kiln_node_fn>(dlsym(so_, n["kernel"].get<std::string>().c_str()));
      if (!fn) return "missing " + n["kernel"].get<std::string>();
      kiln_call c{&be, args.data(), sym, err, sizeof(err)};
      const auto t0 = std::chrono::steady_clock::now();
      if (fn(&c) != 0) return err;
      if (node_seconds)
        node_seconds->push_back(
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    return "";
  }

 private:
  json j_;
  std::vector<uint64_t> params_, arena_;
  void* so_ = nullptr;
};

}  // namespace kiln::codegen

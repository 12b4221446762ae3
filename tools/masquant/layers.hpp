// layers.hpp: finds the layers of a safetensors file by the file contract's tensor names
// (P.weight, P.bias, P.inputs.<m>, P.qweight, P.wscale, P.smooth.<m>, P.lowrank.<m>.L/R,
// P.outputs.<m>).
#pragma once

#include <map>
#include <masquant/io/safetensors.hpp>
#include <string>
#include <vector>

namespace masquant::cli {

/// The tensors of one layer prefix P found in a file (names are full tensor names).
struct layer_entry {
  std::string prefix;
  std::string weight, bias, qweight, wscale;
  std::map<std::string, std::string> inputs;   ///< modality -> P.inputs.<modality>
  std::map<std::string, std::string> outputs;  ///< modality -> P.outputs.<modality>
  std::map<std::string, std::string> smooth;   ///< modality -> P.smooth.<modality>
  std::map<std::string, std::pair<std::string, std::string>> lowrank;  ///< modality -> (L, R)
};

namespace internal {

/// Splits `name` into (P, rest) at the last occurrence of `marker` (".inputs."); false if absent.
inline bool split_last(const std::string& name, const std::string& marker, std::string& prefix,
                       std::string& rest) {
  const auto at = name.rfind(marker);
  if (at == std::string::npos || at == 0) return false;
  prefix = name.substr(0, at);
  rest = name.substr(at + marker.size());
  return !rest.empty();
}

inline bool ends_with(const std::string& s, const std::string& suffix, std::string& prefix) {
  if (s.size() <= suffix.size() || s.compare(s.size() - suffix.size(), suffix.size(), suffix) != 0)
    return false;
  prefix = s.substr(0, s.size() - suffix.size());
  return true;
}

}  // namespace internal

/// Groups a file's tensors by layer prefix, in name order. Names that follow no contract pattern
/// are ignored (a file may carry other tensors). Modality names may not contain '.'.
inline std::map<std::string, layer_entry> find_layers(const safetensors_file& file) {
  std::map<std::string, layer_entry> layers;
  auto at = [&](const std::string& p) -> layer_entry& {
    auto& e = layers[p];
    e.prefix = p;
    return e;
  };
  for (const auto& t : file.tensors()) {
    const std::string& n = t.name;
    std::string p, rest;
    if (internal::split_last(n, ".inputs.", p, rest) && rest.find('.') == std::string::npos) {
      at(p).inputs[rest] = n;
    } else if (internal::split_last(n, ".outputs.", p, rest) &&
               rest.find('.') == std::string::npos) {
      at(p).outputs[rest] = n;
    } else if (internal::split_last(n, ".smooth.", p, rest) &&
               rest.find('.') == std::string::npos) {
      at(p).smooth[rest] = n;
    } else if (internal::split_last(n, ".lowrank.", p, rest)) {
      std::string m;
      if (internal::ends_with(rest, ".L", m) && m.find('.') == std::string::npos)
        at(p).lowrank[m].first = n;
      else if (internal::ends_with(rest, ".R", m) && m.find('.') == std::string::npos)
        at(p).lowrank[m].second = n;
    } else if (internal::ends_with(n, ".qweight", p)) {
      at(p).qweight = n;
    } else if (internal::ends_with(n, ".wscale", p)) {
      at(p).wscale = n;
    } else if (internal::ends_with(n, ".weight", p)) {
      at(p).weight = n;
    } else if (internal::ends_with(n, ".bias", p)) {
      at(p).bias = n;
    }
  }
  // A bias alone (say, of a LayerNorm the file also carries) is not a layer.
  for (auto it = layers.begin(); it != layers.end();) {
    const auto& e = it->second;
    const bool something = !e.weight.empty() || !e.qweight.empty() || !e.inputs.empty() ||
                           !e.outputs.empty() || !e.smooth.empty() || !e.lowrank.empty() ||
                           !e.wscale.empty();
    it = something ? std::next(it) : layers.erase(it);
  }
  return layers;
}

}  // namespace masquant::cli

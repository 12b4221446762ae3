// layers.hpp: finds the layers of a safetensors file by the file contract's tensor names
// (P.weight, P.bias, P.inputs.<m>, P.qweight, P.wscale, P.smooth.<m>, P.lowrank.<m>.L/R,
// P.outputs.<m>).
#pragma once

#include <map>
#include <masquant/io/safetensors.hpp>
#include <masquant/io/tensor_names.hpp>
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

/// Groups a file's tensors by layer prefix, in name order, by the grammar of tensor names
/// (parse_layer_tensor_name: every name parses one way, e.g. "m.smooth.weight" is the weight of
/// layer "m.smooth"). Names that follow no rule are ignored (a file may carry other tensors).
inline std::map<std::string, layer_entry> find_layers(const safetensors_file& file) {
  std::map<std::string, layer_entry> layers;
  for (const auto& t : file.tensors()) {
    auto parsed = parse_layer_tensor_name(t.name);
    if (!parsed) continue;
    auto& e = layers[parsed->prefix];
    e.prefix = parsed->prefix;
    const std::string& m = parsed->modality;
    switch (parsed->kind) {
      case layer_tensor::weight:
        e.weight = t.name;
        break;
      case layer_tensor::bias:
        e.bias = t.name;
        break;
      case layer_tensor::qweight:
        e.qweight = t.name;
        break;
      case layer_tensor::wscale:
        e.wscale = t.name;
        break;
      case layer_tensor::inputs:
        e.inputs[m] = t.name;
        break;
      case layer_tensor::outputs:
        e.outputs[m] = t.name;
        break;
      case layer_tensor::smooth:
        e.smooth[m] = t.name;
        break;
      case layer_tensor::lowrank_L:
        e.lowrank[m].first = t.name;
        break;
      case layer_tensor::lowrank_R:
        e.lowrank[m].second = t.name;
        break;
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

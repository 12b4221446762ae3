// tensor_names.hpp: the grammar of masquant's tensor names (docs/file-format.md "Tensor names"):
// P.weight, P.bias, P.qweight, P.wscale, P.inputs.<m>, P.outputs.<m>, P.smooth.<m>,
// P.lowrank.<m>.L and P.lowrank.<m>.R for a layer prefix P and a modality m.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace masquant {

/// What a tensor is to its layer.
enum class layer_tensor : std::uint8_t {
  weight,     ///< P.weight
  bias,       ///< P.bias
  qweight,    ///< P.qweight
  wscale,     ///< P.wscale
  inputs,     ///< P.inputs.<m>
  outputs,    ///< P.outputs.<m>
  smooth,     ///< P.smooth.<m>
  lowrank_L,  ///< P.lowrank.<m>.L
  lowrank_R,  ///< P.lowrank.<m>.R
};

/// A tensor name split by the grammar.
struct layer_tensor_name {
  std::string prefix;    ///< P: non-empty, any characters
  layer_tensor kind{};   ///< what the tensor is
  std::string modality;  ///< m, for inputs, outputs, smooth and lowrank_*; else empty
};

namespace detail {

/// Words a modality may not be called: with them a name would parse two ways (P.smooth.weight is
/// the weight of layer "P.smooth", never the smoothing factor of a modality "weight"; and
/// P.lowrank.inputs.L the inputs of modality "L" of layer "P.lowrank").
inline constexpr std::array<std::string_view, 8> reserved_tensor_words = {
    "weight", "bias", "qweight", "wscale", "inputs", "outputs", "smooth", "lowrank"};

}  // namespace detail

/// Whether `m` may name a modality in a file: non-empty, without '.', and none of weight, bias,
/// qweight, wscale, inputs, outputs, smooth, lowrank (so that every tensor name parses one way).
inline bool is_modality_name(std::string_view m) noexcept {
  if (m.empty() || m.find('.') != std::string_view::npos) return false;
  for (std::string_view w : detail::reserved_tensor_words)
    if (m == w) return false;
  return true;
}

/// Splits a tensor name by the grammar, from its end:
///   name := P "." ("weight" | "bias" | "qweight" | "wscale")
///         | P "." ("inputs" | "outputs" | "smooth") "." m
///         | P "." "lowrank" "." m "." ("L" | "R")
/// with P non-empty and m a modality name (is_modality_name). Every name parses at most one way;
/// nothing (std::nullopt) when it follows no rule (a file may carry other tensors).
///
/// Example: "model.layers.0.smooth.weight" is the weight of layer "model.layers.0.smooth";
/// "x.outputs.y.inputs.text" the text inputs of layer "x.outputs.y".
inline std::optional<layer_tensor_name> parse_layer_tensor_name(std::string_view name) {
  // The last three components (fewer when the name has fewer dots).
  const auto cut = [](std::string_view s, std::string_view& last) {
    const auto dot = s.rfind('.');
    if (dot == std::string_view::npos) return std::string_view::npos;
    last = s.substr(dot + 1);
    return dot;
  };
  std::string_view c1, c2, c3;  // last, second to last, third to last
  const auto d1 = cut(name, c1);
  if (d1 == std::string_view::npos || d1 == 0) return std::nullopt;
  const std::string_view before1 = name.substr(0, d1);
  struct word_kind {
    std::string_view word;
    layer_tensor kind;
  };
  const word_kind plain[] = {{"weight", layer_tensor::weight},
                             {"bias", layer_tensor::bias},
                             {"qweight", layer_tensor::qweight},
                             {"wscale", layer_tensor::wscale}};
  for (const auto& p : plain)
    if (c1 == p.word) return layer_tensor_name{std::string(before1), p.kind, {}};
  if (!is_modality_name(c1)) return std::nullopt;
  const auto d2 = cut(before1, c2);
  if (d2 == std::string_view::npos || d2 == 0) return std::nullopt;
  const std::string_view before2 = name.substr(0, d2);
  const word_kind keyed[] = {{"inputs", layer_tensor::inputs},
                             {"outputs", layer_tensor::outputs},
                             {"smooth", layer_tensor::smooth}};
  for (const auto& k : keyed)
    if (c2 == k.word) return layer_tensor_name{std::string(before2), k.kind, std::string(c1)};
  if ((c1 != "L" && c1 != "R") || !is_modality_name(c2)) return std::nullopt;  // "L", "R" are names
  const auto d3 = cut(before2, c3);
  if (d3 == std::string_view::npos || d3 == 0 || c3 != "lowrank") return std::nullopt;
  return layer_tensor_name{std::string(name.substr(0, d3)),
                           c1 == "L" ? layer_tensor::lowrank_L : layer_tensor::lowrank_R,
                           std::string(c2)};
}

}  // namespace masquant

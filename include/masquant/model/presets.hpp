// presets.hpp: the built-in recipes — Qwen2/Llama decoders, Qwen2.5-VL, the Qwen2.5-Omni
// thinker — with the reference implementation's rules as defaults.
#pragma once

#include <masquant/error.hpp>
#include <masquant/model/recipe.hpp>
#include <string>
#include <vector>

namespace masquant {

/// Names of the built-in recipes.
inline std::vector<std::string> recipe_presets() {
  return {"llama", "qwen2_5_vl", "qwen2_5_omni"};
}

/// A built-in recipe. Every preset quantizes the seven linears of each decoder block (q, k, v, o,
/// gate, up, down), with q/k/v and gate/up sharing their inputs and untied smoothing (as the
/// reference does); down_proj is quantized without smoothing or compensation (method rtn, rank
/// 0), the others get per-modality smoothing and compensation with the recipe's defaults:
/// - "llama": Llama/Qwen2/Mistral naming (`*layers.<i>.self_attn.q_proj`, `*layers.<i>.mlp.*`);
///   modalities from the statistics;
/// - "qwen2_5_vl": the same decoder; the vision tower (`visual.*`) stays in float; modalities
///   text and vision;
/// - "qwen2_5_omni": the thinker's decoder (`thinker.model.layers.*`); its vision and audio
///   encoders, the talker and token2wav stay in float; modalities text, vision and audio.
/// Throws errc::invalid_argument naming the known presets for another name.
inline quantization_recipe recipe_preset(const std::string& name) {
  const std::string decoder_linears =
      R"(layers\.[0-9]+\.(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj))";
  quantization_recipe r;
  r.preset = name;
  r.groups = {{"q_proj", "k_proj", "v_proj"}, {"gate_proj", "up_proj"}};
  r.tie_group_smoothing = false;
  linear_settings down;
  down.method = "rtn";
  down.rank = 0;
  r.overrides = {{"*.down_proj", down}};
  if (name == "llama") {
    r.targets = {"re:(.*\\.)?" + decoder_linears};
  } else if (name == "qwen2_5_vl") {
    r.targets = {"re:(.*\\.)?" + decoder_linears};
    r.ignore = {"re:(.*\\.)?visual\\..*"};
    r.modalities = {"text", "vision"};
  } else if (name == "qwen2_5_omni") {
    r.targets = {"re:thinker\\.model\\." + decoder_linears};
    r.ignore = {"re:thinker\\.(visual|audio_tower)\\..*", "re:(talker|token2wav)\\..*"};
    r.modalities = {"text", "vision", "audio"};
  } else {
    std::string known;
    for (const auto& p : recipe_presets()) known += (known.empty() ? "" : ", ") + p;
    raise(errc::invalid_argument,
          detail::cat("unknown recipe preset '", name, "' (known: ", known, ")"));
  }
  r.validate();
  return r;
}

/// The preset for a config.json "model_type", or "" when none fits.
inline std::string preset_for_model_type(const std::string& model_type) {
  if (model_type == "llama" || model_type == "qwen2" || model_type == "mistral") return "llama";
  if (model_type == "qwen2_5_vl" || model_type == "qwen2_vl") return "qwen2_5_vl";
  if (model_type == "qwen2_5_omni" || model_type == "qwen2_5_omni_thinker") return "qwen2_5_omni";
  return "";
}

}  // namespace masquant

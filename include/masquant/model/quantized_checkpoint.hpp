// quantized_checkpoint.hpp: a quantized checkpoint opened for an engine — its linears as
// deployable quantized_linear objects by name, with the metadata read and checked here.
#pragma once

#include <algorithm>
#include <masquant/error.hpp>
#include <masquant/io/checkpoint.hpp>
#include <masquant/io/linear_file.hpp>
#include <masquant/layer/quantized_linear.hpp>
#include <masquant/model/recipe.hpp>
#include <string>
#include <vector>

namespace masquant {

/// A checkpoint written by quantize_checkpoint() (or `masquant quantize`): the files of an
/// hf_checkpoint whose config.json carries a masquant "quantization_config". Its quantized
/// linears are the modules P with a tensor P.qweight; each one's bit widths come from the
/// recipe's settings for P, its modality ids from the config's modality list (id 0 the
/// reference). Every other tensor (embeddings, norms, float towers) is read through files().
///
/// Example:
/// \code
///   masquant::quantized_checkpoint model("qwen2.5-vl-3b-w4a8");
///   for (const std::string& name : model.linears())
///     layers.emplace(name, model.linear(name));        // masquant::quantized_linear
///   const auto& ids = model.modalities();                // {"text", "vision"}
/// \endcode
class quantized_checkpoint {
 public:
  /// Opens `dir`. Throws what hf_checkpoint throws, and errc::format_error naming config.json
  /// when it has no quantization_config or one that is not masquant's (naming the key).
  explicit quantized_checkpoint(std::string dir) : files_(std::move(dir)) {
    const std::string config = files_.path("config.json");
    const auto it = files_.config().find("quantization_config");
    MASQUANT_CHECK(it != files_.config().end(), errc::format_error, config,
                   ": no \"quantization_config\" (not a quantized checkpoint)");
    MASQUANT_CHECK(it->is_object() && it->value("format", "") == "masquant", errc::format_error,
                   config,
                   ": \"quantization_config\" is not masquant's (its \"format\" is not "
                   "\"masquant\")");
    recipe_ = recipe_from_json(*it, config + ": \"quantization_config\"");
    MASQUANT_CHECK(!recipe_.modalities.empty(), errc::format_error, config,
                   ": \"quantization_config\" lists no \"modalities\"");
    for (const auto& n : files_.tensor_names()) {
      const auto at = n.size() > 8 ? n.rfind(".qweight") : std::string::npos;
      if (at != std::string::npos && at + 8 == n.size()) linears_.push_back(n.substr(0, at));
    }
    std::sort(linears_.begin(), linears_.end());
  }

  /// The checkpoint's files and config.json.
  const hf_checkpoint& files() const noexcept { return files_; }
  /// How it was made.
  const quantization_recipe& recipe() const noexcept { return recipe_; }
  /// Modality names in id order (the reference first).
  const std::vector<std::string>& modalities() const noexcept { return recipe_.modalities; }
  /// The quantized linears' names, sorted.
  const std::vector<std::string>& linears() const noexcept { return linears_; }
  bool has_linear(const std::string& name) const {
    return std::binary_search(linears_.begin(), linears_.end(), name);
  }

  /// The parameters of linear `name` (modality ids in modalities() order). Throws
  /// errc::out_of_range for a name that is not a quantized linear, errc::format_error naming the
  /// tensor that is missing or has the wrong shape, and what quantized_linear_params::validate()
  /// reports.
  quantized_linear_params params(const std::string& name) const {
    MASQUANT_CHECK(has_linear(name), errc::out_of_range, files_.directory(), ": '", name,
                   "' is not a quantized linear of the checkpoint (no ", name, ".qweight)");
    const linear_settings s = recipe_.settings_of(name);
    return load_linear(files_.file_of(name + ".qweight"), name, recipe_.modalities, *s.wbits,
                       *s.abits);
  }

  /// The deployable linear `name`; throws as params().
  quantized_linear linear(const std::string& name, const linear_options& options = {}) const {
    return quantized_linear(params(name), options);
  }

 private:
  hf_checkpoint files_;
  quantization_recipe recipe_;
  std::vector<std::string> linears_;
};

}  // namespace masquant

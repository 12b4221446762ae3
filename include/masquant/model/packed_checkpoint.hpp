// packed_checkpoint.hpp: every quantized linear of a quantized checkpoint as a packed image file
// (io/packed_image_file.hpp) in one directory, written once and mapped at each engine start.
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <masquant/error.hpp>
#include <masquant/io/packed_image_file.hpp>
#include <masquant/model/quantized_checkpoint.hpp>
#include <masquant/parallel.hpp>
#include <string>
#include <system_error>

namespace masquant {

/// The file name of linear `name`'s packed image in a packed directory.
inline std::string packed_image_name(const std::string& name) {
  return name + ".mqlin";
}

/// Packs every quantized linear of `model` (quantized_checkpoint::linear, with `options`; packing
/// on `parallel`) and saves its image to `out_dir`/packed_image_name(name), creating the
/// directory. Each file is written atomically; `progress(done, total, name)` after each. Throws
/// what quantized_checkpoint::linear and save_packed_image throw, errc::io_error naming a
/// directory that cannot be created.
inline void save_packed_checkpoint(
    const quantized_checkpoint& model, const std::string& out_dir,
    const linear_options& options = {}, const parallel_for_fn& parallel = {},
    const std::function<void(std::size_t, std::size_t, const std::string&)>& progress = {}) {
  std::error_code ec;
  std::filesystem::create_directories(out_dir, ec);
  MASQUANT_CHECK(!ec, errc::io_error, out_dir, ": cannot create the directory: ", ec.message());
  const auto& names = model.linears();
  for (std::size_t i = 0; i < names.size(); ++i) {
    const quantized_linear layer(model.params(names[i]), options, parallel);
    save_packed_image(layer,
                      (std::filesystem::path(out_dir) / packed_image_name(names[i])).string());
    if (progress) progress(i + 1, names.size(), names[i]);
  }
}

/// Loads the packed images of `names` from `dir` (load_packed_image: mapped, nothing repacked),
/// keyed by name. Throws what load_packed_image throws, naming the file.
///
/// Example (an engine start):
/// \code
///   masquant::quantized_checkpoint model("qwen2.5-vl-3b-w4a8");   // config and names only
///   auto layers = masquant::load_packed_linears("qwen2.5-vl-3b-w4a8.packed", model.linears());
/// \endcode
inline std::map<std::string, quantized_linear> load_packed_linears(
    const std::string& dir, const std::vector<std::string>& names) {
  std::map<std::string, quantized_linear> out;
  for (const std::string& name : names) {
    out.emplace(name,
                load_packed_image((std::filesystem::path(dir) / packed_image_name(name)).string()));
  }
  return out;
}

}  // namespace masquant

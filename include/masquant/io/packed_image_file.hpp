// packed_image_file.hpp: a quantized_linear's packed image (layer/packed_image.hpp) as a file of
// its own, written atomically and loaded by mapping it: loading reads no level and packs
// nothing, so a layer is ready in the time of an open, an mmap and a header check.
#pragma once

#include <masquant/io/detail/atomic_file.hpp>
#include <masquant/io/detail/mapped_file.hpp>
#include <masquant/layer/packed_image.hpp>
#include <masquant/layer/quantized_linear.hpp>
#include <memory>
#include <string>
#include <vector>

namespace masquant {

/// Writes the packed image of `layer` to `path` (conventionally `<linear name>.mqlin`), through a
/// temporary file renamed into place: a failure leaves no file and any previous one untouched.
/// Throws errc::io_error naming the path.
inline void save_packed_image(const quantized_linear& layer, const std::string& path) {
  std::vector<unsigned char> bytes(packed_image_bytes(layer));
  write_packed_image(layer, bytes.data(), bytes.size());
  detail::atomic_file out(path);
  out.write(bytes.data(), bytes.size());
  out.commit();
}

/// Maps the file at `path` read-only and adopts its packed image (adopt_packed_image: the same
/// checks, errors naming the path); the mapping lives as long as the layer and its copies. The
/// file must not be truncated or rewritten in place while mapped (save_packed_image replaces a
/// file by renaming, which leaves existing mappings intact). Throws errc::io_error naming the
/// path.
///
/// Example:
/// \code
///   masquant::save_packed_image(layer, "model.layers.0.self_attn.q_proj.mqlin");  // once
///   masquant::quantized_linear q_proj =
///       masquant::load_packed_image("model.layers.0.self_attn.q_proj.mqlin");     // each start
/// \endcode
inline quantized_linear load_packed_image(const std::string& path) {
  auto map = std::make_shared<const detail::mapped_file>(path);
  return adopt_packed_image(map->data(), map->size(), map, path);
}

}  // namespace masquant

// tensor_info.hpp: what a safetensors header says about one tensor (name, dtype, shape, bytes).
#pragma once

#include <cstdint>
#include <masquant/io/dtype.hpp>
#include <masquant/io/tensor_shape.hpp>
#include <string>

namespace masquant {

/// One validated header entry. Offsets are in bytes; the header's data_offsets are relative to
/// the data buffer that follows the header, file_offset is the same first byte counted from the
/// start of the file (8 + header length + data_begin).
struct tensor_info {
  std::string name;
  dtype type = dtype::f32;
  tensor_shape shape;
  std::uint64_t data_begin = 0;   ///< first byte, relative to the data buffer
  std::uint64_t data_end = 0;     ///< one past the last byte, relative to the data buffer
  std::uint64_t file_offset = 0;  ///< first byte, relative to the start of the file

  /// data_end - data_begin, which equals elements() * dtype_size(type) in a validated file.
  std::uint64_t byte_size() const noexcept { return data_end - data_begin; }
  index_t elements() const noexcept { return shape.elements(); }
};

}  // namespace masquant

// int4.hpp: packed INT4 storage, two signed 4-bit values per byte.
#pragma once

#include <cstdint>
#include <masquant/error.hpp>
#include <masquant/quant/detail/common.hpp>
#include <masquant/tensor/view.hpp>

namespace masquant {

/// Bytes per packed row of `cols` int4 values: ceil(cols / 2).
constexpr index_t int4_packed_cols(index_t cols) noexcept {
  return (cols + 1) / 2;
}

/// Packs int8 values in -8..7 two per byte, row by row.
///
/// Byte k of a packed row holds column 2k in its low nibble (bits 0-3) and column 2k+1 in its
/// high nibble (bits 4-7), each as 4-bit two's complement; for an odd column count the high
/// nibble of the last byte is 0. Rows stay separate (row r starts at packed.row_data(r)).
/// Symmetric 4-bit levels (-7..7) and asymmetric ones in int8 storage (q - 8, -8..7) both fit.
///
/// q: rows x cols int8; packed: rows x int4_packed_cols(cols) bytes. Throws
/// errc::shape_mismatch, or errc::out_of_range naming the row and column of the first value
/// outside -8..7; nothing is written on error.
///
/// Example:
/// \code
///   std::vector<std::uint8_t> buf(d_out * masquant::int4_packed_cols(d_in));
///   masquant::pack_int4(q, masquant::make_matrix_view(buf, d_out,
///   masquant::int4_packed_cols(d_in)));
/// \endcode
inline void pack_int4(matrix_view<const std::int8_t> q, matrix_view<std::uint8_t> packed) {
  constexpr const char* op = "pack_int4";
  const index_t rows = q.rows(), cols = q.cols();
  MASQUANT_CHECK(packed.rows() == rows && packed.cols() == int4_packed_cols(cols),
                 errc::shape_mismatch, op, ": packed output is ",
                 detail::shape_of{packed.rows(), packed.cols()}, ", a ",
                 detail::shape_of{rows, cols}, " input needs ",
                 detail::shape_of{rows, int4_packed_cols(cols)});
  if (cols == 0) return;
  for (index_t r = 0; r < rows; ++r)
    for (index_t c = 0; c < cols; ++c)
      MASQUANT_CHECK(q(r, c) >= -8 && q(r, c) <= 7, errc::out_of_range, op, ": value ",
                     int(q(r, c)), " in row ", r, ", column ", c, " of a ",
                     detail::shape_of{rows, cols}, " input is outside the int4 range -8..7");
  for (index_t r = 0; r < rows; ++r) {
    const std::int8_t* src = q.row_data(r);
    std::uint8_t* dst = packed.row_data(r);
    for (index_t k = 0; 2 * k < cols; ++k) {
      const unsigned lo = static_cast<unsigned>(src[2 * k]) & 0xFu;
      const unsigned hi = 2 * k + 1 < cols ? static_cast<unsigned>(src[2 * k + 1]) & 0xFu : 0u;
      dst[k] = static_cast<std::uint8_t>(lo | (hi << 4));
    }
  }
}

/// Unpacks int4 values written by pack_int4 into int8 (sign-extended, -8..7).
///
/// packed: rows x int4_packed_cols(cols) bytes; q: rows x cols int8 (its column count says how
/// many values each row holds; the unused high nibble of an odd row is ignored). Throws
/// errc::shape_mismatch before writing.
inline void unpack_int4(matrix_view<const std::uint8_t> packed, matrix_view<std::int8_t> q) {
  const index_t rows = q.rows(), cols = q.cols();
  MASQUANT_CHECK(packed.rows() == rows && packed.cols() == int4_packed_cols(cols),
                 errc::shape_mismatch, "unpack_int4: packed input is ",
                 detail::shape_of{packed.rows(), packed.cols()}, ", a ",
                 detail::shape_of{rows, cols}, " output needs ",
                 detail::shape_of{rows, int4_packed_cols(cols)});
  if (cols == 0) return;
  // (v ^ 8) - 8 sign-extends a 4-bit two's complement value.
  for (index_t r = 0; r < rows; ++r) {
    const std::uint8_t* src = packed.row_data(r);
    std::int8_t* dst = q.row_data(r);
    for (index_t c = 0; c < cols; ++c) {
      const int nibble = (src[c / 2] >> (4 * (c % 2))) & 0xF;
      dst[c] = static_cast<std::int8_t>((nibble ^ 8) - 8);
    }
  }
}

}  // namespace masquant

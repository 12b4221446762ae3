// finite.hpp: the one finiteness check of masquant's entry points and its one message format,
// "<op>: <what> (<rows>x<cols>) has the non-finite value <v> at row <r>, column <c>".
#pragma once

#include <cmath>
#include <masquant/config.hpp>
#include <masquant/error.hpp>
#include <masquant/tensor/view.hpp>
#include <string>

namespace masquant::detail {

/// Throws errc::non_finite in the message format above.
[[noreturn]] inline void raise_non_finite(const std::string& op, const std::string& what,
                                          index_t rows, index_t cols, double value, index_t row,
                                          index_t col) {
  raise(errc::non_finite, cat(op, ": ", what, " (", rows, "x", cols, ") has the non-finite value ",
                              value, " at row ", row, ", column ", col));
}

/// Throws errc::non_finite naming `what`, its shape and the row and column of the first NaN or
/// Inf of x (row by row).
template <class T>
void check_finite(const std::string& op, const std::string& what, matrix_view<const T> x) {
  for (index_t r = 0; r < x.rows(); ++r) {
    const T* row = x.row_data(r);
    for (index_t c = 0; c < x.cols(); ++c)
      if (!std::isfinite(row[c]))
        raise_non_finite(op, what, x.rows(), x.cols(), static_cast<double>(row[c]), r, c);
  }
}

/// check_finite() of a vector, as a 1 x size matrix.
template <class T>
void check_finite(const std::string& op, const std::string& what, vector_view<const T> v) {
  check_finite(op, what, matrix_view<const T>(v.data(), 1, v.size()));
}

}  // namespace masquant::detail

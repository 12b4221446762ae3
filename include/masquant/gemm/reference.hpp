// reference.hpp: the normative INT8 GEMM (int64 accumulation, double epilogue) every kernel is
// tested against. Plain loops: for checking, not for speed.
#pragma once

#include <cstdint>
#include <limits>
#include <masquant/config.hpp>
#include <masquant/error.hpp>
#include <masquant/tensor/view.hpp>

namespace masquant::reference {

/// C[m, n] = sum_k a(m, k) * w(n, k), accumulated in int64: a [M, K], w [N, K] (PyTorch layout),
/// c [M, N]. Throws errc::shape_mismatch for disagreeing extents and errc::overflow (naming the
/// element) when a sum does not fit int32.
inline void int8_gemm_int32(matrix_view<const std::int8_t> a, matrix_view<const std::int8_t> w,
                            matrix_view<std::int32_t> c) {
  MASQUANT_CHECK(a.cols() == w.cols() && c.rows() == a.rows() && c.cols() == w.rows(),
                 errc::shape_mismatch, "reference::int8_gemm_int32: a ", a.rows(), "x", a.cols(),
                 ", w ", w.rows(), "x", w.cols(), ", c ", c.rows(), "x", c.cols());
  for (index_t m = 0; m < a.rows(); ++m) {
    for (index_t n = 0; n < w.rows(); ++n) {
      std::int64_t s = 0;
      for (index_t k = 0; k < a.cols(); ++k) {
        s += static_cast<std::int64_t>(a(m, k)) * static_cast<std::int64_t>(w(n, k));
      }
      MASQUANT_CHECK(s >= std::numeric_limits<std::int32_t>::min() &&
                         s <= std::numeric_limits<std::int32_t>::max(),
                     errc::overflow, "reference::int8_gemm_int32: C(", m, ", ", n, ") = ", s,
                     " does not fit int32");
      c(m, n) = static_cast<std::int32_t>(s);
    }
  }
}

/// C[m, n] = a_scale[m] * w_scale[n] * sum_k a(m, k) * w(n, k) + bias[n] (+ C[m, n] when
/// accumulate), the sum in int64 and the rest in double, rounded once to float: the value the
/// fused float epilogue approximates within float rounding. bias may be empty.
inline void int8_gemm(matrix_view<const std::int8_t> a, vector_view<const float> a_scale,
                      matrix_view<const std::int8_t> w, vector_view<const float> w_scale,
                      matrix_view<float> c, vector_view<const float> bias = {},
                      bool accumulate = false) {
  MASQUANT_CHECK(a.cols() == w.cols() && c.rows() == a.rows() && c.cols() == w.rows() &&
                     a_scale.size() == a.rows() && w_scale.size() == w.rows() &&
                     (bias.empty() || bias.size() == w.rows()),
                 errc::shape_mismatch, "reference::int8_gemm: a ", a.rows(), "x", a.cols(),
                 ", a_scale ", a_scale.size(), ", w ", w.rows(), "x", w.cols(), ", w_scale ",
                 w_scale.size(), ", c ", c.rows(), "x", c.cols(), ", bias ", bias.size());
  for (index_t m = 0; m < a.rows(); ++m) {
    for (index_t n = 0; n < w.rows(); ++n) {
      std::int64_t s = 0;
      for (index_t k = 0; k < a.cols(); ++k) {
        s += static_cast<std::int64_t>(a(m, k)) * static_cast<std::int64_t>(w(n, k));
      }
      double y = static_cast<double>(a_scale[m]) * static_cast<double>(w_scale[n]) *
                 static_cast<double>(s);
      if (!bias.empty()) y += static_cast<double>(bias[n]);
      if (accumulate) y += static_cast<double>(c(m, n));
      c(m, n) = static_cast<float>(y);
    }
  }
}

}  // namespace masquant::reference

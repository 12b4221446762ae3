// quant_testing.hpp: helpers for the quant layer's tests (bitwise comparisons, test matrices with
// awkward values). Not installed.
#pragma once

#include <boost/test/unit_test.hpp>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <masquant/quant/params.hpp>
#include <masquant/tensor/view.hpp>
#include <random>
#include <string>
#include <vector>

#include "support/testing.hpp"

namespace masquant::testing {

/// Bits of a float (distinguishes +0 from -0 and compares NaN payloads).
inline std::uint32_t bits_of(float v) {
  std::uint32_t u;
  std::memcpy(&u, &v, sizeof u);
  return u;
}

/// True when the two views hold bit-identical elements; reports the first difference.
template <class T, class U>
bool same_bits(matrix_view<T> a, matrix_view<U> b, const std::string& what = "") {
  if (a.rows() != b.rows() || a.cols() != b.cols()) {
    BOOST_ERROR(what << ": shapes " << a.rows() << "x" << a.cols() << " vs " << b.rows() << "x"
                     << b.cols());
    return false;
  }
  for (index_t r = 0; r < a.rows(); ++r) {
    for (index_t c = 0; c < a.cols(); ++c) {
      if (std::memcmp(&a(r, c), &b(r, c), sizeof(a(r, c))) != 0) {
        BOOST_ERROR(what << ": first difference at (" << r << ", " << c << "): " << +a(r, c)
                         << " vs " << +b(r, c));
        return false;
      }
    }
  }
  return true;
}

/// True when two parameter sets are identical (spec, shape, bitwise scales, zero points).
inline bool same_params(const quant_params& a, const quant_params& b, const std::string& what) {
  bool ok = a.spec == b.spec && a.rows == b.rows && a.cols == b.cols &&
            a.scales.size() == b.scales.size() && a.zero_points == b.zero_points;
  for (std::size_t i = 0; ok && i < a.scales.size(); ++i)
    ok = bits_of(a.scales[i]) == bits_of(b.scales[i]);
  if (!ok) BOOST_ERROR(what << ": parameters differ");
  return ok;
}

/// A row-major buffer with a row stride larger than its width, filled outside the view with a
/// sentinel, so tests see both strided access and writes outside the view.
template <class T>
struct padded {
  index_t rows, cols, stride;
  std::vector<T> buf;
  padded(index_t r, index_t c, index_t pad, T sentinel)
      : rows(r),
        cols(c),
        stride(c + pad),
        buf(static_cast<std::size_t>(r * (c + pad) + 1), sentinel) {}
  matrix_view<T> view() { return matrix_view<T>(buf.data(), rows, cols, stride); }
  matrix_view<const T> cview() const {
    return matrix_view<const T>(buf.data(), rows, cols, stride);
  }
  /// True when every element outside the view still holds the sentinel.
  bool padding_intact(T sentinel) const {
    for (std::size_t i = 0; i < buf.size(); ++i) {
      const auto r = static_cast<index_t>(i) / stride, c = static_cast<index_t>(i) % stride;
      if ((r >= rows || c >= cols) && std::memcmp(&buf[i], &sentinel, sizeof(T)) != 0) return false;
    }
    return true;
  }
};

/// Kinds of test data; each stresses a different part of the quantizer.
enum class data_kind {
  normal,      ///< N(0, 1)
  outliers,    ///< N(0, 1) with a few values 100x larger
  positive,    ///< U(5, 6): asymmetric zero point far from 0
  negative,    ///< U(-3, -1)
  row_scales,  ///< N(0, 1) times 10^k, k changing per row
  with_zeros,  ///< half the values exactly 0, some rows all zero
  denormal,    ///< subnormal magnitudes mixed with zeros
  huge,        ///< magnitudes near 1e30 (Δ clamps at 1e4)
};

inline const char* to_string(data_kind k) {
  switch (k) {
    case data_kind::normal:
      return "normal";
    case data_kind::outliers:
      return "outliers";
    case data_kind::positive:
      return "positive";
    case data_kind::negative:
      return "negative";
    case data_kind::row_scales:
      return "row_scales";
    case data_kind::with_zeros:
      return "with_zeros";
    case data_kind::denormal:
      return "denormal";
    case data_kind::huge:
      return "huge";
  }
  return "?";
}

inline constexpr data_kind all_data_kinds[] = {
    data_kind::normal,     data_kind::outliers,   data_kind::positive, data_kind::negative,
    data_kind::row_scales, data_kind::with_zeros, data_kind::denormal, data_kind::huge};

/// Fills a view with data of the given kind (deterministic for a seed).
inline void fill(matrix_view<float> x, data_kind kind, std::uint64_t seed) {
  std::mt19937_64 gen(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> unit(0.0f, 1.0f);
  for (index_t r = 0; r < x.rows(); ++r) {
    const bool zero_row = kind == data_kind::with_zeros && r % 3 == 1;
    for (index_t c = 0; c < x.cols(); ++c) {
      float v = normal(gen);
      switch (kind) {
        case data_kind::normal:
          break;
        case data_kind::outliers:
          v *= unit(gen) < 0.03f ? 100.0f : 1.0f;
          break;
        case data_kind::positive:
          v = 5.0f + unit(gen);
          break;
        case data_kind::negative:
          v = -1.0f - 2.0f * unit(gen);
          break;
        case data_kind::row_scales:
          v *= std::pow(10.0f, static_cast<float>(r % 9) - 4.0f);
          break;
        case data_kind::with_zeros:
          v = zero_row || unit(gen) < 0.5f ? 0.0f : v;
          break;
        case data_kind::denormal:
          v = unit(gen) < 0.2f ? 0.0f : v * 1e-39f;
          break;
        case data_kind::huge:
          v *= 1e30f;
          break;
      }
      x(r, c) = v;
    }
  }
}

}  // namespace masquant::testing

// testing.hpp: helpers shared by masquant's tests (random tensors, comparisons). Not installed.
#pragma once

#include <cassert>
#include <cmath>
#include <cstdint>
#include <masquant/tensor/view.hpp>
#include <random>
#include <vector>

namespace masquant::testing {

/// A rows x cols row-major matrix that owns its storage (tests only).
template <class T>
struct matrix {
  index_t rows = 0, cols = 0;
  std::vector<T> data;
  matrix() = default;
  matrix(index_t r, index_t c, T fill = T{})
      : rows(r), cols(c), data(static_cast<std::size_t>(r * c), fill) {}
  // Bounds-checked in debug builds: a column past the width would silently hit the next row.
  T& operator()(index_t r, index_t c) {
    assert(r >= 0 && r < rows && c >= 0 && c < cols);
    return data[static_cast<std::size_t>(r * cols + c)];
  }
  const T& operator()(index_t r, index_t c) const {
    assert(r >= 0 && r < rows && c >= 0 && c < cols);
    return data[static_cast<std::size_t>(r * cols + c)];
  }
  matrix_view<T> view() { return matrix_view<T>(data.data(), rows, cols); }
  matrix_view<const T> view() const { return matrix_view<const T>(data.data(), rows, cols); }
  matrix_view<const T> cview() const { return view(); }
};

/// Deterministic random source for tests (fixed seeds keep failures reproducible).
inline std::mt19937_64& rng(std::uint64_t reseed = 0) {
  static std::mt19937_64 gen(12345);
  if (reseed) gen.seed(reseed);
  return gen;
}

/// rows x cols matrix of N(0, sigma^2) floats.
inline matrix<float> random_normal(index_t rows, index_t cols, float sigma = 1.0f,
                                   std::uint64_t seed = 1) {
  std::mt19937_64 gen(seed);
  std::normal_distribution<float> dist(0.0f, sigma);
  matrix<float> m(rows, cols);
  for (auto& v : m.data) v = dist(gen);
  return m;
}

/// rows x cols matrix of U(lo, hi) floats.
inline matrix<float> random_uniform(index_t rows, index_t cols, float lo, float hi,
                                    std::uint64_t seed = 1) {
  std::mt19937_64 gen(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  matrix<float> m(rows, cols);
  for (auto& v : m.data) v = dist(gen);
  return m;
}

}  // namespace masquant::testing

// gemm_testing.hpp: helpers for the INT8 GEMM tests (random int8 data, thread counts). Not
// installed.
#pragma once

#include <cstdint>
#include <masquant/gemm/int8_gemm.hpp>
#include <masquant/gemm/reference.hpp>
#include <masquant/tensor/view.hpp>
#include <random>
#include <string>
#include <vector>

#include "support/testing.hpp"

namespace masquant::testing {

/// rows x cols int8 matrix, uniform in [lo, hi].
inline matrix<std::int8_t> random_int8(index_t rows, index_t cols, int lo, int hi,
                                       std::uint64_t seed) {
  std::mt19937_64 gen(seed);
  std::uniform_int_distribution<int> dist(lo, hi);
  matrix<std::int8_t> m(rows, cols);
  for (auto& v : m.data) v = static_cast<std::int8_t>(dist(gen));
  return m;
}

/// n positive scales in [lo, hi].
inline std::vector<float> random_scales(index_t n, float lo, float hi, std::uint64_t seed) {
  std::mt19937_64 gen(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> s(static_cast<std::size_t>(n));
  for (auto& v : s) v = dist(gen);
  return s;
}

/// Label for failure messages: "isa=avx2 M=3 K=65 N=17 bits=4".
inline std::string gemm_case(gemm_isa isa, index_t m, index_t k, index_t n, int bits) {
  return "isa=" + std::string(to_string(isa)) + " M=" + std::to_string(m) +
         " K=" + std::to_string(k) + " N=" + std::to_string(n) + " bits=" + std::to_string(bits);
}

/// Number of elements where two int32 matrices differ (first mismatch written to `where`).
inline index_t count_mismatches(const matrix<std::int32_t>& x, const matrix<std::int32_t>& y,
                                std::string* where = nullptr) {
  index_t bad = 0;
  for (index_t r = 0; r < x.rows; ++r) {
    for (index_t c = 0; c < x.cols; ++c) {
      if (x(r, c) != y(r, c)) {
        if (bad == 0 && where != nullptr) {
          *where = "(" + std::to_string(r) + ", " + std::to_string(c) +
                   "): " + std::to_string(x(r, c)) + " vs " + std::to_string(y(r, c));
        }
        ++bad;
      }
    }
  }
  return bad;
}

}  // namespace masquant::testing

// random.hpp: a small seeded generator whose sequence is fixed by this file alone (the standard
// distributions are implementation-defined, which would make results differ between libraries).
#pragma once

#include <algorithm>
#include <cstdint>
#include <masquant/config.hpp>
#include <numeric>
#include <vector>

namespace masquant::detail {

/// SplitMix64 (Steele, Lea, Flood 2014): 64-bit state, full period, good enough to sample tokens.
class splitmix64 {
 public:
  explicit splitmix64(std::uint64_t seed) noexcept : state_(seed) {}

  std::uint64_t next() noexcept {
    std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }

  /// Uniform in [0, n), n >= 1, without modulo bias (rejects the lowest 2^64 mod n values).
  std::uint64_t below(std::uint64_t n) noexcept {
    const std::uint64_t threshold = (0 - n) % n;
    for (;;) {
      const std::uint64_t r = next();
      if (r >= threshold) return r % n;
    }
  }

 private:
  std::uint64_t state_;
};

/// Draws k distinct indices of [0, n) per call, by a partial Fisher-Yates shuffle of a
/// permutation kept between calls; returns them sorted (for memory locality).
class index_sampler {
 public:
  explicit index_sampler(index_t n) : perm_(static_cast<std::size_t>(n)) {
    std::iota(perm_.begin(), perm_.end(), index_t{0});
  }

  void draw(index_t k, splitmix64& rng, std::vector<index_t>& out) {
    const auto n = static_cast<index_t>(perm_.size());
    MASQUANT_ASSERT(k >= 0 && k <= n);
    for (index_t i = 0; i < k; ++i) {
      const auto j = i + static_cast<index_t>(rng.below(static_cast<std::uint64_t>(n - i)));
      std::swap(perm_[static_cast<std::size_t>(i)], perm_[static_cast<std::size_t>(j)]);
    }
    out.assign(perm_.begin(), perm_.begin() + k);
    std::sort(out.begin(), out.end());
  }

 private:
  std::vector<index_t> perm_;
};

}  // namespace masquant::detail

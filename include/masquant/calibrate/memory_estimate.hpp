// memory_estimate.hpp: how much memory calibrate() needs for one layer, estimated from the
// shapes and the config before it starts.
#pragma once

#include <algorithm>
#include <cstdint>
#include <masquant/calibrate/config.hpp>
#include <masquant/config.hpp>
#include <string>
#include <vector>

namespace masquant {

/// One phase of calibrate() and the bytes it holds at its peak (its own buffers plus what lives
/// through the whole call).
struct calibration_memory_phase {
  std::string name;  ///< "statistics", "smoothing", "quantization", "compensation", "report"
  std::string what;  ///< its largest buffers, for messages
  std::uint64_t bytes = 0;
};

/// The estimate of estimate_calibration_memory().
struct calibration_memory {
  std::uint64_t peak_bytes = 0;  ///< the largest phase
  std::vector<calibration_memory_phase> phases;
  /// The phase of peak_bytes.
  const calibration_memory_phase& peak() const {
    return *std::max_element(phases.begin(), phases.end(),
                             [](const auto& a, const auto& b) { return a.bytes < b.bytes; });
  }
};

/// Estimates the heap memory calibrate() allocates for a d_out x d_in layer with `tokens[m]`
/// calibration tokens of modality m (m = 0 the reference), `config` and `threads` threads, at
/// the peak of each phase. The caller's own data (the weight and the tokens) is not included.
///
/// A model of calibrate() as it is written today, kept next to it: update it when calibrate()
/// changes what it holds. Its assumptions, by phase (8-byte doubles, 4-byte floats):
/// - throughout, when compensating (rank > 0, more than one modality): one d_in x d_in double
///   Gram per non-reference modality (modality_stats, gram_mode::non_reference); from the
///   quantization on, the result (qweight, smoothing factors, L and R of rank r);
/// - smoothing (learned MAS or the alpha search): the evaluator's stacked weight, smoothed
///   weight, its quantization and gradient (4 float d_out x d_in matrices), its cache of float
///   outputs (at most 2^26 floats) and its 512-token slabs;
/// - quantization: W·diag(s_ref) as float and its levels;
/// - compensation (one modality at a time): the dequantized shared weight and ΔW (double
///   d_out x d_in each), the smoothed Gram copy, and then either (exact SVD) the whitening
///   factor (one d_in x d_in double for Cholesky, two for eigen), T·ΔWᵀ, the BDCSVD's copy of it,
///   V and its work space (3 min(d_in, d_out)² doubles), or (randomized, k = r + oversampling) six
///   thin d x k matrices; with quantized_compensation also Q_w(W·diag(s_m)) dequantized;
/// - report: five deployable layers (packed levels, bf16 or float factors) and per thread a
///   128-token chunk of float outputs, their double copy and the layers' workspaces.
/// Only these large buffers are counted; allocator overhead and fragmentation are not. Checked
/// against valgrind massif on the project machine (2 x 256 tokens, 2 learning steps, the peak
/// in smoothing): 13.0 MiB estimated for 12.0 MiB of heap at d = 512, 38.0 for 35.7 at
/// d = 1024 (docs/reliability.md).
inline calibration_memory estimate_calibration_memory(index_t d_in, index_t d_out,
                                                      const std::vector<index_t>& tokens,
                                                      const calibration_config& config,
                                                      int threads = 1) {
  using u64 = std::uint64_t;
  const u64 a = static_cast<u64>(std::max<index_t>(d_in, 0));
  const u64 b = static_cast<u64>(std::max<index_t>(d_out, 0));
  const u64 ab = a * b, aa = a * a, mn = std::min(a, b);
  const u64 mods = tokens.size();
  u64 compensated = 0, total_tokens = 0;
  for (std::size_t m = 0; m < tokens.size(); ++m) {
    total_tokens += static_cast<u64>(std::max<index_t>(tokens[m], 0));
    if (m > 0 && tokens[m] > 0) ++compensated;
  }
  const u64 rank = mods > 1 ? static_cast<u64>(config.rank.resolve(d_in, d_out)) : 0;
  const u64 grams = rank > 0 ? (mods - 1) * aa * 8 : 0;
  const u64 t = static_cast<u64>(std::max(threads, 1));
  const u64 result = ab + mods * a * 4 + compensated * (a + b) * rank * 4 + b * 4;

  calibration_memory out;
  out.phases.push_back({"statistics",
                        "the Gram matrices (d_in x d_in doubles per non-reference modality)",
                        grams + mods * a * 8 * 8});
  if (config.method == smoothing_method::mas && (config.learn_steps > 0 || config.alpha_search)) {
    const u64 cache = std::min<u64>(total_tokens * b, u64{1} << 26) * 4;
    const u64 slabs = (u64{2048} * a + u64{1024} * b) * 4 + t * a * 8;  // 512-token slabs
    out.phases.push_back({"smoothing",
                          "the smoothing evaluator (4 float d_out x d_in matrices, a cache of "
                          "float outputs, token slabs)",
                          grams + 4 * ab * 4 + cache + slabs});
  }
  out.phases.push_back(
      {"quantization", "W·diag(s_ref) as float and its levels", grams + result + ab * 4 + ab});
  if (rank > 0 && compensated > 0) {
    const u64 k =
        std::min<u64>(mn, rank + static_cast<u64>(std::max<index_t>(config.svd.oversampling, 0)));
    const bool randomized = config.svd.method == svd_method::randomized ||
                            (config.svd.method == svd_method::automatic && 4 * k <= mn);
    u64 svd = 0;
    if (randomized) {
      svd = (3 * a + 3 * b) * k * 8 + 2 * k * k * 8;
    } else {
      const u64 whitening = config.whitening.method == whitening_method::none    ? 0
                            : config.whitening.method == whitening_method::eigen ? 2 * aa * 8
                                                                                 : aa * 8;
      svd = whitening + 2 * ab * 8 + b * mn * 8 + 3 * mn * mn * 8;
    }
    const u64 quantized = config.quantized_compensation ? ab * 4 + ab + ab * 8 : 0;
    out.phases.push_back({"compensation",
                          std::string("the dequantized shared weight and ΔW (d_out x d_in doubles "
                                      "each), a Gram copy, ") +
                              (randomized ? "the randomized SVD's thin matrices"
                                          : "the whitening and the exact SVD of T·ΔWᵀ (d_in x "
                                            "d_out doubles, twice)"),
                          grams + result + 2 * ab * 8 + aa * 8 + svd + quantized});
  }
  if (config.report) {
    const u64 layers = 5 * (ab + b * 8) + compensated * (a + b) * rank * 4;
    const u64 per_thread = 128 * b * (4 + 4 + 8) + 128 * a * 8;
    out.phases.push_back({"report", "five deployable layers and per-thread 128-token output chunks",
                          grams + result + layers + ab * 4 + t * per_thread});
  }
  out.peak_bytes = out.peak().bytes;
  return out;
}

}  // namespace masquant

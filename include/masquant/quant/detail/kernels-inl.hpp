// kernels-inl.hpp: the quant layer's row kernels and drivers for one family (fake-quant,
// quantize, dequantize, compute_params, the row quantizers). Family source
// (detail/isa/foreach_family.hpp), compiled per family by quant/detail/families.hpp; the public
// functions check their arguments and call the run_* entries at the end through the dispatcher.
//
// Bit-exactness with masquant::reference rests on using only correctly rounded IEEE operations
// (division, add, sub, mul, min/max, round-to-nearest-even, exact integer conversions) in the
// same order in the vector body, the scalar tail and the reference. No reciprocal, no FMA: the
// formulas contain no a*b+c pattern the compiler could contract. The portable family runs the
// scalar loops only.

namespace quant {

#include <masquant/quant/detail/formulas-inl.hpp>

using simd::vf;

// --- sources: where a run of values comes from -----------------------------------------------

/// Reads x[j].
struct plain_source {
  const float* x;
  float at(index_t j) const noexcept { return x[j]; }
  vf load(index_t j) const noexcept { return simd::loadu(x + j); }
};

/// Reads x[j] like plain_source and, per vector, prefetches `next + j` (the same columns of the
/// row the caller handles next) into L2: the read of that row then overlaps this row's writes.
struct prefetching_source : plain_source {
  const float* next;
  vf load(index_t j) const noexcept {
    __builtin_prefetch(next + j, 0, 2);
    return plain_source::load(j);
  }
};

/// Reads x[j] / s[j] (a true float division: the smoothed activation x ⊘ s).
struct smoothed_source {
  const float* x;
  const float* s;
  float at(index_t j) const noexcept { return x[j] / s[j]; }
  vf load(index_t j) const noexcept { return simd::loadu(x + j) / simd::loadu(s + j); }
};

// --- sinks: where quantized levels go -----------------------------------------------------------

/// Writes the dequantized value (q - z)·Δ as float.
struct float_sink {
  float* y;
  float delta;
  float zf;
  void put(index_t j, float q) const noexcept { y[j] = (q - zf) * delta; }
  void put(index_t j, vf q) const noexcept {
    simd::storeu(y + j, (q - simd::fsplat(zf)) * simd::fsplat(delta));
  }
};

/// float_sink with non-temporal stores for the full vectors, which must land on addresses aligned
/// to the vector size (y aligned, j a multiple of the width). For outputs far larger than the
/// caches: a normal store first reads the line it overwrites. Callers fence with stream_fence.
struct streaming_float_sink : float_sink {
  using float_sink::put;
  void put(index_t j, vf q) const noexcept {
    simd::stream(y + j, (q - simd::fsplat(zf)) * simd::fsplat(delta));
  }
};

/// Bytes of one float vector (a float for the portable family).
inline constexpr std::size_t vector_bytes = sizeof(float) * simd::float_lanes;

/// Output bytes from which fake_quant writes with non-temporal stores (the last-level cache of
/// the machines we measure on is 32 MiB).
inline constexpr std::size_t streaming_min_bytes = std::size_t{32} << 20;

/// When `active`, orders the non-temporal stores of this thread before anything that follows,
/// also when the scope is left by an exception.
struct stream_fence {
  bool active;
  explicit stream_fence(bool on) noexcept : active(on) {}
  stream_fence(const stream_fence&) = delete;
  stream_fence& operator=(const stream_fence&) = delete;
  ~stream_fence() {
#if defined(__SSE__)
    if (active) _mm_sfence();
#endif
  }
};

/// Writes the level q minus the storage offset as int8.
struct int8_sink {
  std::int8_t* q;
  float offset;
  void put(index_t j, float level) const noexcept {
    q[j] = static_cast<std::int8_t>(static_cast<std::int32_t>(level - offset));
  }
  void put(index_t j, vf level) const noexcept {
    // Truncation is exact: level - offset is an integer-valued float.
    simd::store_i8(q + j, simd::to_int(level - simd::fsplat(offset)));
  }
};

// --- kernels --------------------------------------------------------------------------------

/// Statistics of a run: absmax in `hi` (symmetric) or min/max in lo/hi (asymmetric).
/// `finite` is false when some value was NaN or ±Inf.
struct run_stats {
  float lo = std::numeric_limits<float>::infinity();
  float hi = -std::numeric_limits<float>::infinity();
  bool finite = true;
};

/// Folds the absolute maximum of src[0..n) into st.hi (st.hi starts at 0) and clears
/// st.finite when a value is not finite. Non-finite values are detected by summing x - x,
/// which is NaN iff some x is NaN or Inf, so the check costs two vector ops per load.
template <class Src>
inline void absmax_run(const Src& src, index_t n, run_stats& st) noexcept {
  float m = std::max(st.hi, 0.0f);
  float chk = 0.0f;
  index_t j = 0;
  if constexpr (simd::enabled) {
    constexpr index_t w = simd::float_lanes;
    vf m0 = simd::fsplat(0.0f), m1 = m0, c0 = m0, c1 = m0;
    // Bounds computed up front keep GCC's loop analysis from inventing overflowing iterations.
    const index_t n2 = n - n % (2 * w);
    for (; j < n2; j += 2 * w) {
      const vf a = src.load(j);
      const vf b = src.load(j + w);
      m0 = simd::max(m0, simd::abs(a));
      m1 = simd::max(m1, simd::abs(b));
      c0 = c0 + (a - a);
      c1 = c1 + (b - b);
    }
    if (n - j >= w) {
      const vf a = src.load(j);
      m0 = simd::max(m0, simd::abs(a));
      c0 = c0 + (a - a);
      j += w;
    }
    alignas(64) float lm[w];
    alignas(64) float lc[w];
    simd::storeu(lm, simd::max(m0, m1));
    simd::storeu(lc, c0 + c1);
    for (index_t k = 0; k < w; ++k) {
      m = std::max(m, lm[k]);
      chk += lc[k];
    }
  }
  for (; j < n; ++j) {
    const float v = src.at(j);
    m = std::max(m, std::abs(v));
    chk += v - v;
  }
  st.hi = m;
  if (chk != chk) st.finite = false;
}

/// Folds the minimum and maximum of src[0..n) into st.lo and st.hi; clears st.finite as
/// absmax_run does.
template <class Src>
inline void minmax_run(const Src& src, index_t n, run_stats& st) noexcept {
  float lo = st.lo, hi = st.hi;
  float chk = 0.0f;
  index_t j = 0;
  if constexpr (simd::enabled) {
    constexpr index_t w = simd::float_lanes;
    vf l0 = simd::fsplat(lo), h0 = simd::fsplat(hi), c0 = simd::fsplat(0.0f);
    for (const index_t nv = n - n % w; j < nv; j += w) {
      const vf a = src.load(j);
      l0 = simd::min(l0, a);
      h0 = simd::max(h0, a);
      c0 = c0 + (a - a);
    }
    alignas(64) float ll[w];
    alignas(64) float lh[w];
    alignas(64) float lc[w];
    simd::storeu(ll, l0);
    simd::storeu(lh, h0);
    simd::storeu(lc, c0);
    for (index_t k = 0; k < w; ++k) {
      lo = std::min(lo, ll[k]);
      hi = std::max(hi, lh[k]);
      chk += lc[k];
    }
  }
  for (; j < n; ++j) {
    const float v = src.at(j);
    lo = std::min(lo, v);
    hi = std::max(hi, v);
    chk += v - v;
  }
  st.lo = lo;
  st.hi = hi;
  if (chk != chk) st.finite = false;
}

/// Δ and z of one run, and the level bounds, as floats ready for the kernels.
struct level_params {
  float delta = 1.0f;
  float zf = 0.0f;  ///< zero point (0 when symmetric)
  float qmin = 0.0f;
  float qmax = 0.0f;
};

/// The integer level of one value: clamp(rne(x / Δ) + z, qmin, qmax). std::nearbyint rounds
/// half to even under the default FE_TONEAREST mode.
inline float level_of(float x, const level_params& p) noexcept {
  return std::min(std::max(std::nearbyint(x / p.delta) + p.zf, p.qmin), p.qmax);
}

/// Quantizes src[0..n) with p and hands every level to sink.put(j, level).
template <class Src, class Sink>
inline void quantize_run(const Src& src, index_t n, const level_params& p,
                         const Sink& sink) noexcept {
  index_t j = 0;
  if constexpr (simd::enabled) {
    constexpr index_t w = simd::float_lanes;
    const vf d = simd::fsplat(p.delta), z = simd::fsplat(p.zf), lo = simd::fsplat(p.qmin),
             hi = simd::fsplat(p.qmax);
    for (const index_t nv = n - n % w; j < nv; j += w) {
      const vf v = src.load(j);
      sink.put(j, simd::min(simd::max(simd::nearbyint(v / d) + z, lo), hi));
    }
  }
  for (; j < n; ++j) sink.put(j, level_of(src.at(j), p));
}

/// y[j] = float(q[j] + shift) · Δ for j in [0, n), shift = storage offset - z.
inline void dequantize_run(const std::int8_t* q, index_t n, std::int32_t shift, float delta,
                           float* y) noexcept {
  index_t j = 0;
  if constexpr (simd::enabled) {
    constexpr index_t w = simd::float_lanes;
    const simd::vi s = simd::isplat(shift);
    const vf d = simd::fsplat(delta);
    for (const index_t nv = n - n % w; j < nv; j += w)
      simd::storeu(y + j, simd::to_float(simd::load_i8(q + j) + s) * d);
  }
  for (; j < n; ++j) y[j] = static_cast<float>(std::int32_t{q[j]} + shift) * delta;
}

// --- drivers --------------------------------------------------------------------------------

/// Row r of x, or null for a view without columns (whose data may be null).
template <class T>
inline T* row_ptr(matrix_view<T> x, index_t r) noexcept {
  return x.cols() == 0 ? nullptr : x.row_data(r);
}

/// Folds the statistics the spec needs (absmax or min/max) of src[0..n) into st.
template <class Src>
inline void stats_run(const Src& src, index_t n, bool symmetric, run_stats& st) noexcept {
  if (symmetric)
    absmax_run(src, n, st);
  else
    minmax_run(src, n, st);
}

/// Δ, z and level bounds from the statistics of a run (an empty run counts as all zeros).
inline level_params level_params_from(const run_stats& st, const quant_spec& spec) {
  level_params p;
  p.qmin = static_cast<float>(spec.qmin());
  p.qmax = static_cast<float>(spec.qmax());
  if (spec.symmetric) {
    p.delta = symmetric_scale(std::max(st.hi, 0.0f), spec.qmax());
  } else {
    const bool empty = st.lo > st.hi;
    const float lo = empty ? 0.0f : st.lo, hi = empty ? 0.0f : st.hi;
    p.delta = asymmetric_scale(lo, hi, spec.qmax());
    p.zf = static_cast<float>(asymmetric_zero_point(lo, p.delta));
  }
  return p;
}

/// The level parameters stored at index k of p.
inline level_params level_params_at(const quant_params& p, index_t k) noexcept {
  level_params lp;
  lp.delta = p.scales[static_cast<std::size_t>(k)];
  lp.zf = p.spec.symmetric ? 0.0f : static_cast<float>(p.zero_points[static_cast<std::size_t>(k)]);
  lp.qmin = static_cast<float>(p.spec.qmin());
  lp.qmax = static_cast<float>(p.spec.qmax());
  return lp;
}

/// Stores lp at index k of out (when out is not null).
inline void store_level_params(quant_params* out, index_t k, const level_params& lp) {
  if (!out) return;
  out->scales[static_cast<std::size_t>(k)] = lp.delta;
  if (!out->spec.symmetric)
    out->zero_points[static_cast<std::size_t>(k)] = static_cast<std::int32_t>(lp.zf);
}

/// Computes the parameters of x under spec and calls emit(r, c0, n, level_params) for every
/// non-empty run of n columns starting at (r, c0) that shares one Δ. Rows go in order; a row is
/// emitted only after every value of it (of the whole tensor for per_tensor) is known to be finite,
/// so on error rows before the offending one are done and it and later rows are untouched.
/// Parameters go to *out when out is not null (it must be sized for x and spec).
template <class Emit>
inline void quantize_rows(const char* op, matrix_view<const float> x, const quant_spec& spec,
                          quant_params* out, Emit&& emit) {
  const index_t rows = x.rows(), cols = x.cols();
  const bool sym = spec.symmetric;
  switch (spec.gran) {
    case granularity::per_tensor: {
      run_stats st;
      for (index_t r = 0; r < rows; ++r) {
        stats_run(plain_source{row_ptr(x, r)}, cols, sym, st);
        if (!st.finite) masquant::detail::raise_non_finite(op, x, r);
      }
      const level_params lp = level_params_from(st, spec);
      store_level_params(out, 0, lp);
      if (cols > 0)
        for (index_t r = 0; r < rows; ++r) emit(r, index_t{0}, cols, lp);
      return;
    }
    case granularity::per_row:
      for (index_t r = 0; r < rows; ++r) {
        run_stats st;
        stats_run(plain_source{row_ptr(x, r)}, cols, sym, st);
        if (!st.finite) masquant::detail::raise_non_finite(op, x, r);
        const level_params lp = level_params_from(st, spec);
        store_level_params(out, r, lp);
        if (cols > 0) emit(r, index_t{0}, cols, lp);
      }
      return;
    case granularity::per_group: {
      const index_t g = spec.group_size;
      const index_t groups = (cols + g - 1) / g;
      std::vector<level_params> row_params(static_cast<std::size_t>(groups));
      for (index_t r = 0; r < rows; ++r) {
        const float* xr = row_ptr(x, r);
        bool finite = true;
        for (index_t k = 0; k < groups; ++k) {
          run_stats st;
          stats_run(plain_source{xr + k * g}, std::min(g, cols - k * g), sym, st);
          finite = finite && st.finite;
          row_params[static_cast<std::size_t>(k)] = level_params_from(st, spec);
        }
        if (!finite) masquant::detail::raise_non_finite(op, x, r);
        for (index_t k = 0; k < groups; ++k) {
          const level_params& lp = row_params[static_cast<std::size_t>(k)];
          store_level_params(out, r * groups + k, lp);
          emit(r, k * g, std::min(g, cols - k * g), lp);
        }
      }
      return;
    }
  }
}

/// As quantize_rows, with given parameters: checks each row is finite, then emits its runs.
template <class Emit>
inline void quantize_rows_with(const char* op, matrix_view<const float> x, const quant_params& p,
                               Emit&& emit) {
  const index_t rows = x.rows(), cols = x.cols();
  const index_t g = p.spec.gran == granularity::per_group ? p.spec.group_size : cols;
  const index_t groups = p.spec.gran == granularity::per_group ? (cols + g - 1) / g : 1;
  for (index_t r = 0; r < rows; ++r) {
    run_stats st;
    absmax_run(plain_source{row_ptr(x, r)}, cols, st);
    if (!st.finite) masquant::detail::raise_non_finite(op, x, r);
    if (cols == 0) continue;
    const index_t base = p.spec.gran == granularity::per_tensor ? 0 : r * groups;
    for (index_t k = 0; k < groups; ++k)
      emit(r, k * g, std::min(g, cols - k * g), level_params_at(p, base + k));
  }
}

/// Checks that no value of x is NaN or Inf (throws errc::non_finite naming the first).
inline void check_finite(const char* op, matrix_view<const float> x) {
  for (index_t r = 0; r < x.rows(); ++r) {
    run_stats st;
    absmax_run(plain_source{row_ptr(x, r)}, x.cols(), st);
    if (!st.finite) masquant::detail::raise_non_finite(op, x, r);
  }
}

/// The statistics pass of a symmetric row: Δ, or an error naming the first non-finite value.
template <class Src>
inline level_params symmetric_row_params(const char* op, const Src& src, const float* x,
                                         const float* s, index_t n, int bits, index_t row) {
  run_stats st;
  absmax_run(src, n, st);
  if (!st.finite) masquant::detail::raise_non_finite_row(op, x, s, n, row);
  const std::int32_t qmax = (std::int32_t{1} << (bits - 1)) - 1;
  level_params lp;
  lp.delta = symmetric_scale(st.hi, qmax);
  lp.qmin = -static_cast<float>(qmax);
  lp.qmax = static_cast<float>(qmax);
  return lp;
}

/// A symmetric row of src (x, or x ⊘ s), written by make_sink(Δ); returns Δ.
template <class Src, class MakeSink>
inline float symmetric_row(const char* op, const Src& src, const float* x, const float* s,
                           index_t n, int bits, index_t row, MakeSink make_sink) {
  const level_params lp = symmetric_row_params(op, src, x, s, n, bits, row);
  quantize_run(src, n, lp, make_sink(lp.delta));
  return lp.delta;
}

}  // namespace quant

// --- entries (arguments checked by the public functions) -----------------------------------

/// fake_quant: y = dequantized levels of x (y may be x).
inline void run_fake_quant(tag, matrix_view<const float> x, const quant_spec& spec,
                           matrix_view<float> y) {
  using namespace quant;
  constexpr const char* op = "fake_quant";
  if (spec.is_identity()) {
    check_finite(op, x);
    if (x.data() != y.data() && x.cols() > 0)
      for (index_t r = 0; r < x.rows(); ++r)
        std::copy(x.row_data(r), x.row_data(r) + x.cols(), y.row_data(r));
    return;
  }
  // A matrix far larger than the caches: while a row is written, the same columns of the next
  // row are prefetched, so its read (which the absmax pass would otherwise do alone, as one
  // stream at ~18 GB/s here) overlaps the writes. Out of place, the output goes out with
  // non-temporal stores (from the first vector-aligned element of each run): a copy loop runs at
  // ~18 GB/s here with plain stores, ~27 without the read of each line it overwrites. In place
  // the lines were just read into cache, so plain stores are right.
  const bool large = simd::enabled && static_cast<std::size_t>(y.rows()) *
                                              static_cast<std::size_t>(y.cols()) * sizeof(float) >=
                                          streaming_min_bytes;
  const bool stream = large && x.data() != y.data();
  const stream_fence fence(stream);
  quantize_rows(op, x, spec, nullptr,
                [&](index_t r, index_t c0, index_t n, const level_params& lp) {
                  const float* in = x.row_data(r) + c0;
                  float* out = y.row_data(r) + c0;
                  const float_sink sink{out, lp.delta, lp.zf};
                  if (!large) {
                    quantize_run(plain_source{in}, n, lp, sink);
                    return;
                  }
                  const float* next = r + 1 < x.rows() ? x.row_data(r + 1) + c0 : in;
                  if (!stream) {
                    quantize_run(prefetching_source{{in}, next}, n, lp, sink);
                    return;
                  }
                  const std::size_t mis = reinterpret_cast<std::uintptr_t>(out) % vector_bytes;
                  const index_t head = std::min<index_t>(
                      n, mis == 0 ? 0 : static_cast<index_t>((vector_bytes - mis) / sizeof(float)));
                  quantize_run(plain_source{in}, head, lp, sink);
                  quantize_run(prefetching_source{{in + head}, next + head}, n - head, lp,
                               streaming_float_sink{{out + head, lp.delta, lp.zf}});
                });
}

/// compute_params: the parameters of x into p (sized for x and spec).
inline void run_compute_params(tag, matrix_view<const float> x, const quant_spec& spec,
                               quant_params& p) {
  quant::quantize_rows("compute_params", x, spec, &p,
                       [](index_t, index_t, index_t, const quant::level_params&) {});
}

/// quantize with given parameters.
inline void run_quantize(tag, matrix_view<const float> x, const quant_spec& spec,
                         const quant_params& params, matrix_view<std::int8_t> q) {
  using namespace quant;
  const float offset = static_cast<float>(spec.storage_offset());
  quantize_rows_with("quantize", x, params,
                     [&](index_t r, index_t c0, index_t n, const level_params& lp) {
                       quantize_run(plain_source{x.row_data(r) + c0}, n, lp,
                                    int8_sink{q.row_data(r) + c0, offset});
                     });
}

/// quantize, fused with the parameters (into p, sized for x and spec).
inline void run_quantize(tag, matrix_view<const float> x, const quant_spec& spec,
                         matrix_view<std::int8_t> q, quant_params& p) {
  using namespace quant;
  const float offset = static_cast<float>(spec.storage_offset());
  quantize_rows("quantize", x, spec, &p,
                [&](index_t r, index_t c0, index_t n, const level_params& lp) {
                  quantize_run(plain_source{x.row_data(r) + c0}, n, lp,
                               int8_sink{q.row_data(r) + c0, offset});
                });
}

/// dequantize.
inline void run_dequantize(tag, matrix_view<const std::int8_t> q, const quant_spec& spec,
                           const quant_params& params, matrix_view<float> x) {
  const index_t rows = q.rows(), cols = q.cols();
  if (cols == 0) return;
  const index_t g = spec.gran == granularity::per_group ? spec.group_size : cols;
  const index_t groups = (cols + g - 1) / g;
  for (index_t r = 0; r < rows; ++r) {
    const index_t base = spec.gran == granularity::per_tensor ? 0 : r * groups;
    for (index_t k = 0; k < groups; ++k) {
      const auto i = static_cast<std::size_t>(base + k);
      const std::int32_t z = spec.symmetric ? 0 : params.zero_points[i];
      quant::dequantize_run(q.row_data(r) + k * g, std::min(g, cols - k * g),
                            spec.storage_offset() - z, params.scales[i], x.row_data(r) + k * g);
    }
  }
}

/// The symmetric row quantizers: levels of x (s null) or of x ⊘ s into q; returns Δ.
inline float run_quantize_row(tag, const char* op, const float* x, const float* s, index_t n,
                              int bits, std::int8_t* q, index_t row) {
  using namespace quant;
  const auto sink = [q](float) { return int8_sink{q, 0.0f}; };
  if (s == nullptr) return symmetric_row(op, plain_source{x}, x, s, n, bits, row, sink);
  return symmetric_row(op, smoothed_source{x, s}, x, s, n, bits, row, sink);
}

/// ... and their fake-quant forms: dequantized values into y (y may be x); returns Δ.
inline float run_fake_quant_row(tag, const char* op, const float* x, const float* s, index_t n,
                                int bits, float* y, index_t row) {
  using namespace quant;
  const auto sink = [y](float delta) { return float_sink{y, delta, 0.0f}; };
  if (s == nullptr) return symmetric_row(op, plain_source{x}, x, s, n, bits, row, sink);
  return symmetric_row(op, smoothed_source{x, s}, x, s, n, bits, row, sink);
}

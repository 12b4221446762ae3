// driver.hpp: walks a matrix row by row (and group by group) for the SIMD path of the quant
// layer: statistics pass, then the writing pass, with the finiteness check in between.
#pragma once

#include <algorithm>
#include <masquant/quant/detail/common.hpp>
#include <masquant/quant/detail/kernels.hpp>
#include <masquant/quant/params.hpp>
#include <masquant/quant/spec.hpp>
#include <masquant/tensor/view.hpp>
#include <vector>

namespace masquant::detail {

/// Row r of x, or null for a view without columns (whose data may be null).
template <class T>
inline T* row_ptr(matrix_view<T> x, index_t r) noexcept {
  return x.cols() == 0 ? nullptr : x.row_data(r);
}

/// Folds the statistics the spec needs (absmax or min/max) of src[0..n) into st.
template <class Arch, class Src>
inline void stats_run(const Src& src, index_t n, bool symmetric, qsimd::run_stats& st) noexcept {
  if (symmetric)
    qsimd::absmax_run<Arch>(src, n, st);
  else
    qsimd::minmax_run<Arch>(src, n, st);
}

/// Δ, z and level bounds from the statistics of a run (an empty run counts as all zeros).
inline qsimd::level_params level_params_from(const qsimd::run_stats& st, const quant_spec& spec) {
  qsimd::level_params p;
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
inline qsimd::level_params level_params_at(const quant_params& p, index_t k) noexcept {
  qsimd::level_params lp;
  lp.delta = p.scales[static_cast<std::size_t>(k)];
  lp.zf = p.spec.symmetric ? 0.0f : static_cast<float>(p.zero_points[static_cast<std::size_t>(k)]);
  lp.qmin = static_cast<float>(p.spec.qmin());
  lp.qmax = static_cast<float>(p.spec.qmax());
  return lp;
}

/// Stores lp at index k of out (when out is not null).
inline void store_level_params(quant_params* out, index_t k, const qsimd::level_params& lp) {
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
template <class Arch, class Emit>
inline void quantize_rows(const char* op, matrix_view<const float> x, const quant_spec& spec,
                          quant_params* out, Emit&& emit) {
  const index_t rows = x.rows(), cols = x.cols();
  const bool sym = spec.symmetric;
  switch (spec.gran) {
    case granularity::per_tensor: {
      qsimd::run_stats st;
      for (index_t r = 0; r < rows; ++r) {
        stats_run<Arch>(qsimd::plain_source{row_ptr(x, r)}, cols, sym, st);
        if (!st.finite) raise_non_finite(op, x, r);
      }
      const qsimd::level_params lp = level_params_from(st, spec);
      store_level_params(out, 0, lp);
      if (cols > 0)
        for (index_t r = 0; r < rows; ++r) emit(r, index_t{0}, cols, lp);
      return;
    }
    case granularity::per_row:
      for (index_t r = 0; r < rows; ++r) {
        qsimd::run_stats st;
        stats_run<Arch>(qsimd::plain_source{row_ptr(x, r)}, cols, sym, st);
        if (!st.finite) raise_non_finite(op, x, r);
        const qsimd::level_params lp = level_params_from(st, spec);
        store_level_params(out, r, lp);
        if (cols > 0) emit(r, index_t{0}, cols, lp);
      }
      return;
    case granularity::per_group: {
      const index_t g = spec.group_size;
      const index_t groups = (cols + g - 1) / g;
      std::vector<qsimd::level_params> row_params(static_cast<std::size_t>(groups));
      for (index_t r = 0; r < rows; ++r) {
        const float* xr = row_ptr(x, r);
        bool finite = true;
        for (index_t k = 0; k < groups; ++k) {
          qsimd::run_stats st;
          stats_run<Arch>(qsimd::plain_source{xr + k * g}, std::min(g, cols - k * g), sym, st);
          finite = finite && st.finite;
          row_params[static_cast<std::size_t>(k)] = level_params_from(st, spec);
        }
        if (!finite) raise_non_finite(op, x, r);
        for (index_t k = 0; k < groups; ++k) {
          const qsimd::level_params& lp = row_params[static_cast<std::size_t>(k)];
          store_level_params(out, r * groups + k, lp);
          emit(r, k * g, std::min(g, cols - k * g), lp);
        }
      }
      return;
    }
  }
}

/// As quantize_rows, with given parameters: checks each row is finite, then emits its runs.
template <class Arch, class Emit>
inline void quantize_rows_with(const char* op, matrix_view<const float> x, const quant_params& p,
                               Emit&& emit) {
  const index_t rows = x.rows(), cols = x.cols();
  const index_t g = p.spec.gran == granularity::per_group ? p.spec.group_size : cols;
  const index_t groups = p.spec.gran == granularity::per_group ? (cols + g - 1) / g : 1;
  for (index_t r = 0; r < rows; ++r) {
    qsimd::run_stats st;
    qsimd::absmax_run<Arch>(qsimd::plain_source{row_ptr(x, r)}, cols, st);
    if (!st.finite) raise_non_finite(op, x, r);
    if (cols == 0) continue;
    const index_t base = p.spec.gran == granularity::per_tensor ? 0 : r * groups;
    for (index_t k = 0; k < groups; ++k)
      emit(r, k * g, std::min(g, cols - k * g), level_params_at(p, base + k));
  }
}

/// Checks that no value of x is NaN or Inf (throws errc::non_finite naming the first).
template <class Arch>
inline void check_finite(const char* op, matrix_view<const float> x) {
  for (index_t r = 0; r < x.rows(); ++r) {
    qsimd::run_stats st;
    qsimd::absmax_run<Arch>(qsimd::plain_source{row_ptr(x, r)}, x.cols(), st);
    if (!st.finite) raise_non_finite(op, x, r);
  }
}

}  // namespace masquant::detail

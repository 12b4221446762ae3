// fake_quant.hpp: quantize-dequantize of a float matrix in one pass (SIMD path, bit-identical
// to masquant::reference::fake_quant and to dequantize(quantize(x))).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <masquant/quant/detail/common.hpp>
#include <masquant/quant/detail/driver.hpp>
#include <masquant/quant/detail/kernels.hpp>
#include <masquant/quant/spec.hpp>
#include <masquant/tensor/view.hpp>
#include <xsimd/xsimd.hpp>

namespace masquant {

/// Writes y = (q - z) · Δ with q = clamp(rne(x / Δ) + z, qmin, qmax) and Δ, z computed from x
/// per tensor / row / group as `spec` says (z = 0 when symmetric); for an identity spec
/// (bits >= 16) y = x. Zeros come out as +0.
///
/// x, y: rows x cols floats (any row strides). y may be exactly x (in place); any other overlap
/// is undefined. Throws errc::invalid_argument (spec, or y aliasing x with another stride),
/// errc::shape_mismatch, errc::non_finite naming the row and column of the first NaN or Inf.
/// On errc::non_finite, rows before the offending one are written and it and all later rows
/// are untouched (per_tensor and identity: nothing is written); other errors write nothing.
/// On a matrix of 32 MiB or more the next row is prefetched while one is written, and an output
/// not in place is written with non-temporal stores, so it is not left in the caches; the values
/// are the same.
///
/// Example (per-token A8 activations, in place):
/// \code
///   masquant::fake_quant(x, {8, true, masquant::granularity::per_row}, x);
/// \endcode
template <class Arch = xsimd::default_arch>
void fake_quant(matrix_view<const float> x, const quant_spec& spec, matrix_view<float> y) {
  constexpr const char* op = "fake_quant";
  spec.validate(op);
  detail::check_same_shape(op, "output", x, y);
  detail::check_alias(op, x, y);
  if (spec.is_identity()) {
    detail::check_finite<Arch>(op, x);
    if (x.data() != y.data() && x.cols() > 0)
      for (index_t r = 0; r < x.rows(); ++r)
        std::copy(x.row_data(r), x.row_data(r) + x.cols(), y.row_data(r));
    return;
  }
  // A matrix far larger than the caches: while a row is written, the same columns of the next
  // row are prefetched, so its read (which the absmax pass would otherwise do alone, as one
  // stream) overlaps the writes. Out of place, the output goes out with non-temporal stores
  // (from the first vector-aligned element of each run), which skip the read of each line they
  // overwrite (measured in docs/performance.md, "Fake-quant and quantization"). In place the
  // lines were just read into cache, so plain stores are right.
  const bool large =
      detail::qsimd::has_simd<Arch> &&
      static_cast<std::size_t>(y.rows()) * static_cast<std::size_t>(y.cols()) * sizeof(float) >=
          detail::qsimd::streaming_min_bytes;
  const bool stream = large && x.data() != y.data();
  const detail::qsimd::stream_fence fence(stream);
  detail::quantize_rows<Arch>(
      op, x, spec, nullptr,
      [&](index_t r, index_t c0, index_t n, const detail::qsimd::level_params& lp) {
        const float* in = x.row_data(r) + c0;
        float* out = y.row_data(r) + c0;
        const detail::qsimd::float_sink sink{out, lp.delta, lp.zf};
        if (!large) {
          detail::qsimd::quantize_run<Arch>(detail::qsimd::plain_source{in}, n, lp, sink);
          return;
        }
        const float* next = r + 1 < x.rows() ? x.row_data(r + 1) + c0 : in;
        if (!stream) {
          detail::qsimd::quantize_run<Arch>(detail::qsimd::prefetching_source{{in}, next}, n, lp,
                                            sink);
          return;
        }
        constexpr std::size_t vb = detail::qsimd::vector_bytes<Arch>();
        const std::size_t mis = reinterpret_cast<std::uintptr_t>(out) % vb;
        const index_t head = std::min<index_t>(n, mis == 0 ? 0 : (vb - mis) / sizeof(float));
        detail::qsimd::quantize_run<Arch>(detail::qsimd::plain_source{in}, head, lp, sink);
        detail::qsimd::quantize_run<Arch>(
            detail::qsimd::prefetching_source{{in + head}, next + head}, n - head, lp,
            detail::qsimd::streaming_float_sink{{out + head, lp.delta, lp.zf}});
      });
}

/// fake_quant(x, spec, x): quantize-dequantize in place. Same errors; on errc::non_finite the
/// rows before the offending one are already replaced.
template <class Arch = xsimd::default_arch>
void fake_quant_inplace(matrix_view<float> x, const quant_spec& spec) {
  fake_quant<Arch>(x, spec, x);
}

}  // namespace masquant

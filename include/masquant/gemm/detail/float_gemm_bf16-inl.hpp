// float_gemm_bf16-inl.hpp: the bf16 products of the avx512 family with vdpbf16ps (AVX512_BF16):
// each instruction multiplies 16 lanes of bf16 pairs by one broadcast pair of the A row and adds
// both products to float lanes. Family source compiled in its own region, with AVX512_BF16 on top
// of the avx512 family (detail/isa/foreach_family.hpp, MASQUANT_FAMILY_SOURCE_BF16): called only
// where the CPU has it.

namespace float_gemm {

inline constexpr int bf16_mr = 6;
inline constexpr int bf16_np = 4;

/// MR x (NP·16) tile of A (bf16 rows, pairs of k) times B (bf16 panels) over k values (MR = 6,
/// or 1 for single rows).
template <int MR, int NP>
inline void bf16_tile(const std::uint16_t* const* a, const std::uint16_t* b, index_t bstride,
                      index_t k, const tile_out& o) noexcept {
  __m512 acc[std::size_t{MR}][std::size_t{NP}];
  for (int r = 0; r < MR; ++r)
    for (int j = 0; j < NP; ++j) acc[r][j] = _mm512_setzero_ps();
  const index_t pairs = (k + 1) / 2;
  for (index_t p = 0; p < pairs; ++p) {
    __m512i bv[std::size_t{NP}];
    for (int j = 0; j < NP; ++j) bv[j] = _mm512_load_si512(b + j * bstride + p * 32);
    for (int r = 0; r < MR; ++r) {
      std::int32_t pair;
      std::memcpy(&pair, a[r] + 2 * p, 4);
      const __m512i av = _mm512_set1_epi32(pair);
      for (int j = 0; j < NP; ++j) {
        acc[r][j] = _mm512_dpbf16_ps(acc[r][j], (__m512bh)av, (__m512bh)bv[j]);
      }
    }
  }
  for (int r = 0; r < o.rows; ++r) {
    for (int j = 0; j < NP; ++j) {
      const int col = j * 16;
      if (col >= o.cols) break;
      const int valid = std::min(16, o.cols - col);
      const __mmask16 mask = static_cast<__mmask16>((1u << valid) - 1u);
      __m512 v = acc[r][j];
      if (o.scale != nullptr) v = _mm512_mul_ps(v, _mm512_maskz_loadu_ps(mask, o.scale + col));
      float* out = o.c[r] + col;
      if (o.store) {
        if (o.bias != nullptr) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, o.bias + col));
      } else {
        v = _mm512_add_ps(_mm512_maskz_loadu_ps(mask, out), v);
      }
      _mm512_mask_storeu_ps(out, mask, v);
    }
  }
}

}  // namespace float_gemm

/// C (+)= A·B, A and B bf16 (vdpbf16ps, float accumulation).
inline void run_float_gemm(tag, const masquant::detail::gemm::product_args<std::uint16_t>& pa,
                           const masquant::detail::gemm::panels<std::uint16_t>& b, index_t r0,
                           index_t r1, index_t p0, index_t p1) {
  using namespace float_gemm;
  product<bf16_mr, bf16_np>(
      pa, b, r0, r1, p0, p1,
      [](auto mrc, auto npc, const std::uint16_t* const* a, const std::uint16_t* bp,
         index_t bstride, index_t k, const tile_out& o) {
        bf16_tile<decltype(mrc)::value, decltype(npc)::value>(a, bp, bstride, k, o);
      });
}

/// dst[0..n) = bf16 of src[0..n) (round to nearest even, vcvtneps2bf16), then zeros up to
/// round_up(n, 2).
inline void run_to_bf16_row(tag, const float* src, index_t n, std::uint16_t* dst) noexcept {
  index_t j = 0;
  for (; j + 16 <= n; j += 16) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + j),
                        (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(src + j)));
  }
  if (j < n) {
    const auto mask = static_cast<__mmask16>((1u << (n - j)) - 1u);
    _mm256_mask_storeu_epi16(dst + j, mask,
                             (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(mask, src + j)));
  }
  if (n % 2 != 0) dst[n] = 0;
}

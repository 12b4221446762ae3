// simd-inl.hpp: the SIMD helpers of one family — thin wrappers of the x86 intrinsics (avx2 and
// avx_vnni: 256 bits, avx512: 512 bits), or one-lane scalar stand-ins for the portable family —
// shared by the hot paths of that family (quantization, statistics, the token pass, the float
// products; the INT8 GEMM kernels use intrinsics directly).
//
// Family source (detail/isa/foreach_family.hpp): compiled once per family, inside its namespace,
// so every helper carries the family's instruction set. The operations are exactly the IEEE
// instructions the bit-exactness arguments of the kernels rely on: min/max with the operand
// order of x86 minps/maxps (a < b ? a : b, a > b ? a : b), round to nearest even, truncating
// float -> int32 conversion, exact int8 widening and narrowing (values in range).

/// The family's tag: the dispatcher calls the family's functions through it.
struct tag {
  static constexpr int level = MASQUANT_FAMILY;
};

namespace simd {

#if MASQUANT_FAMILY >= MASQUANT_ISA_AVX512

inline constexpr bool enabled = true;
inline constexpr index_t float_lanes = 16;  // also the int32 lanes
inline constexpr index_t double_lanes = 8;

struct vf {
  __m512 v;
};
struct vi {
  __m512i v;
};
struct vd {
  __m512d v;
};
inline constexpr __mmask16 all16 = 0xFFFF;
inline constexpr __mmask8 all8 = 0xFF;

inline vf fsplat(float x) noexcept {
  return {_mm512_set1_ps(x)};
}
inline vi isplat(std::int32_t x) noexcept {
  return {_mm512_set1_epi32(x)};
}
inline vd dsplat(double x) noexcept {
  return {_mm512_set1_pd(x)};
}
inline vf loadu(const float* p) noexcept {
  return {_mm512_loadu_ps(p)};
}
inline vf load(const float* p) noexcept {
  return {_mm512_load_ps(p)};
}
inline void storeu(float* p, vf a) noexcept {
  _mm512_storeu_ps(p, a.v);
}
inline void store(float* p, vf a) noexcept {
  _mm512_store_ps(p, a.v);
}
inline void stream(float* p, vf a) noexcept {
  _mm512_stream_ps(p, a.v);
}
inline vf operator+(vf a, vf b) noexcept {
  return {_mm512_add_ps(a.v, b.v)};
}
inline vf operator-(vf a, vf b) noexcept {
  return {_mm512_sub_ps(a.v, b.v)};
}
inline vf operator*(vf a, vf b) noexcept {
  return {_mm512_mul_ps(a.v, b.v)};
}
inline vf operator/(vf a, vf b) noexcept {
  return {_mm512_div_ps(a.v, b.v)};
}
// The maskz forms throughout: GCC 12 warns on the undefined operand of the plain ones.
inline vf min(vf a, vf b) noexcept {
  return {_mm512_maskz_min_ps(all16, a.v, b.v)};
}
inline vf max(vf a, vf b) noexcept {
  return {_mm512_maskz_max_ps(all16, a.v, b.v)};
}
inline vf abs(vf a) noexcept {
  return {_mm512_castsi512_ps(
      _mm512_and_si512(_mm512_castps_si512(a.v), _mm512_set1_epi32(0x7FFFFFFF)))};
}
inline vf nearbyint(vf a) noexcept {
  return {_mm512_maskz_roundscale_ps(all16, a.v, _MM_FROUND_TO_NEAREST_INT)};
}
inline vf fma(vf a, vf b, vf c) noexcept {
  return {_mm512_fmadd_ps(a.v, b.v, c.v)};
}
inline vi to_int(vf a) noexcept {
  return {_mm512_maskz_cvttps_epi32(all16, a.v)};
}
inline vf to_float(vi a) noexcept {
  return {_mm512_maskz_cvtepi32_ps(all16, a.v)};
}

inline vi operator+(vi a, vi b) noexcept {
  return {_mm512_add_epi32(a.v, b.v)};
}
inline void storeu(std::int32_t* p, vi a) noexcept {
  _mm512_storeu_si512(p, a.v);
}
inline vi load_i8(const std::int8_t* p) noexcept {
  return {_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)))};
}
inline void store_i8(std::int8_t* p, vi a) noexcept {
  _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm512_cvtepi32_epi8(a.v));
}
/// 16 lanes of 32 bits from an aligned line, and the float of their low and high bf16 halves.
inline vi load_lanes(const void* p) noexcept {
  return {_mm512_load_si512(p)};
}
inline vf bf16_low(vi u) noexcept {
  return {_mm512_castsi512_ps(_mm512_slli_epi32(u.v, 16))};
}
inline vf bf16_high(vi u) noexcept {
  return {_mm512_castsi512_ps(
      _mm512_and_si512(u.v, _mm512_set1_epi32(static_cast<std::int32_t>(0xFFFF0000u))))};
}

inline vd loadu(const double* p) noexcept {
  return {_mm512_loadu_pd(p)};
}
inline vd load(const double* p) noexcept {
  return {_mm512_load_pd(p)};
}
inline void storeu(double* p, vd a) noexcept {
  _mm512_storeu_pd(p, a.v);
}
inline void store(double* p, vd a) noexcept {
  _mm512_store_pd(p, a.v);
}
inline vd operator+(vd a, vd b) noexcept {
  return {_mm512_add_pd(a.v, b.v)};
}
inline vd operator-(vd a, vd b) noexcept {
  return {_mm512_sub_pd(a.v, b.v)};
}
inline vd operator*(vd a, vd b) noexcept {
  return {_mm512_mul_pd(a.v, b.v)};
}
inline vd fma(vd a, vd b, vd c) noexcept {
  return {_mm512_fmadd_pd(a.v, b.v, c.v)};
}
inline vd min(vd a, vd b) noexcept {
  return {_mm512_maskz_min_pd(all8, a.v, b.v)};
}
inline vd max(vd a, vd b) noexcept {
  return {_mm512_maskz_max_pd(all8, a.v, b.v)};
}
/// double_lanes floats at p, widened to double (exact).
inline vd widen(const float* p) noexcept {
  return {_mm512_maskz_cvtps_pd(all8, _mm256_loadu_ps(p))};
}

#elif MASQUANT_FAMILY >= MASQUANT_ISA_AVX2

inline constexpr bool enabled = true;
inline constexpr index_t float_lanes = 8;
inline constexpr index_t double_lanes = 4;

struct vf {
  __m256 v;
};
struct vi {
  __m256i v;
};
struct vd {
  __m256d v;
};

inline vf fsplat(float x) noexcept {
  return {_mm256_set1_ps(x)};
}
inline vi isplat(std::int32_t x) noexcept {
  return {_mm256_set1_epi32(x)};
}
inline vd dsplat(double x) noexcept {
  return {_mm256_set1_pd(x)};
}
inline vf loadu(const float* p) noexcept {
  return {_mm256_loadu_ps(p)};
}
inline vf load(const float* p) noexcept {
  return {_mm256_load_ps(p)};
}
inline void storeu(float* p, vf a) noexcept {
  _mm256_storeu_ps(p, a.v);
}
inline void store(float* p, vf a) noexcept {
  _mm256_store_ps(p, a.v);
}
inline void stream(float* p, vf a) noexcept {
  _mm256_stream_ps(p, a.v);
}
inline vf operator+(vf a, vf b) noexcept {
  return {_mm256_add_ps(a.v, b.v)};
}
inline vf operator-(vf a, vf b) noexcept {
  return {_mm256_sub_ps(a.v, b.v)};
}
inline vf operator*(vf a, vf b) noexcept {
  return {_mm256_mul_ps(a.v, b.v)};
}
inline vf operator/(vf a, vf b) noexcept {
  return {_mm256_div_ps(a.v, b.v)};
}
inline vf min(vf a, vf b) noexcept {
  return {_mm256_min_ps(a.v, b.v)};
}
inline vf max(vf a, vf b) noexcept {
  return {_mm256_max_ps(a.v, b.v)};
}
inline vf abs(vf a) noexcept {
  return {_mm256_andnot_ps(_mm256_set1_ps(-0.0f), a.v)};
}
inline vf nearbyint(vf a) noexcept {
  return {_mm256_round_ps(a.v, _MM_FROUND_TO_NEAREST_INT)};
}
inline vf fma(vf a, vf b, vf c) noexcept {
  return {_mm256_fmadd_ps(a.v, b.v, c.v)};
}
inline vi to_int(vf a) noexcept {
  return {_mm256_cvttps_epi32(a.v)};
}
inline vf to_float(vi a) noexcept {
  return {_mm256_cvtepi32_ps(a.v)};
}

inline vi operator+(vi a, vi b) noexcept {
  return {_mm256_add_epi32(a.v, b.v)};
}
inline void storeu(std::int32_t* p, vi a) noexcept {
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), a.v);
}
inline vi load_i8(const std::int8_t* p) noexcept {
  return {_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)))};
}
inline void store_i8(std::int8_t* p, vi a) noexcept {
  // Saturation never triggers: the values fit int8.
  const __m128i w16 =
      _mm_packs_epi32(_mm256_castsi256_si128(a.v), _mm256_extracti128_si256(a.v, 1));
  _mm_storel_epi64(reinterpret_cast<__m128i*>(p), _mm_packs_epi16(w16, w16));
}
inline vi load_lanes(const void* p) noexcept {
  return {_mm256_load_si256(static_cast<const __m256i*>(p))};
}
inline vf bf16_low(vi u) noexcept {
  return {_mm256_castsi256_ps(_mm256_slli_epi32(u.v, 16))};
}
inline vf bf16_high(vi u) noexcept {
  return {_mm256_castsi256_ps(
      _mm256_and_si256(u.v, _mm256_set1_epi32(static_cast<std::int32_t>(0xFFFF0000u))))};
}

inline vd loadu(const double* p) noexcept {
  return {_mm256_loadu_pd(p)};
}
inline vd load(const double* p) noexcept {
  return {_mm256_load_pd(p)};
}
inline void storeu(double* p, vd a) noexcept {
  _mm256_storeu_pd(p, a.v);
}
inline void store(double* p, vd a) noexcept {
  _mm256_store_pd(p, a.v);
}
inline vd operator+(vd a, vd b) noexcept {
  return {_mm256_add_pd(a.v, b.v)};
}
inline vd operator-(vd a, vd b) noexcept {
  return {_mm256_sub_pd(a.v, b.v)};
}
inline vd operator*(vd a, vd b) noexcept {
  return {_mm256_mul_pd(a.v, b.v)};
}
inline vd fma(vd a, vd b, vd c) noexcept {
  return {_mm256_fmadd_pd(a.v, b.v, c.v)};
}
inline vd min(vd a, vd b) noexcept {
  return {_mm256_min_pd(a.v, b.v)};
}
inline vd max(vd a, vd b) noexcept {
  return {_mm256_max_pd(a.v, b.v)};
}
inline vd widen(const float* p) noexcept {
  return {_mm256_cvtps_pd(_mm_loadu_ps(p))};
}

#else  // portable: one lane, plain C++ (the kernels take their scalar paths)

inline constexpr bool enabled = false;
inline constexpr index_t float_lanes = 1;
inline constexpr index_t double_lanes = 1;

struct vf {
  float v;
};
struct vi {
  std::int32_t v;
};
struct vd {
  double v;
};

inline vf fsplat(float x) noexcept {
  return {x};
}
inline vi isplat(std::int32_t x) noexcept {
  return {x};
}
inline vd dsplat(double x) noexcept {
  return {x};
}
inline vf loadu(const float* p) noexcept {
  return {*p};
}
inline vf load(const float* p) noexcept {
  return {*p};
}
inline void storeu(float* p, vf a) noexcept {
  *p = a.v;
}
inline void store(float* p, vf a) noexcept {
  *p = a.v;
}
inline void stream(float* p, vf a) noexcept {
  *p = a.v;
}
inline vf operator+(vf a, vf b) noexcept {
  return {a.v + b.v};
}
inline vf operator-(vf a, vf b) noexcept {
  return {a.v - b.v};
}
inline vf operator*(vf a, vf b) noexcept {
  return {a.v * b.v};
}
inline vf operator/(vf a, vf b) noexcept {
  return {a.v / b.v};
}
inline vf min(vf a, vf b) noexcept {
  return {a.v < b.v ? a.v : b.v};
}
inline vf max(vf a, vf b) noexcept {
  return {a.v > b.v ? a.v : b.v};
}
inline vf abs(vf a) noexcept {
  return {std::fabs(a.v)};
}
inline vf nearbyint(vf a) noexcept {
  return {std::nearbyint(a.v)};
}
inline vf fma(vf a, vf b, vf c) noexcept {
  return {a.v * b.v + c.v};
}
inline vi to_int(vf a) noexcept {
  return {static_cast<std::int32_t>(a.v)};
}
inline vf to_float(vi a) noexcept {
  return {static_cast<float>(a.v)};
}

inline vi operator+(vi a, vi b) noexcept {
  return {a.v + b.v};
}
inline void storeu(std::int32_t* p, vi a) noexcept {
  *p = a.v;
}
inline vi load_i8(const std::int8_t* p) noexcept {
  return {*p};
}
inline void store_i8(std::int8_t* p, vi a) noexcept {
  *p = static_cast<std::int8_t>(a.v);
}
inline vi load_lanes(const void* p) noexcept {
  std::int32_t v;
  std::memcpy(&v, p, 4);
  return {v};
}
inline vf bf16_low(vi u) noexcept {
  const std::uint32_t bits = static_cast<std::uint32_t>(u.v) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return {f};
}
inline vf bf16_high(vi u) noexcept {
  const std::uint32_t bits = static_cast<std::uint32_t>(u.v) & 0xFFFF0000u;
  float f;
  std::memcpy(&f, &bits, 4);
  return {f};
}

inline vd loadu(const double* p) noexcept {
  return {*p};
}
inline vd load(const double* p) noexcept {
  return {*p};
}
inline void storeu(double* p, vd a) noexcept {
  *p = a.v;
}
inline void store(double* p, vd a) noexcept {
  *p = a.v;
}
inline vd operator+(vd a, vd b) noexcept {
  return {a.v + b.v};
}
inline vd operator-(vd a, vd b) noexcept {
  return {a.v - b.v};
}
inline vd operator*(vd a, vd b) noexcept {
  return {a.v * b.v};
}
inline vd fma(vd a, vd b, vd c) noexcept {
  return {a.v * b.v + c.v};
}
inline vd min(vd a, vd b) noexcept {
  return {a.v < b.v ? a.v : b.v};
}
inline vd max(vd a, vd b) noexcept {
  return {a.v > b.v ? a.v : b.v};
}
inline vd widen(const float* p) noexcept {
  return {static_cast<double>(*p)};
}

#endif

/// The lanes of a, in order.
inline void lanes_of(vf a, float* out) noexcept {
  storeu(out, a);
}
inline void lanes_of(vi a, std::int32_t* out) noexcept {
  storeu(out, a);
}
inline void lanes_of(vd a, double* out) noexcept {
  storeu(out, a);
}

}  // namespace simd

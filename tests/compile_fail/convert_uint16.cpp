// Compile-fail check of convert(): raw 16-bit storage is not an element type it converts
// (tests/CMakeLists.txt compiles this file twice: with MASQUANT_EXPECT_COMPILE_ERROR the
// static_assert must fire, without it the same file must compile).
#include <cstdint>
#include <masquant/tensor/convert.hpp>

void widen(const std::uint16_t* raw, float* out) {
#ifdef MASQUANT_EXPECT_COMPILE_ERROR
  using source = std::uint16_t;  // would read 0x3F80 as 16256.0f
#else
  using source = masquant::bfloat16;
#endif
  masquant::convert(masquant::vector_view<const source>(reinterpret_cast<const source*>(raw), 4),
                    masquant::vector_view<float>(out, 4));
}

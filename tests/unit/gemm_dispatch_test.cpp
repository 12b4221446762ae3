// gemm_dispatch_test.cpp: the INT8 GEMM built with MASQUANT_GEMM_RUNTIME_DISPATCH: every x86
// kernel is compiled with function-level target attributes whatever -march this TU has (the
// x86-64-v2 CI build proves the AVX-512 kernel is reached from a baseline build), and the CPU
// picks. The whole executable sees the macro, as the dispatch contract requires.
#define MASQUANT_GEMM_RUNTIME_DISPATCH

#include <boost/test/unit_test.hpp>
#include <masquant/gemm/int8_gemm.hpp>
#include <masquant/gemm/reference.hpp>

#include "support/gemm_testing.hpp"

using namespace masquant;
using masquant::testing::matrix;

BOOST_AUTO_TEST_SUITE(gemm_dispatch)

BOOST_AUTO_TEST_CASE(every_x86_kernel_is_compiled_and_the_cpu_picks) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  for (gemm_isa isa : {gemm_isa::avx2, gemm_isa::avx_vnni, gemm_isa::avx512_vnni}) {
    BOOST_TEST(gemm_isa_compiled(isa), to_string(isa));
  }
  // Independent of masquant's cpuid code: the compiler's own CPU model.
  __builtin_cpu_init();
  const bool avx512_vnni = __builtin_cpu_supports("avx512vnni") &&
                           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
  BOOST_TEST(gemm_isa_available(gemm_isa::avx512_vnni) == avx512_vnni);
  BOOST_TEST(gemm_isa_available(gemm_isa::avx2) ==
             (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")));
  if (avx512_vnni) BOOST_TEST((best_gemm_isa() == gemm_isa::avx512_vnni));
  BOOST_TEST_MESSAGE("runtime dispatch selects " << best_gemm_isa());
#else
  BOOST_TEST((best_gemm_isa() == gemm_isa::portable));
#endif
}

BOOST_AUTO_TEST_CASE(dispatched_kernels_are_exact) {
  struct shape {
    index_t m, k, n;
  };
  for (gemm_isa isa : available_gemm_isas()) {
    for (int bits : {8, 4}) {
      for (shape s : {shape{1, 65, 129}, shape{17, 129, 63}, shape{40, 300, 130}}) {
        const auto a = testing::random_int8(s.m, s.k, -128, 127, 1);
        const auto w =
            testing::random_int8(s.n, s.k, bits == 8 ? -128 : -8, bits == 8 ? 127 : 7, 2);
        const auto packed = packed_weights::pack(w.cview(), std::vector<float>(s.n, 1.0f), bits);
        matrix<std::int32_t> got(s.m, s.n), want(s.m, s.n);
        gemm_options opt;
        opt.isa = isa;
        int8_gemm_int32(a.cview(), packed, got.view(), opt);
        reference::int8_gemm_int32(a.cview(), w.cview(), want.view());
        std::string where;
        BOOST_TEST(testing::count_mismatches(got, want, &where) == 0,
                   testing::gemm_case(isa, s.m, s.k, s.n, bits) << " " << where);
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(unavailable_kernels_are_refused) {
  const auto a = testing::random_int8(2, 8, -1, 1, 3);
  const auto packed = packed_weights::pack(a.cview(), std::vector<float>(2, 1.0f));
  for (gemm_isa isa : {gemm_isa::avx2, gemm_isa::avx_vnni, gemm_isa::avx512_vnni}) {
    if (gemm_isa_available(isa)) continue;
    matrix<std::int32_t> c(2, 2);
    gemm_options opt;
    opt.isa = isa;
    BOOST_CHECK_THROW(int8_gemm_int32(a.cview(), packed, c.view(), opt), error);
  }
}

BOOST_AUTO_TEST_SUITE_END()

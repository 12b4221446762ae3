// isa_test.cpp: the instruction-set layer (isa.hpp): which families this translation unit
// compiles, what the CPU runs (checked against the compiler's own CPU model), the choice, the
// MASQUANT_MAX_ISA override and the per-call one. The kernels of every family are checked by the
// tests of each hot path, which loop over available_isas().
#include <boost/test/unit_test.hpp>
#include <cstdlib>
#include <masquant/gemm/int8_gemm.hpp>
#include <masquant/isa.hpp>
#include <string>

#include "support/gemm_testing.hpp"
#include "support/isa_testing.hpp"

using namespace masquant;

namespace {

using testing::cpu_runs;
using testing::flags_family;

// Sets an environment variable for the life of the object.
struct scoped_env {
  std::string name;
  std::string old;
  bool had;
  scoped_env(const char* n, const char* value) : name(n) {
    const char* v = std::getenv(n);
    had = v != nullptr;
    if (had) old = v;
    ::setenv(n, value, 1);
  }
  ~scoped_env() {
    if (had)
      ::setenv(name.c_str(), old.c_str(), 1);
    else
      ::unsetenv(name.c_str());
  }
  scoped_env(const scoped_env&) = delete;
  scoped_env& operator=(const scoped_env&) = delete;
};

}  // namespace

BOOST_AUTO_TEST_SUITE(isa)

BOOST_AUTO_TEST_CASE(the_baseline_and_every_family_above_it_are_compiled) {
  BOOST_TEST((baseline_isa() == flags_family()));
  const bool dispatch = isa_dispatch_enabled();
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && \
    !defined(MASQUANT_NO_DISPATCH)
  BOOST_TEST(dispatch);
#else
  BOOST_TEST(!dispatch);
#endif
  for (isa_family f : isa_families) {
    // Below the baseline: not compiled (the baseline is as good); above: compiled with dispatch.
    const bool want = f == baseline_isa() || (dispatch && f > baseline_isa());
    BOOST_TEST(isa_compiled(f) == want, to_string(f));
  }
  BOOST_TEST(isa_compiled(isa_family::automatic));
}

BOOST_AUTO_TEST_CASE(cpu_detection_agrees_with_the_compiler) {
  for (isa_family f : isa_families) BOOST_TEST(cpu_has_isa(f) == cpu_runs(f), to_string(f));
  BOOST_TEST_MESSAGE("CPU: " << cpu_name() << ", best family " << best_isa());
}

BOOST_AUTO_TEST_CASE(the_best_available_family_is_chosen) {
  BOOST_TEST((best_isa() == testing::expected_family(isa_dispatch_enabled())));
  const auto isas = available_isas();
  BOOST_REQUIRE(!isas.empty());
  BOOST_TEST((isas.back() == best_isa()));
  const isa_family cap = max_isa();
  for (isa_family f : isa_families) {
    const bool want = isa_compiled(f) && cpu_has_isa(f) &&
                      (cap == isa_family::automatic || f <= cap || f == baseline_isa());
    BOOST_TEST(isa_available(f) == want, to_string(f));
    if (want) BOOST_TEST((f <= best_isa()), to_string(f));
  }
  // The baseline is always available: the translation unit is compiled for it.
  BOOST_TEST(isa_available(baseline_isa()));
}

BOOST_AUTO_TEST_CASE(each_hot_path_reports_its_family) {
  for (isa_family f : available_isas()) {
    for (hot_path h : {hot_path::quant, hot_path::stats, hot_path::gram, hot_path::token_pass,
                       hot_path::int8_gemm, hot_path::float_gemm}) {
      // Only the INT8 GEMM has avx_vnni kernels; the other paths run avx2 code there (or the
      // baseline's, when avx_vnni is the baseline).
      const bool own = f != isa_family::avx_vnni || h == hot_path::int8_gemm ||
                       baseline_isa() == isa_family::avx_vnni;
      BOOST_TEST((isa_of(h, f) == (own ? f : isa_family::avx2)), to_string(h) << " " << f);
    }
  }
  BOOST_TEST((isa_of(hot_path::int8_gemm) == best_isa()));
}

BOOST_AUTO_TEST_CASE(family_names_parse_and_print) {
  for (isa_family f : isa_families) {
    isa_family g = isa_family::automatic;
    BOOST_TEST(parse_isa_family(to_string(f), g));
    BOOST_TEST((g == f));
  }
  isa_family g = isa_family::automatic;
  BOOST_TEST(parse_isa_family("AVX512", g));
  BOOST_TEST((g == isa_family::avx512));
  BOOST_TEST(parse_isa_family("Avx_Vnni", g));
  BOOST_TEST((g == isa_family::avx_vnni));
  g = isa_family::avx2;
  for (const char* bad : {"", "automatic", "avx512_vnni", "avx", "sse4", "avx2 ", "native"}) {
    BOOST_TEST(!parse_isa_family(bad, g), bad);
    BOOST_TEST((g == isa_family::avx2));
  }
  BOOST_TEST(std::string(to_string(hot_path::float_gemm)) == "float_gemm");
}

BOOST_AUTO_TEST_CASE(the_environment_override_is_parsed_strictly) {
  using detail::MASQUANT_BUILD::read_max_isa;
  {
    const scoped_env env("MASQUANT_MAX_ISA", "avx2");
    BOOST_TEST((read_max_isa() == isa_family::avx2));
  }
  {
    const scoped_env env("MASQUANT_MAX_ISA", "PORTABLE");
    BOOST_TEST((read_max_isa() == isa_family::portable));
  }
  {
    const scoped_env env("MASQUANT_MAX_ISA", "");
    BOOST_TEST((read_max_isa() == isa_family::automatic));
  }
  {
    const scoped_env env("MASQUANT_MAX_ISA", "avx3");
    try {
      read_max_isa();
      BOOST_ERROR("an unknown family was accepted");
    } catch (const error& e) {
      BOOST_TEST((e.code() == errc::invalid_argument));
      const std::string what = e.what();
      BOOST_TEST(what.find("MASQUANT_MAX_ISA=\"avx3\"") != std::string::npos, what);
      BOOST_TEST(what.find("avx_vnni") != std::string::npos, what);
    }
  }
}

BOOST_AUTO_TEST_CASE(unavailable_families_are_refused_by_name) {
  const auto a = testing::random_int8(2, 8, -1, 1, 3);
  const auto packed = packed_weights::pack(a.cview(), std::vector<float>(2, 1.0f));
  for (isa_family f : isa_families) {
    if (isa_available(f)) continue;
    testing::matrix<std::int32_t> c(2, 2);
    gemm_options opt;
    opt.isa = f;
    try {
      int8_gemm_int32(a.cview(), packed, c.view(), opt);
      BOOST_ERROR("family " << f << " ran");
    } catch (const error& e) {
      BOOST_TEST((e.code() == errc::not_supported));
      const std::string what = e.what();
      BOOST_TEST(what.find(std::string("family ") + to_string(f)) != std::string::npos, what);
      BOOST_TEST(what.find(to_string(best_isa())) != std::string::npos, what);  // the list
    }
    BOOST_CHECK_THROW(isa_of(hot_path::quant, f), error);
  }
}

BOOST_AUTO_TEST_SUITE_END()

// layer_errors_test.cpp: quantized_linear_params::validate and quantized_linear::forward report
// bad input with the right code and a message naming the field, modality, token or row.
#include <boost/test/unit_test.hpp>
#include <functional>
#include <limits>
#include <masquant/layer/quantized_linear.hpp>
#include <string>

#include "support/layer_testing.hpp"

using namespace masquant;
using masquant::testing::layer_case;
using masquant::testing::matrix;

namespace {

// Runs f, expects masquant::error with `code` and every string of `parts` in its message.
void expect_error(const std::function<void()>& f, errc code,
                  const std::vector<std::string>& parts) {
  try {
    f();
  } catch (const masquant::error& e) {
    BOOST_TEST(e.code() == code, "code " << e.code() << " for: " << e.what());
    for (const auto& p : parts) {
      BOOST_TEST(std::string(e.what()).find(p) != std::string::npos,
                 "'" << p << "' missing in: " << e.what());
    }
    return;
  }
  BOOST_ERROR("no error thrown (expected " << code << ")");
}

quantized_linear_params good_params() {
  layer_case c;
  c.d_in = 12;
  c.d_out = 10;
  c.weight_bits = 4;
  c.ranks = {0, 3, 0};
  return testing::random_params(c);
}

void expect_bad(const std::function<void(quantized_linear_params&)>& edit, errc code,
                const std::vector<std::string>& parts) {
  auto p = good_params();
  edit(p);
  expect_error([&] { p.validate(); }, code, parts);
  expect_error([&] { quantized_linear layer(p); }, code, parts);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(layer_errors)

BOOST_AUTO_TEST_CASE(valid_parameters_pass) {
  BOOST_CHECK_NO_THROW(good_params().validate());
  auto p = good_params();
  p.modality_names.clear();  // names are optional
  p.lowrank.clear();         // factors too
  BOOST_CHECK_NO_THROW(quantized_linear{p});
  p.bias.clear();
  p.activation_bits = 16;
  BOOST_CHECK_NO_THROW(quantized_linear{p});
}

BOOST_AUTO_TEST_CASE(bad_parameters_name_the_field) {
  using P = quantized_linear_params;
  expect_bad([](P& p) { p.d_in = 0; }, errc::invalid_argument, {"d_in = 0"});
  expect_bad([](P& p) { p.weight_bits = 9; }, errc::invalid_argument, {"weight_bits = 9"});
  expect_bad([](P& p) { p.activation_bits = 12; }, errc::invalid_argument,
             {"activation_bits = 12"});
  expect_bad([](P& p) { p.qweight.pop_back(); }, errc::shape_mismatch, {"qweight", "d_out * d_in"});
  expect_bad([](P& p) { p.qweight[2 * 12 + 5] = 8; }, errc::invalid_argument,
             {"qweight[2, 5] = 8", "[-7, 7]"});
  expect_bad([](P& p) { p.wscale.resize(3); }, errc::shape_mismatch, {"wscale", "d_out = 10"});
  expect_bad([](P& p) { p.wscale[4] = 0.0f; }, errc::invalid_argument, {"wscale[4]"});
  expect_bad([](P& p) { p.wscale[4] = std::numeric_limits<float>::quiet_NaN(); }, errc::non_finite,
             {"wscale[4]"});
  expect_bad([](P& p) { p.bias.resize(3); }, errc::shape_mismatch, {"bias"});
  expect_bad([](P& p) { p.bias[1] = std::numeric_limits<float>::infinity(); }, errc::non_finite,
             {"bias[1]"});
  expect_bad([](P& p) { p.smooth.clear(); }, errc::invalid_argument, {"smooth", "0 modalities"});
  expect_bad([](P& p) { p.smooth[1].resize(11); }, errc::shape_mismatch,
             {"smooth[1]", "'mod1'", "d_in = 12"});
  expect_bad([](P& p) { p.smooth[2][7] = -1.0f; }, errc::invalid_argument,
             {"smooth[2]", "'mod2'", "entry 7"});
  expect_bad([](P& p) { p.smooth[0][0] = std::numeric_limits<float>::infinity(); },
             errc::non_finite, {"smooth[0]", "'mod0'"});
  expect_bad([](P& p) { p.modality_names.pop_back(); }, errc::shape_mismatch, {"modality_names"});
  expect_bad([](P& p) { p.modality_names[2] = "mod0"; }, errc::invalid_argument,
             {"modality_names", "'mod0'"});
  expect_bad([](P& p) { p.lowrank.pop_back(); }, errc::shape_mismatch, {"lowrank has 2"});
  expect_bad([](P& p) { p.lowrank[0] = p.lowrank[1]; }, errc::invalid_argument,
             {"lowrank[0]", "'mod0'"});
  expect_bad([](P& p) { p.lowrank[1].R.resize(2, 10); }, errc::shape_mismatch,
             {"lowrank[1]", "'mod1'", "L 12x3", "R 2x10"});
  expect_bad([](P& p) { p.lowrank[1].L(4, 2) = std::numeric_limits<float>::quiet_NaN(); },
             errc::non_finite, {"lowrank[1].L", "'mod1'", "(4, 2)"});
}

BOOST_AUTO_TEST_CASE(forward_checks_shapes) {
  const quantized_linear layer(good_params());
  matrix<float> x(5, 12), y(5, 10), y_bad(4, 10), x_bad(5, 11);
  matrix<double> ref(5, 10);
  const std::vector<modality_id> ids(5, 1), ids_short(4, 1);
  expect_error([&] { layer.forward(x_bad.cview(), ids, y.view()); }, errc::shape_mismatch,
               {"x is 5x11", "d_in = 12"});
  expect_error([&] { layer.forward(x.cview(), ids, y_bad.view()); }, errc::shape_mismatch,
               {"y is 4x10", "expected 5x10"});
  expect_error([&] { layer.forward(x.cview(), ids_short, y.view()); }, errc::shape_mismatch,
               {"ids has 4 entries for 5 tokens"});
  expect_error([&] { layer.reference_forward(x.cview(), ids_short, ref.view()); },
               errc::shape_mismatch, {"reference_forward", "ids has 4"});
}

BOOST_AUTO_TEST_CASE(unknown_modality_is_an_error_naming_the_token) {
  const quantized_linear layer(good_params());
  const auto x = testing::random_input(6, 12, 1);
  matrix<float> y(6, 10, 42.0f);
  std::vector<modality_id> ids = {0, 1, 2, 0, 3, 1};
  expect_error([&] { layer.forward(x.cview(), ids, y.view()); }, errc::out_of_range,
               {"token 4", "id 3", "3 modalities", "mod0, mod1, mod2"});
  for (float v : y.data) BOOST_TEST(v == 42.0f);  // nothing written
  matrix<double> ref(6, 10);
  expect_error([&] { layer.reference_forward(x.cview(), ids, ref.view()); }, errc::out_of_range,
               {"token 4"});
}

BOOST_AUTO_TEST_CASE(non_finite_input_names_the_row) {
  for (int abits : {8, 16}) {
    auto p = good_params();
    p.activation_bits = abits;
    const quantized_linear layer(p);
    auto x = testing::random_input(40, 12, 2);
    x(33, 7) = std::numeric_limits<float>::quiet_NaN();
    matrix<float> y(40, 10, 42.0f);
    const std::vector<modality_id> ids(40, 1);
    thread_pool pool(2);
    forward_options opt;
    opt.parallel = pool.as_function();
    expect_error([&] { layer.forward(x.cview(), ids, y.view(), opt); }, errc::non_finite,
                 {"row 33", "column 7"});
    for (float v : y.data) BOOST_TEST(v == 42.0f);  // nothing written
    matrix<double> ref(40, 10);
    expect_error([&] { layer.reference_forward(x.cview(), ids, ref.view()); }, errc::non_finite,
                 {"row 33", "column 7"});
    // A finite x whose quotient x / s overflows is reported too.
    x(33, 7) = 3e38f;
    auto p2 = p;
    p2.smooth[1][7] = 1e-3f;
    const quantized_linear tiny(p2);
    expect_error([&] { tiny.forward(x.cview(), ids, y.view()); }, errc::non_finite, {"row 33"});
  }
}

BOOST_AUTO_TEST_CASE(unavailable_gemm_kernel_is_reported) {
  const quantized_linear layer(good_params());
  for (gemm_isa isa : {gemm_isa::avx2, gemm_isa::avx_vnni, gemm_isa::avx512_vnni}) {
    if (gemm_isa_available(isa)) continue;
    matrix<float> x(2, 12), y(2, 10);
    forward_options opt;
    opt.isa = isa;
    expect_error([&] { layer.forward(x.cview(), y.view(), opt); }, errc::not_supported,
                 {to_string(isa)});
  }
}

BOOST_AUTO_TEST_SUITE_END()

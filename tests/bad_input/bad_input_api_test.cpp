// Bad input through the public entry points (calibrate, quantized_linear, load_linear): every
// degenerate or hostile input has a defined outcome — a masquant::error whose one-line message
// names the operation, tensor and position, or a documented handling whose results are finite
// and deployable. Cases the per-layer unit tests already cover are listed in docs/reliability.md
// and not repeated here.
#include <boost/test/unit_test.hpp>
#include <climits>
#include <cmath>
#include <functional>
#include <initializer_list>
#include <limits>
#include <masquant/calibrate/calibrate.hpp>
#include <masquant/io/linear_file.hpp>
#include <masquant/io/safetensors.hpp>
#include <masquant/layer/quantized_linear.hpp>
#include <string>
#include <vector>

#include "support/layer_testing.hpp"
#include "support/testing.hpp"

using namespace masquant;
using masquant::testing::matrix;

namespace {

constexpr float k_inf = std::numeric_limits<float>::infinity();
constexpr float k_nan = std::numeric_limits<float>::quiet_NaN();

/// f must throw masquant::error with `code` and a one-line message containing every part.
void expect_error(const std::function<void()>& f, errc code,
                  std::initializer_list<std::string> parts) {
  try {
    f();
  } catch (const error& e) {
    const std::string what = e.what();
    BOOST_TEST(e.code() == code, "code " << e.code() << ", expected " << code << ": " << what);
    BOOST_TEST(what.find('\n') == std::string::npos, "not one line: " << what);
    for (const auto& p : parts)
      BOOST_TEST(what.find(p) != std::string::npos, "'" << p << "' missing in: " << what);
    return;
  }
  BOOST_ERROR("no masquant::error thrown (expected " << code << ")");
}

/// A small layer with text (two massive channels), vision (larger) and audio tokens.
struct toy {
  index_t d_in, d_out;
  matrix<float> w;
  std::vector<float> bias;
  std::vector<matrix<float>> x;  // text, vision, audio

  toy(index_t din, index_t dout, index_t tokens = 48, std::uint64_t seed = 3)
      : d_in(din), d_out(dout), w(testing::random_normal(dout, din, 0.3f, seed)) {
    for (index_t i = 0; i < dout; ++i) bias.push_back(0.05f * float(i % 7) - 0.1f);
    x.push_back(testing::random_normal(tokens, din, 1.0f, seed + 1));
    x.push_back(testing::random_normal(tokens, din, 4.0f, seed + 2));
    x.push_back(testing::random_normal(tokens / 2, din, 1.5f, seed + 3));
    for (index_t t = 0; t < tokens; ++t) x[0](t, 0) = 30.0f;
  }
  vector_view<const float> b() const { return vector_view<const float>(bias); }
  modality_inputs inputs() const {
    modality_inputs in;
    for (const auto& m : x) in.push_back(m.cview());
    return in;
  }
  calibration_result run(const calibration_config& c = {}) const {
    return calibrate(w.cview(), b(), inputs(), c);
  }
};

bool all_finite(const std::vector<float>& v) {
  for (float f : v)
    if (!std::isfinite(f)) return false;
  return true;
}

/// Every number calibrate() deploys is finite and the parameters validate.
void check_deployable(const calibration_result& r) {
  const auto& p = r.params;
  BOOST_CHECK_NO_THROW(p.validate());
  BOOST_TEST(all_finite(p.wscale));
  BOOST_TEST(all_finite(p.bias));
  for (const auto& s : p.smooth) BOOST_TEST(all_finite(s));
  for (const auto& f : p.lowrank) BOOST_TEST((f.L.allFinite() && f.R.allFinite()));
  BOOST_TEST(all_finite(r.merged_factor));
}

/// y = layer(x) for tokens of modality m; with `check`, within the error bound of the float64
/// reference_forward (tests/support/layer_testing.hpp derives it).
matrix<float> forward(const quantized_linear& layer, const matrix<float>& x, modality_id m,
                      bool check = true) {
  matrix<float> y(x.rows, layer.d_out(), k_nan);
  const std::vector<modality_id> ids(static_cast<std::size_t>(x.rows), m);
  layer.forward(x.cview(), ids, y.view());
  if (check) {
    matrix<double> ref(x.rows, layer.d_out());
    layer.reference_forward(x.cview(), ids, ref.view());
    const auto bound = testing::error_bound(layer, x, ids, layer.lowrank_uses_bf16());
    for (index_t i = 0; i < y.rows; ++i)
      for (index_t n = 0; n < y.cols; ++n)
        BOOST_TEST(std::abs(double(y(i, n)) - ref(i, n)) <= bound(i, n),
                   "token " << i << ", channel " << n << ": " << y(i, n) << " vs " << ref(i, n));
  }
  return y;
}

calibration_config small_config(smoothing_method method) {
  calibration_config c;
  c.method = method;
  c.learn_steps = method == smoothing_method::mas ? 3 : 0;
  c.learning.batch_tokens = 16;
  return c;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(bad_input_api)

// NaN, +Inf and -Inf anywhere in the weight, bias or any modality's tokens: errc::non_finite
// naming the tensor (and modality), row and column, for both calibrate() overloads.
BOOST_AUTO_TEST_CASE(non_finite_values_are_named_by_tensor_row_and_column) {
  const toy t(9, 7, 20);
  for (float bad : {k_nan, k_inf, -k_inf}) {
    for (index_t pos : {index_t(0), index_t(-1)}) {  // the first and the last element
      auto w = t.w;
      const index_t wr = pos < 0 ? w.rows - 1 : 0, wc = pos < 0 ? w.cols - 1 : 0;
      w(wr, wc) = bad;
      expect_error(
          [&] { calibrate(w.cview(), t.b(), t.inputs()); }, errc::non_finite,
          {"calibrate", "weight", "row " + std::to_string(wr), "column " + std::to_string(wc)});
      auto bias = t.bias;
      bias[pos < 0 ? bias.size() - 1 : 0] = bad;
      expect_error([&] { calibrate(t.w.cview(), vector_view<const float>(bias), t.inputs()); },
                   errc::non_finite,
                   {"calibrate", "bias", "column " + std::to_string(pos < 0 ? 6 : 0)});
      for (std::size_t m = 0; m < t.x.size(); ++m) {
        auto xs = t.x;
        const index_t r = pos < 0 ? xs[m].rows - 1 : 0, c = pos < 0 ? xs[m].cols - 1 : 0;
        xs[m](r, c) = bad;
        const modality_inputs in{xs[0].cview(), xs[1].cview(), xs[2].cview()};
        const char* name = m == 0 ? "'text'" : m == 1 ? "'vision'" : "'audio'";
        expect_error(
            [&] { calibrate(t.w.cview(), t.b(), in); }, errc::non_finite,
            {"calibrate", name, "row " + std::to_string(r), "column " + std::to_string(c)});
      }
    }
  }
  // The ids form reports the same (rows are gathered per modality first).
  matrix<float> x = t.x[0];
  x(5, 2) = k_nan;
  const std::vector<modality_id> ids(static_cast<std::size_t>(x.rows), 0);
  expect_error(
      [&] { calibrate(t.w.cview(), t.b(), x.cview(), vector_view<const modality_id>(ids)); },
      errc::non_finite, {"calibrate", "'text'", "row 5", "column 2"});
}

// A channel no token activates, a zero weight column and a zero weight row: factor 1 (policy
// unit), finite parameters, and outputs with no NaN; the zero output channel is exactly the bias
// on the reference path (and within rounding with a correction).
BOOST_AUTO_TEST_CASE(zero_channels_and_rows_give_unit_factors_and_no_nan) {
  toy t(16, 12, 64);
  for (auto& x : t.x)
    for (index_t r = 0; r < x.rows; ++r) x(r, 3) = 0.0f, x(r, 7) = 0.0f;     // dead channels 3, 7
  for (index_t n = 0; n < t.d_out; ++n) t.w(n, 5) = 0.0f, t.w(n, 7) = 0.0f;  // zero columns 5, 7
  for (index_t k = 0; k < t.d_in; ++k) t.w(2, k) = 0.0f;                     // zero output row 2
  for (auto method :
       {smoothing_method::rtn, smoothing_method::smoothquant, smoothing_method::mas}) {
    for (bool search : {false, true}) {
      calibration_config c = small_config(method);
      c.alpha_search = search;
      c.rank.rank = 100;  // full rank
      const auto r = t.run(c);
      check_deployable(r);
      if (method != smoothing_method::mas || c.learn_steps == 0)
        for (const auto& s : r.params.smooth)
          for (index_t j : {3, 5, 7}) BOOST_TEST(s[std::size_t(j)] == 1.0f, "channel " << j);
      for (const auto& m : r.report.modalities)
        for (double db : m.sqnr_db) BOOST_TEST(!std::isnan(db), m.name);
      const quantized_linear layer(r.params);
      for (modality_id m = 0; m < 3; ++m) {
        const auto y = forward(layer, t.x[m], m);
        BOOST_TEST(all_finite(y.data));
        for (index_t i = 0; i < y.rows; ++i) {
          if (m == 0)
            BOOST_TEST(y(i, 2) == t.bias[2]);
          else
            BOOST_TEST(std::abs(y(i, 2) - t.bias[2]) <= 1e-3f);
        }
      }
      // A token active in a channel calibration never saw is not amplified (factor 1).
      matrix<float> probe(1, t.d_in, 0.0f);
      probe(0, 3) = 1.0f;
      BOOST_TEST(all_finite(forward(layer, probe, 1).data));
    }
  }
}

// Tokens whose every channel has the same value, a modality whose tokens are all equal, and a
// weight with constant rows: finite, deployable, and the forward matches its float64 reference.
BOOST_AUTO_TEST_CASE(constant_rows_and_tokens) {
  toy t(10, 6, 32);
  for (index_t r = 0; r < t.x[0].rows; ++r)
    for (index_t k = 0; k < t.d_in; ++k) t.x[0](r, k) = float(r % 5) - 2.0f;  // includes 0 rows
  for (index_t r = 0; r < t.x[1].rows; ++r)
    for (index_t k = 0; k < t.d_in; ++k) t.x[1](r, k) = t.x[1](0, k);  // identical tokens
  for (index_t n = 0; n < t.d_out; ++n)
    for (index_t k = 0; k < t.d_in; ++k) t.w(n, k) = 0.1f * float(n + 1);
  for (auto method : {smoothing_method::smoothquant, smoothing_method::mas}) {
    const auto r = t.run(small_config(method));
    check_deployable(r);
    const quantized_linear layer(r.params);
    for (modality_id m = 0; m < 3; ++m) BOOST_TEST(all_finite(forward(layer, t.x[m], m).data));
  }
}

// A modality present with tokens that are all zero has no statistics (documented in
// docs/smoothing.md): it deploys the merged factor, its correction is finite, and its outputs are
// exactly the bias.
BOOST_AUTO_TEST_CASE(all_zero_modality) {
  toy t(12, 9, 40);
  t.x[1] = matrix<float>(30, t.d_in, 0.0f);
  calibration_config c = small_config(smoothing_method::mas);
  c.learn_steps = 0;
  const auto r = t.run(c);
  check_deployable(r);
  BOOST_TEST(r.params.smooth[1] == r.merged_factor);
  const quantized_linear layer(r.params);
  const auto y = forward(layer, t.x[1], 1);
  for (index_t i = 0; i < y.rows; ++i)
    for (index_t n = 0; n < t.d_out; ++n) BOOST_TEST(y(i, n) == t.bias[std::size_t(n)]);
  // With learning, too (the zero modality contributes no loss).
  c.learn_steps = 3;
  check_deployable(t.run(c));
}

// d_in = 1, d_out = 1 and both: calibrate (with a rank-1 correction, the most there is), the
// deployable layer, and full-rank exactness: with unquantized activations and float32 factors the
// corrected output of a non-reference modality equals x·Wᵀ + b.
BOOST_AUTO_TEST_CASE(one_input_or_one_output_channel) {
  for (auto dims : {std::pair<index_t, index_t>{1, 5}, {7, 1}, {1, 1}}) {
    const toy t(dims.first, dims.second, 24);
    for (auto method :
         {smoothing_method::rtn, smoothing_method::smoothquant, smoothing_method::mas}) {
      calibration_config c = small_config(method);
      c.alpha_search = method == smoothing_method::mas;
      const auto r = t.run(c);
      check_deployable(r);
      BOOST_TEST(r.report.rank == 1);
      const quantized_linear layer(r.params);
      for (modality_id m = 0; m < 3; ++m) BOOST_TEST(all_finite(forward(layer, t.x[m], m).data));
    }
    calibration_config c = small_config(smoothing_method::smoothquant);
    c.activation_bits = 16;
    c.weight_bits = 2;  // a large weight error for the correction to remove
    const auto r = t.run(c);
    linear_options exact;
    exact.storage = lowrank_storage::float32;
    const quantized_linear layer(r.params, exact);
    for (modality_id m = 1; m < 3; ++m) {
      const auto y = forward(layer, t.x[m], m);
      for (index_t i = 0; i < y.rows; ++i)
        for (index_t n = 0; n < t.d_out; ++n) {
          double want = t.bias[std::size_t(n)];
          for (index_t k = 0; k < t.d_in; ++k) want += double(t.x[m](i, k)) * t.w(n, k);
          BOOST_TEST(std::abs(y(i, n) - want) <= 1e-4 * (1 + std::abs(want)),
                     dims.first << "x" << dims.second << " m " << int(m) << ": " << y(i, n)
                                << " vs " << want);
        }
    }
  }
}

// A rank above min(d_in, d_out) (absolute, or through min_rank) is clamped to it, on both sides.
BOOST_AUTO_TEST_CASE(rank_above_the_smaller_extent_is_clamped) {
  for (auto dims : {std::pair<index_t, index_t>{6, 11}, {13, 4}}) {
    const toy t(dims.first, dims.second, 40);
    const index_t n = std::min(dims.first, dims.second);
    for (auto policy :
         {rank_policy{1000, 0, 0}, rank_policy{0.5, 100000, 0}, rank_policy{1e300, 32, 0}}) {
      calibration_config c = small_config(smoothing_method::smoothquant);
      c.rank = policy;
      const auto r = t.run(c);
      check_deployable(r);
      BOOST_TEST(r.report.rank == n);
      for (std::size_t m = 1; m < 3; ++m) BOOST_TEST(r.params.lowrank[m].rank() == n);
      BOOST_TEST(r.params.lowrank[0].rank() == 0);
    }
  }
}

// Bit widths outside [2, 8] (weights) or outside [2, 8] ∪ [16, ∞) (activations) are refused by
// calibrate(), quantized_linear and load_linear alike, naming the field; an activation width far
// above 16 is "unquantized" and works (no shift by the width anywhere).
BOOST_AUTO_TEST_CASE(bit_widths_outside_the_range) {
  const toy t(8, 6, 16);
  for (int bits : {INT_MIN, -1, 0, 1, 9, 16, 127, INT_MAX}) {
    calibration_config c = small_config(smoothing_method::rtn);
    c.weight_bits = bits;
    expect_error([&] { t.run(c); }, errc::invalid_argument, {"weight_bits", std::to_string(bits)});
  }
  for (int bits : {INT_MIN, -1, 0, 1, 9, 12, 15}) {
    calibration_config c = small_config(smoothing_method::rtn);
    c.activation_bits = bits;
    expect_error([&] { t.run(c); }, errc::invalid_argument,
                 {"activation_bits", std::to_string(bits)});
  }
  for (int bits : {16, 17, 32, 1000, INT_MAX}) {
    calibration_config c = small_config(smoothing_method::mas);
    c.activation_bits = bits;
    const auto r = t.run(c);
    check_deployable(r);
    const quantized_linear layer(r.params);
    BOOST_TEST(all_finite(forward(layer, t.x[1], 1).data));
  }
  // The deployable parameters and a file's metadata are checked the same way.
  const auto good = t.run(small_config(smoothing_method::rtn)).params;
  for (int bits : {0, 1, 9, 15}) {
    auto p = good;
    p.weight_bits = bits;
    expect_error([&] { quantized_linear layer(p); }, errc::invalid_argument, {"weight_bits"});
    p = good;
    p.activation_bits = bits;
    expect_error([&] { quantized_linear layer(p); }, errc::invalid_argument, {"activation_bits"});
  }
  // 8-bit levels declared as 4-bit weights: the first level outside [-7, 7] is named.
  auto p = good;
  p.weight_bits = 4;
  expect_error([&] { p.validate(); }, errc::invalid_argument, {"qweight[", "weight_bits = 4"});
}

// K = d_in above int8_gemm_max_k could overflow the int32 accumulation: refused with
// errc::overflow naming K (by quantized_linear, and by calibrate() when it builds the deployable
// layer for its report). At the bound, with every level and activation at its extreme, the
// int32 sums are exact: forward equals the float64 reference.
BOOST_AUTO_TEST_CASE(k_beyond_the_int32_accumulation_bound) {
  const index_t k_max = int8_gemm_max_k, d_out = 3;
  quantized_linear_params p;
  p.d_in = k_max + 1;
  p.d_out = d_out;
  p.qweight.assign(static_cast<std::size_t>(p.d_in * d_out), 127);
  p.wscale.assign(static_cast<std::size_t>(d_out), 1e-3f);
  p.smooth.assign(1, std::vector<float>(static_cast<std::size_t>(p.d_in), 1.0f));
  expect_error([&] { quantized_linear layer(p); }, errc::overflow,
               {"K = " + std::to_string(k_max + 1), std::to_string(k_max)});
  for (int wbits : {8, 4}) {
    const int q = wbits == 8 ? 127 : 7;
    p.d_in = k_max;
    p.weight_bits = wbits;
    p.qweight.assign(static_cast<std::size_t>(k_max * d_out), static_cast<std::int8_t>(q));
    for (index_t k = 0; k < k_max; k += 2) p.qweight[std::size_t(k)] = static_cast<std::int8_t>(-q);
    p.smooth.assign(1, std::vector<float>(static_cast<std::size_t>(k_max), 1.0f));
    const quantized_linear layer(p);
    matrix<float> x(2, k_max, 1.0f);  // constant rows: every activation level is 127
    for (index_t k = 0; k < k_max; ++k) x(1, k) = -2.5f;
    const auto y = forward(layer, x, 0);
    // Row 0 of the weight alternates -q, q from k = 0 (odd k_max: one more -q); the others are q.
    const double s = 1e-3 * 127.0 / 127.0;  // wscale · activation scale (absmax / 127 = 1 / 127)
    // An overflow would be off by 2^32 levels; exact sums agree to float rounding.
    BOOST_TEST(std::abs(y(0, 1) - s * q * double(k_max)) <= 1e-5 * s * q * double(k_max));
    BOOST_TEST(std::abs(y(0, 0) + s * q) <= 1e-5 * s * q);
  }
  // calibrate() reaches the same bound when it builds the deployable layer.
  matrix<float> w(1, k_max + 1, 0.5f), x(2, k_max + 1, 1.0f);
  calibration_config c = small_config(smoothing_method::rtn);
  c.rank.rank = 0;
  expect_error([&] { calibrate(w.cview(), {}, {x.cview()}, c); }, errc::overflow,
               {"K = " + std::to_string(k_max + 1)});
}

// Modalities whose widths disagree with the weight, ids naming no modality, too many modalities.
BOOST_AUTO_TEST_CASE(mismatched_widths_and_ids) {
  const toy t(8, 6, 16);
  matrix<float> wide(4, 9), x(3, 8);
  expect_error(
      [&] {
        calibrate(t.w.cview(), t.b(), {t.x[0].cview(), t.x[1].cview(), wide.cview()});
      },
      errc::shape_mismatch, {"'audio'", "4x9", "d_in = 8"});
  const std::vector<modality_id> ids = {0, 1, 2};
  expect_error(
      [&] {
        calibrate(t.w.cview(), t.b(), x.cview(), vector_view<const modality_id>(ids), {},
                  {"text", "vision"});
      },
      errc::out_of_range, {"token 2", "modality id 2"});
  expect_error(
      [&] {
        calibrate(t.w.cview(), t.b(), x.cview(), vector_view<const modality_id>(ids.data(), 2));
      },
      errc::shape_mismatch, {"3 tokens but 2 modality ids"});
  modality_inputs many(257, matrix_view<const float>(nullptr, 0, 8));
  many[0] = t.x[0].cview();
  expect_error([&] { calibrate(t.w.cview(), t.b(), many); }, errc::invalid_argument,
               {"257 modalities"});
}

// A calibrated layer read back from a file whose tensors lie (load_linear): each lie is a
// format_error or a validation error naming the tensor — never a crash or a layer that misreads.
BOOST_AUTO_TEST_CASE(load_linear_refuses_files_that_lie) {
  const toy t(8, 6, 24);
  const auto params = t.run(small_config(smoothing_method::mas)).params;
  safetensors_writer good;
  add_linear(good, "p", params);
  const std::vector<std::uint8_t> good_image = good.serialize();
  const auto base = safetensors_file::from_memory(good_image.data(), good_image.size());
  // Rebuilds the file with tensor `name` replaced by `edit(values)` (or dropped / reshaped).
  auto variant = [&](const std::string& name, auto&& edit) {
    safetensors_writer w;
    for (const auto& info : base.tensors()) {
      if (info.name != name) {
        if (info.type == dtype::i8)
          w.add(info.name, base.load<std::int8_t>(info.name));
        else
          w.add(info.name, base.load_f32(info.name));
        continue;
      }
      edit(w, info);
    }
    return w.serialize();
  };
  auto expect_load_error = [&](const std::vector<std::uint8_t>& img, errc code,
                               std::initializer_list<std::string> parts, int wbits = 8) {
    const auto f = safetensors_file::from_memory(img.data(), img.size(), "bad.safetensors");
    expect_error([&] { quantized_linear layer(load_linear(f, "p", "text", wbits, 8)); }, code,
                 parts);
  };
  auto drop = [](safetensors_writer&, const tensor_info&) {};
  for (const char* name : {"p.qweight", "p.wscale", "p.smooth.text"})
    expect_load_error(variant(name, drop), errc::format_error,
                      {"bad.safetensors", "missing tensor", name});
  expect_load_error(variant("p.lowrank.vision.R", drop), errc::format_error,
                    {"p.lowrank.vision.R' is missing"});
  auto values = [&](const std::string& name, index_t at, float v) {
    return variant(name, [&, at, v](safetensors_writer& w, const tensor_info& info) {
      auto t32 = base.load_f32(info.name);
      auto vals = t32.values();
      vals[std::size_t(at)] = v;
      if (info.shape.rank() == 1)
        w.add(info.name, vector_view<const float>(vals));
      else
        w.add(info.name, matrix_view<const float>(vals.data(), info.shape[0], info.shape[1]));
    });
  };
  // Values validate() refuses: named with the file and the layer (a regression: they were not).
  expect_load_error(values("p.wscale", 2, 0.0f), errc::invalid_argument,
                    {"bad.safetensors: layer 'p'", "wscale[2]", "positive"});
  expect_load_error(values("p.wscale", 1, k_nan), errc::non_finite,
                    {"bad.safetensors: layer 'p'", "wscale[1]"});
  expect_load_error(values("p.smooth.vision", 4, -1.0f), errc::invalid_argument,
                    {"bad.safetensors: layer 'p'", "'vision'", "entry 4"});
  expect_load_error(values("p.lowrank.audio.L", 3, k_inf), errc::non_finite,
                    {"bad.safetensors: layer 'p'", "lowrank[", ".L"});
  // Shapes that disagree with qweight's [d_out, d_in].
  auto reshaped = [&](const std::string& name, tensor_shape shape) {
    return variant(name, [&, shape](safetensors_writer& w, const tensor_info&) {
      std::vector<float> zeros(static_cast<std::size_t>(shape.elements()), 1.0f);
      if (shape.rank() == 1)
        w.add(name, vector_view<const float>(zeros));
      else
        w.add(name, matrix_view<const float>(zeros.data(), shape[0], shape[1]));
    });
  };
  expect_load_error(reshaped("p.wscale", {7}), errc::format_error, {"'p.wscale' is [7]", "[6]"});
  expect_load_error(reshaped("p.smooth.audio", {6, 8}), errc::format_error, {"'p.smooth.audio'"});
  expect_load_error(reshaped("p.lowrank.vision.L", {9, 2}), errc::format_error,
                    {"'p.lowrank.vision.L' is [9, 2]"});
  // qweight stored as float, or as 8-bit levels declared 4-bit.
  expect_load_error(variant("p.qweight",
                            [&](safetensors_writer& w, const tensor_info& info) {
                              w.add(info.name, base.load_f32(info.name));
                            }),
                    errc::format_error, {"p.qweight"});
  expect_load_error(good_image, errc::invalid_argument,
                    {"bad.safetensors: layer 'p'", "qweight[", "weight_bits = 4"}, 4);
  // A correction of the reference modality, and a stray lowrank name.
  auto extra = [&](const std::string& name) {
    return variant("p.wscale", [&](safetensors_writer& w, const tensor_info& info) {
      w.add(info.name, base.load_f32(info.name));
      std::vector<float> v(8, 0.0f);
      w.add(name, matrix_view<const float>(v.data(), 8, 1));
    });
  };
  expect_load_error(extra("p.lowrank.text.L"), errc::format_error, {"corrects the reference"});
  expect_load_error(extra("p.lowrank.speech.L"), errc::format_error, {"p.lowrank.speech.L"});
}

BOOST_AUTO_TEST_SUITE_END()

// calibrate_impl.hpp: the definition of calibrate() (calibrate.hpp). Included by calibrate.hpp
// in header-only builds, and by <masquant/src.hpp> alone under MASQUANT_SEPARATE_COMPILATION.
// Only templates and inline helpers that calibrate() alone uses: nothing here is instantiated
// until a translation unit calls calibrate().
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <masquant/calibrate/calibrate.hpp>
#include <masquant/calibrate/detail/stage_eval.hpp>
#include <masquant/error.hpp>
#include <masquant/linalg/compensation.hpp>
#include <masquant/linalg/whitening.hpp>
#include <masquant/quant/quantize.hpp>
#include <masquant/smooth/alpha_search.hpp>
#include <masquant/smooth/mas.hpp>
#include <masquant/smooth/smoothquant.hpp>
#include <masquant/stats/modality_stats.hpp>
#include <masquant/tensor/eigen.hpp>
#include <string>
#include <vector>

namespace masquant {

namespace detail {

class stopwatch {
 public:
  /// Seconds since the previous lap (or construction).
  double lap() {
    const auto now = std::chrono::steady_clock::now();
    const double s = std::chrono::duration<double>(now - last_).count();
    last_ = now;
    return s;
  }

 private:
  std::chrono::steady_clock::time_point last_ = std::chrono::steady_clock::now();
};

inline void check_finite_tensor(const char* op, const char* name, matrix_view<const float> x) {
  for (index_t r = 0; r < x.rows(); ++r) {
    const float* row = x.row_data(r);
    for (index_t c = 0; c < x.cols(); ++c)
      MASQUANT_CHECK(std::isfinite(row[c]), errc::non_finite, op, ": non-finite value ", row[c],
                     " in ", name, " at row ", r, ", column ", c);
  }
}

/// The modality weights of the loss and of auto_scale when the config gives none.
inline std::vector<double> default_weights_by_name(const std::vector<std::string>& names) {
  std::vector<double> w(names.size(), 1.0);
  for (std::size_t m = 0; m < names.size(); ++m)
    if (names[m] == "vision" || names[m] == "image") w[m] = 0.5;
  return w;
}

/// W·diag(s) in float (the weight as modality s sees it), [d_out, d_in].
inline row_matrix<float> smoothed_weight(matrix_view<const float> w, const std::vector<float>& s) {
  row_matrix<float> v = as_eigen(w);
  if (!s.empty()) v *= Eigen::Map<const Eigen::VectorXf>(s.data(), w.cols()).asDiagonal();
  return v;
}

/// Q_w(W·diag(s)): integer levels and per-row scales, symmetric per output channel.
inline void quantize_weight(matrix_view<const float> w, const std::vector<float>& s, int bits,
                            std::vector<std::int8_t>& q, std::vector<float>& scale) {
  const row_matrix<float> v = smoothed_weight(w, s);
  q.assign(static_cast<std::size_t>(w.rows() * w.cols()), 0);
  const quant_spec spec{bits, true, granularity::per_row, 0};
  const quant_params p =
      quantize(view_of(v), spec, matrix_view<std::int8_t>(q.data(), w.rows(), w.cols()));
  scale.assign(p.scales.begin(), p.scales.end());
}

/// diag(scale)·q in double, [d_out, d_in] column-major (what the compensation takes), from the
/// row-major levels of quantize_weight(); in 64 x 64 tiles, since element by element either the
/// reads or the writes stride d_out or d_in elements apart.
inline Eigen::MatrixXd dequantized_weight(const std::vector<std::int8_t>& q,
                                          const std::vector<float>& scale, index_t d_out,
                                          index_t d_in) {
  const auto levels = Eigen::Map<const row_matrix<std::int8_t>>(q.data(), d_out, d_in);
  const auto scales = Eigen::Map<const Eigen::VectorXf>(scale.data(), d_out);
  Eigen::MatrixXd out(d_out, d_in);
  constexpr index_t tile = 64;
  for (index_t k0 = 0; k0 < d_in; k0 += tile) {
    const index_t kb = std::min(tile, d_in - k0);
    for (index_t n0 = 0; n0 < d_out; n0 += tile) {
      const index_t nb = std::min(tile, d_out - n0);
      out.block(n0, k0, nb, kb) = scales.segment(n0, nb).cast<double>().asDiagonal() *
                                  levels.block(n0, k0, nb, kb).cast<double>();
    }
  }
  return out;
}

}  // namespace detail

template <class Deferred>
calibration_result calibrate(matrix_view<const float> weight, vector_view<const float> bias,
                             const modality_inputs& inputs, const calibration_config& config,
                             std::vector<std::string> names) {
  constexpr const char* op = "calibrate";
  detail::stopwatch clock, total;
  config.validate();
  const index_t d_out = weight.rows(), d_in = weight.cols();
  const index_t nm = static_cast<index_t>(inputs.size());
  MASQUANT_CHECK(d_out >= 1 && d_in >= 1, errc::shape_mismatch, op, ": weight is ", d_out, "x",
                 d_in, " (need [d_out, d_in], both >= 1)");
  MASQUANT_CHECK(bias.empty() || bias.size() == d_out, errc::shape_mismatch, op, ": bias has ",
                 bias.size(), " elements, the weight ", d_out, " output channels");
  MASQUANT_CHECK(nm >= 1 && nm <= 256, errc::invalid_argument, op, ": ", nm,
                 " modalities (need 1 to 256; id 0 is the reference)");
  if (names.empty()) {
    const modality_names defaults;
    for (index_t m = 0; m < nm; ++m)
      names.push_back(m < defaults.size() ? defaults.name(static_cast<modality_id>(m))
                                          : "modality" + std::to_string(m));
  }
  MASQUANT_CHECK(static_cast<index_t>(names.size()) == nm, errc::invalid_argument, op, ": ",
                 names.size(), " modality names for ", nm, " modalities");
  (void)modality_names(names);  // validates: non-empty, unique
  index_t total_tokens = 0;
  for (index_t m = 0; m < nm; ++m) {
    const auto& x = inputs[static_cast<std::size_t>(m)];
    MASQUANT_CHECK(x.rows() == 0 || x.cols() == d_in, errc::shape_mismatch, op,
                   ": inputs of modality '", names[static_cast<std::size_t>(m)], "' are ", x.rows(),
                   "x", x.cols(), " but the weight has d_in = ", d_in);
    total_tokens += x.rows();
  }
  MASQUANT_CHECK(total_tokens > 0, errc::invalid_argument, op,
                 ": no calibration tokens in any modality");
  detail::check_finite_tensor(op, "weight", weight);
  if (!bias.empty())
    detail::check_finite_tensor(op, "bias", matrix_view<const float>(bias.data(), 1, d_out));
  auto notify = [&](const char* stage, index_t step, index_t steps, double loss = NAN) {
    if (config.progress) config.progress({stage, step, steps, loss});
  };

  calibration_result result;
  auto& report = result.report;
  report.modalities.resize(static_cast<std::size_t>(nm));
  for (index_t m = 0; m < nm; ++m) {
    auto& mr = report.modalities[static_cast<std::size_t>(m)];
    mr.name = names[static_cast<std::size_t>(m)];
    mr.tokens = inputs[static_cast<std::size_t>(m)].rows();
  }
  const index_t max_rank = config.rank.resolve(d_in, d_out);

  // 1. Statistics (the Gram only where compensation will need it).
  notify("statistics", 0, 1);
  modality_stats stats(d_in, nm, max_rank > 0 ? gram_mode::non_reference : gram_mode::none);
  for (index_t m = 0; m < nm; ++m) {
    const auto& x = inputs[static_cast<std::size_t>(m)];
    if (x.rows() == 0) continue;
    detail::with_context(detail::cat(op, ": inputs of modality '", names[std::size_t(m)], "'"),
                         [&] { stats.add(x, static_cast<modality_id>(m), config.parallel); });
  }
  std::vector<std::vector<float>> absmax(static_cast<std::size_t>(nm));
  for (index_t m = 0; m < nm; ++m) {
    const Eigen::VectorXd a = stats[static_cast<modality_id>(m)].absmax();
    absmax[std::size_t(m)].assign(a.data(), a.data() + a.size());
  }
  report.seconds.statistics = clock.lap();

  // 2. Smoothing factors.
  notify("smoothing", 0, 1);
  const linear_group group{{weight},
                           bias.empty() ? std::vector<vector_view<const float>>{}
                                        : std::vector<vector_view<const float>>{bias}};
  const std::vector<float> w_absmax = weight_input_absmax({weight});
  const std::vector<double> loss_weights = config.modality_weights.empty()
                                               ? detail::default_weights_by_name(names)
                                               : config.modality_weights;
  MASQUANT_CHECK(static_cast<index_t>(loss_weights.size()) == nm, errc::invalid_argument, op, ": ",
                 loss_weights.size(), " modality weights for ", nm, " modalities");
  const quant_spec wspec{config.weight_bits, true, granularity::per_row, 0};
  const quant_spec aspec{config.activation_bits, true, granularity::per_row, 0};

  smoothquant_options sq_opt;
  sq_opt.alpha = {config.alpha};
  sq_opt.merged_alpha = config.alpha;
  sq_opt.zero_channels = config.zero_channels;
  const smoothquant_result sq = smoothquant_modality_factors(absmax, w_absmax, sq_opt);
  result.merged_factor = sq.merged;

  smoothing_factors factors(static_cast<std::size_t>(nm));
  std::vector<double> alphas(static_cast<std::size_t>(nm), config.alpha);
  switch (config.method) {
    case smoothing_method::rtn:
      for (auto& f : factors) f.assign(static_cast<std::size_t>(d_in), 1.0f);
      std::fill(alphas.begin(), alphas.end(), std::numeric_limits<double>::quiet_NaN());
      break;
    case smoothing_method::smoothquant:
      for (auto& f : factors) f = sq.merged;
      break;
    case smoothing_method::mas:
      if (config.alpha_search) {
        alpha_search_options ao;
        ao.weight_spec = wspec;
        ao.act_spec = aspec;
        ao.parallel = config.parallel;
        ao.grid = config.alpha_grid;
        ao.zero_channels = config.zero_channels;
        ao.default_alpha = config.alpha;
        ao.merged_alpha = config.alpha;
        ao.choose_split_or_merged = config.choose_split_or_merged;
        ao.modality_weights = loss_weights;
        const auto found = search_alpha(group, inputs, absmax, w_absmax, ao);
        factors = found.factors;
        alphas = found.alpha;
      } else {
        factors = sq.per_modality;
      }
      break;
  }
  // A modality without tokens deploys the reference factor; a reference without tokens the
  // merged factor of the others (smoothquant_modality_factors already gives it s_all).
  for (index_t m = 1; m < nm; ++m)
    if (inputs[std::size_t(m)].rows() == 0) factors[std::size_t(m)] = factors[0];
  report.seconds.smoothing = clock.lap();

  if (config.method == smoothing_method::mas && config.learn_steps > 0) {
    mas_options mo = config.learning;
    mo.weight_spec = wspec;
    mo.act_spec = aspec;
    mo.parallel = config.parallel;
    mo.steps = config.learn_steps;
    mo.seed = config.seed;
    mo.modality_weights = loss_weights;
    const auto user_progress = config.learning.progress;
    mo.progress = [&](const mas_progress& p) {
      if (user_progress) user_progress(p);
      notify("learning", p.step, p.steps, p.loss);
    };
    const mas_result learned = learn_mas(group, inputs, factors, mo);
    factors = learned.factors;
    for (index_t m = 1; m < nm; ++m)
      if (inputs[std::size_t(m)].rows() == 0) factors[std::size_t(m)] = factors[0];
    report.learning = {config.learn_steps, learned.initial_loss, learned.final_loss,
                       learned.skipped_steps};
  }
  for (index_t m = 0; m < nm; ++m) report.modalities[std::size_t(m)].alpha = alphas[std::size_t(m)];
  report.seconds.learning = clock.lap();

  // 3. The shared weight Ŵ = Q_w(W·diag(s_ref)).
  notify("quantization", 0, 1);
  auto& params = result.params;
  params.d_in = d_in;
  params.d_out = d_out;
  params.weight_bits = config.weight_bits;
  params.activation_bits = config.activation_bits;
  detail::quantize_weight(weight, factors[0], config.weight_bits, params.qweight, params.wscale);
  params.bias.assign(bias.begin(), bias.end());
  params.smooth = factors;
  params.modality_names = names;
  params.lowrank.resize(static_cast<std::size_t>(nm));
  report.seconds.quantization = clock.lap();

  // 4. Cross-modal compensation of every non-reference modality with tokens.
  if (max_rank > 0 && nm > 1) {
    const Eigen::MatrixXd shared =
        detail::dequantized_weight(params.qweight, params.wscale, d_out, d_in);
    Eigen::MatrixXd delta;
    for (index_t m = 1; m < nm; ++m) {
      if (inputs[std::size_t(m)].rows() == 0) continue;
      notify("compensation", m - 1, nm - 1);
      const auto& s = factors[std::size_t(m)];
      const auto s_map = Eigen::Map<const Eigen::VectorXf>(s.data(), d_in);
      if (config.quantized_compensation) {
        std::vector<std::int8_t> q;
        std::vector<float> sc;
        detail::quantize_weight(weight, s, config.weight_bits, q, sc);
        delta_weight(detail::dequantized_weight(q, sc, d_out, d_in), Eigen::VectorXd::Ones(d_in),
                     shared, delta);
      } else {
        delta_weight(as_eigen(weight), s_map, shared, delta);
      }
      Eigen::MatrixXd gram = stats[static_cast<modality_id>(m)].gram();
      smooth_gram(gram, s_map, gram);  // in place: no second d_in² matrix
      svd_options svd = config.svd;
      svd.seed = config.seed + static_cast<std::uint64_t>(m);
      if (!svd.parallel) svd.parallel = config.parallel;
      const compensation c = detail::with_context(
          detail::cat(op, ": compensation of modality '", names[std::size_t(m)], "'"),
          [&] { return compute_compensation(delta, gram, config.rank, config.whitening, svd); });
      auto& lr = params.lowrank[std::size_t(m)];
      lr.L = c.L.cast<float>();
      lr.R = c.R.cast<float>();
      auto& mr = report.modalities[std::size_t(m)];
      mr.rank = c.rank;
      mr.effective_rank = c.effective_rank;
      mr.relative_residual = c.relative_residual;
      mr.singular_values.assign(c.singular_values.data(),
                                c.singular_values.data() + c.singular_values.size());
      mr.damping = c.damping;
      report.rank = std::max(report.rank, c.rank);
    }
  }
  report.seconds.compensation = clock.lap();

  // 5. The report: every stage through the deployable linear.
  if (config.report) {
    notify("report", 0, 1);
    detail::evaluate_stages(weight, bias, inputs, result.params, result.merged_factor, config,
                            report);
  }
  report.seconds.report = clock.lap();
  report.seconds.total = total.lap();
  return result;
}

template <class Deferred>
calibration_result calibrate(matrix_view<const float> weight, vector_view<const float> bias,
                             matrix_view<const float> x, vector_view<const modality_id> ids,
                             const calibration_config& config, std::vector<std::string> names) {
  MASQUANT_CHECK(x.rows() == ids.size(), errc::shape_mismatch, "calibrate: ", x.rows(),
                 " tokens but ", ids.size(), " modality ids");
  index_t nm = static_cast<index_t>(names.size());
  if (nm == 0)
    for (index_t i = 0; i < ids.size(); ++i) nm = std::max<index_t>(nm, index_t(ids[i]) + 1);
  nm = std::max<index_t>(nm, 1);
  const auto counts = count_tokens(ids, nm);
  std::vector<row_matrix<float>> blocks(static_cast<std::size_t>(nm));
  for (index_t m = 0; m < nm; ++m) blocks[std::size_t(m)].resize(counts[std::size_t(m)], x.cols());
  std::vector<index_t> filled(static_cast<std::size_t>(nm), 0);
  for (index_t i = 0; i < x.rows(); ++i) {
    auto& b = blocks[ids[i]];
    std::copy(x.row_data(i), x.row_data(i) + x.cols(), b.row(filled[ids[i]]++).data());
  }
  modality_inputs inputs;
  for (auto& b : blocks) inputs.push_back(matrix_view<const float>(b.data(), b.rows(), x.cols()));
  return calibrate(weight, bias, inputs, config, std::move(names));
}

}  // namespace masquant

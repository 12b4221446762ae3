// stage_eval.hpp: the report's per-stage output SQNR, computed by running each stage as a
// deployable quantized_linear over the calibration tokens (internal to calibrate.hpp).
#pragma once

#include <array>
#include <masquant/calibrate/config.hpp>
#include <masquant/calibrate/report.hpp>
#include <masquant/layer/quantized_linear.hpp>
#include <masquant/quant/quantize.hpp>
#include <masquant/smooth/problem.hpp>
#include <masquant/smooth/sqnr.hpp>
#include <masquant/tensor/eigen.hpp>
#include <vector>

namespace masquant::detail {

/// Tokens per task of the report: fixed, so the sums do not depend on the thread count.
inline constexpr index_t report_chunk_tokens = 128;

/// A one-modality linear that smooths every token by s (empty: no smoothing) and holds its own
/// quantized weight Q_w(W·diag(s)): the rtn, smoothquant and mas_multiweight stages.
inline quantized_linear single_factor_linear(matrix_view<const float> weight,
                                             const quantized_linear_params& deploy,
                                             const std::vector<float>& s,
                                             const linear_options& options) {
  quantized_linear_params p;
  p.d_in = deploy.d_in;
  p.d_out = deploy.d_out;
  p.weight_bits = deploy.weight_bits;
  p.activation_bits = deploy.activation_bits;
  p.bias = deploy.bias;
  const row_matrix<float> v =
      s.empty()
          ? row_matrix<float>(as_eigen(weight))
          : row_matrix<float>(as_eigen(weight) *
                              Eigen::Map<const Eigen::VectorXf>(s.data(), p.d_in).asDiagonal());
  p.qweight.assign(static_cast<std::size_t>(p.d_out * p.d_in), 0);
  const quant_spec spec{p.weight_bits, true, granularity::per_row, 0};
  const quant_params qp =
      quantize(view_of(v), spec, matrix_view<std::int8_t>(p.qweight.data(), p.d_out, p.d_in));
  p.wscale = qp.scales;
  p.smooth = {s.empty() ? std::vector<float>(static_cast<std::size_t>(p.d_in), 1.0f) : s};
  return quantized_linear(p, options);
}

/// Fills report.modalities[m].sqnr_db for every modality with tokens: the float output
/// x·Wᵀ + b against each stage's output, sums in double.
inline void evaluate_stages(matrix_view<const float> weight, vector_view<const float> bias,
                            const modality_inputs& inputs, const quantized_linear_params& deploy,
                            const std::vector<float>& merged, const calibration_config& config,
                            calibration_report& report) {
  const index_t d_out = weight.rows();
  const quantized_linear rtn = single_factor_linear(weight, deploy, {}, config.deploy);
  const quantized_linear sq = single_factor_linear(weight, deploy, merged, config.deploy);
  const quantized_linear cmc(deploy, config.deploy);
  quantized_linear_params shared_params = deploy;
  shared_params.lowrank.clear();
  const quantized_linear shared(shared_params, config.deploy);

  for (std::size_t m = 0; m < inputs.size(); ++m) {
    const matrix_view<const float> x = inputs[m];
    if (x.rows() == 0) continue;
    if (config.progress)
      config.progress({"report", static_cast<index_t>(m), static_cast<index_t>(inputs.size())});
    const quantized_linear multi =
        single_factor_linear(weight, deploy, deploy.smooth[m], config.deploy);
    const index_t chunks = (x.rows() + report_chunk_tokens - 1) / report_chunk_tokens;
    // Per chunk: Σy² and Σ(ŷ - y)² of every stage.
    std::vector<std::array<double, report_stage_count + 1>> sums(static_cast<std::size_t>(chunks));
    auto task = [&](index_t c) {
      const index_t r0 = c * report_chunk_tokens;
      const index_t n = std::min(report_chunk_tokens, x.rows() - r0);
      const matrix_view<const float> xc = x.middle_rows(r0, n);
      row_matrix<float> y = as_eigen(xc) * as_eigen(weight).transpose();
      if (!bias.empty()) y.rowwise() += as_eigen(bias).transpose();
      row_matrix<float> yhat(n, d_out);
      const std::vector<modality_id> ids(static_cast<std::size_t>(n), static_cast<modality_id>(m));
      auto& s = sums[static_cast<std::size_t>(c)];
      s.fill(0.0);
      s[0] = y.cast<double>().squaredNorm();
      for (int stage = 0; stage < report_stage_count; ++stage) {
        switch (static_cast<report_stage>(stage)) {
          case report_stage::rtn:
            rtn.forward(xc, view_of(yhat));
            break;
          case report_stage::smoothquant:
            sq.forward(xc, view_of(yhat));
            break;
          case report_stage::mas_multiweight:
            multi.forward(xc, view_of(yhat));
            break;
          case report_stage::shared_no_cmc:
            shared.forward(xc, ids, view_of(yhat));
            break;
          case report_stage::cmc:
            cmc.forward(xc, ids, view_of(yhat));
            break;
        }
        s[static_cast<std::size_t>(stage) + 1] = (yhat - y).cast<double>().squaredNorm();
      }
    };
    if (config.parallel)
      config.parallel(chunks, task);
    else
      serial_for(chunks, task);
    std::array<double, report_stage_count + 1> total{};
    for (const auto& s : sums)
      for (std::size_t i = 0; i < total.size(); ++i) total[i] += s[i];
    for (int stage = 0; stage < report_stage_count; ++stage)
      report.modalities[m].sqnr_db[static_cast<std::size_t>(stage)] =
          sqnr_db(total[0], total[static_cast<std::size_t>(stage) + 1]);
  }
}

}  // namespace masquant::detail

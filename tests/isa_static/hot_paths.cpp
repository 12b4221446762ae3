// hot_paths.cpp: every hot path, instantiated in one translation unit. tests/CMakeLists.txt
// compiles it (compile only) with flags whose baseline is a family this CI machine may not run:
// AVX-512 without dispatch (icelake-server), AVX-512 with BF16 (sapphirerapids), AVX-VNNI with
// dispatch to AVX-512 (alderlake) — the paths where the static family is one of the SIMD ones.
#include <masquant/masquant.hpp>

void hot_paths(masquant::matrix_view<const float> x, masquant::matrix_view<float> y,
               masquant::matrix_view<std::int8_t> q, const masquant::quantized_linear& layer,
               const std::vector<masquant::modality_id>& ids, masquant::channel_stats& stats) {
  namespace mq = masquant;
  const mq::quant_spec spec{8, true, mq::granularity::per_row, 0};
  mq::fake_quant(x, spec, y);
  const mq::quant_params p = mq::quantize(x, spec, q);
  mq::dequantize(q, spec, p, y);
  mq::quantize_row_symmetric_smoothed(x.row_data(0), x.row_data(0), x.cols(), 8, q.row_data(0));
  mq::fake_quant_row_symmetric(x.row_data(0), x.cols(), 4, y.row_data(0));
  stats.add(x);
  layer.forward(x, ids, y);
  mq::int8_gemm(q, p.scales, layer.packed(), y);
}

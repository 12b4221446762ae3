// mixed.hpp: the two translation units of isa_mix_test, compiled with different -march flags
// and dispatch settings (tests/CMakeLists.txt), each running the same layer.
#pragma once

#include <cstdint>
#include <masquant/layer/quantized_linear.hpp>
#include <vector>

namespace isa_mix {

/// What one translation unit ran: the family (linear_workspace::isa()), the family it expected,
/// its outputs and its int8 activations.
struct result {
  masquant::isa_family ran = masquant::isa_family::automatic;
  masquant::isa_family expected = masquant::isa_family::automatic;
  std::vector<float> y;
  std::vector<std::int8_t> q;
};

/// Built with -march=x86-64-v2 and MASQUANT_NO_DISPATCH: the portable family only.
result run_baseline(const masquant::quantized_linear& layer, masquant::matrix_view<const float> x,
                    const std::vector<masquant::modality_id>& ids);
/// Built with -march=native and dispatch: the best family of this CPU at or above its flags.
result run_native(const masquant::quantized_linear& layer, masquant::matrix_view<const float> x,
                  const std::vector<masquant::modality_id>& ids);

/// The layer's forward in the calling translation unit; Unit, a type with internal linkage
/// there, gives each translation unit its own copy of this code.
template <class Unit>
result run(const masquant::quantized_linear& layer, masquant::matrix_view<const float> x,
           const std::vector<masquant::modality_id>& ids) {
  masquant::linear_workspace ws;
  masquant::forward_options opt;
  opt.workspace = &ws;
  result r;
  r.y.resize(static_cast<std::size_t>(x.rows() * layer.d_out()));
  layer.forward(x, ids, masquant::matrix_view<float>(r.y.data(), x.rows(), layer.d_out()), opt);
  r.ran = ws.isa();
  r.expected = Unit::expected();
  const auto act = ws.activations();
  r.q.assign(act.values.data(), act.values.data() + act.values.rows() * act.values.cols());
  return r;
}

}  // namespace isa_mix

// settings.hpp: a recipe's per-linear settings as the calibration_config calibrate() takes.
#pragma once

#include <masquant/calibrate/config.hpp>
#include <masquant/model/recipe.hpp>

namespace masquant {

/// The calibration_config of complete settings (recipe defaults with overrides applied).
/// Throws errc::invalid_argument for incomplete or invalid settings.
inline calibration_config calibration_config_of(const linear_settings& s) {
  s.validate("linear settings", true);
  calibration_config c;
  c.weight_bits = *s.wbits;
  c.activation_bits = *s.abits;
  c.method = *s.method == "rtn"           ? smoothing_method::rtn
             : *s.method == "smoothquant" ? smoothing_method::smoothquant
                                          : smoothing_method::mas;
  if (const auto a = s.alpha_value()) {
    c.alpha = *a;
  } else {
    c.alpha_search = true;
  }
  c.learn_steps = *s.learn_steps;
  c.learning.learning_rate = *s.learning_rate;
  c.learning.batch_tokens = *s.batch_tokens;
  c.rank.rank = *s.rank;
  c.rank.min_rank = *s.min_rank;
  c.whitening.method = *s.whiten == "cholesky" ? whitening_method::cholesky
                       : *s.whiten == "eigen"  ? whitening_method::eigen
                                               : whitening_method::none;
  c.whitening.damping = *s.damping;
  c.quantized_compensation = *s.quantized_compensation;
  c.seed = static_cast<std::uint64_t>(*s.seed);
  return c;
}

}  // namespace masquant

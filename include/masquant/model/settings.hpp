// settings.hpp: the calibration settings of one linear as a recipe and the tool's flags spell
// them, and their calibration_config.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <masquant/calibrate/config.hpp>
#include <masquant/enum_names.hpp>
#include <masquant/error.hpp>
#include <optional>
#include <string>

namespace masquant {

/// The calibration settings of one linear, as the tool's calibrate flags spell them. In a
/// recipe's "defaults" every field is set; an override sets only the fields it changes.
struct linear_settings {
  std::optional<int> wbits;           ///< weight bits 2..8
  std::optional<int> abits;           ///< activation bits 2..8, or 16 (unquantized)
  std::optional<std::string> method;  ///< "rtn" | "smoothquant" | "mas"
  std::optional<std::string> alpha;   ///< α in [0, 1] written as a number, or "auto"
  std::optional<std::int64_t> learn_steps;
  std::optional<double> learning_rate;
  std::optional<std::int64_t> batch_tokens;
  std::optional<double> rank;  ///< ratio of min(d_in, d_out) when <= 1, else absolute; 0: off
  std::optional<std::int64_t> min_rank;
  std::optional<std::string> whiten;  ///< "cholesky" | "eigen" | "none"
  std::optional<double> damping;
  std::optional<bool> quantized_compensation;
  std::optional<std::int64_t> seed;

  /// The defaults of recipes and of the masquant tool: calibration_config's, with 50 learned MAS
  /// steps (the library's calibrate() learns only when asked).
  static linear_settings defaults();

  /// This, with every field `over` sets replaced.
  linear_settings overridden_by(const linear_settings& over) const {
    linear_settings s = *this;
    auto take = [](auto& mine, const auto& theirs) {
      if (theirs) mine = theirs;
    };
    take(s.wbits, over.wbits);
    take(s.abits, over.abits);
    take(s.method, over.method);
    take(s.alpha, over.alpha);
    take(s.learn_steps, over.learn_steps);
    take(s.learning_rate, over.learning_rate);
    take(s.batch_tokens, over.batch_tokens);
    take(s.rank, over.rank);
    take(s.min_rank, over.min_rank);
    take(s.whiten, over.whiten);
    take(s.damping, over.damping);
    take(s.quantized_compensation, over.quantized_compensation);
    take(s.seed, over.seed);
    return s;
  }

  /// Throws errc::invalid_argument naming `where` and the first field outside its range;
  /// `complete` also requires every field.
  void validate(const std::string& where, bool complete) const {
    auto need = [&](bool present, const char* field) {
      MASQUANT_CHECK(present || !complete, errc::invalid_argument, where, ": \"", field,
                     "\" is missing");
    };
    need(wbits.has_value(), "wbits");
    need(abits.has_value(), "abits");
    need(method.has_value(), "method");
    need(alpha.has_value(), "alpha");
    need(learn_steps.has_value(), "learn_steps");
    need(learning_rate.has_value(), "learning_rate");
    need(batch_tokens.has_value(), "batch_tokens");
    need(rank.has_value(), "rank");
    need(min_rank.has_value(), "min_rank");
    need(whiten.has_value(), "whiten");
    need(damping.has_value(), "damping");
    need(quantized_compensation.has_value(), "quantized_compensation");
    need(seed.has_value(), "seed");
    // The ranges are calibration_config's: check the fields set, on a config holding them.
    auto check = [&](bool ok, const char* field, const auto& value, const char* rule) {
      MASQUANT_CHECK(ok, errc::invalid_argument, where, ": \"", field, "\" is ", value, " (", rule,
                     ")");
    };
    if (method)
      check(parse_enum(smoothing_method_names, *method).has_value(), "method", *method,
            "rtn, smoothquant or mas");
    if (whiten)
      check(parse_enum(whitening_method_names, *whiten).has_value(), "whiten", *whiten,
            "cholesky, eigen or none");
    if (alpha) check(*alpha == "auto" || alpha_value(), "alpha", *alpha, "a number or auto");
    if (abits) check(*abits <= 8 || *abits == 16, "abits", *abits, "2..8, or 16 for none");
    if (rank)
      check(!(*rank > 1 && *rank != std::floor(*rank)), "rank", *rank,
            "a ratio in [0, 1] or a whole rank > 1");
    if (seed) check(*seed >= 0, "seed", *seed, ">= 0");
    detail::with_context(where, [&] { partial_config().validate(); });
  }

  /// α as a number, or nothing for "auto" or an unset field.
  std::optional<double> alpha_value() const {
    if (!alpha || *alpha == "auto") return std::nullopt;
    char* end = nullptr;
    const double v = std::strtod(alpha->c_str(), &end);
    if (end == alpha->c_str() || *end != '\0' || !std::isfinite(v)) return std::nullopt;
    return v;
  }

  /// calibration_config's defaults with the fields set here.
  calibration_config partial_config() const {
    calibration_config c;
    if (wbits) c.weight_bits = *wbits;
    if (abits) c.activation_bits = *abits;
    if (method) c.method = parse_enum(smoothing_method_names, *method).value_or(c.method);
    if (const auto a = alpha_value()) c.alpha = *a;
    c.alpha_search = alpha && *alpha == "auto";
    if (learn_steps) c.learn_steps = *learn_steps;
    if (learning_rate) c.learning.learning_rate = *learning_rate;
    if (batch_tokens) c.learning.batch_tokens = *batch_tokens;
    if (rank) c.rank.rank = *rank;
    if (min_rank) c.rank.min_rank = *min_rank;
    if (whiten)
      c.whitening.method = parse_enum(whitening_method_names, *whiten).value_or(c.whitening.method);
    if (damping) c.whitening.damping = *damping;
    if (quantized_compensation) c.quantized_compensation = *quantized_compensation;
    if (seed) c.seed = static_cast<std::uint64_t>(*seed);
    return c;
  }

  /// Whether this linear gets low-rank compensation (its rank is > 0).
  bool compensated() const { return rank.value_or(0) > 0; }
};

namespace detail {

/// The shortest decimal text that reads back as exactly `v` ("0.5", "1e-06", "0.3").
inline std::string exact_number_text(double v) {
  char buf[40];
  for (int digits = 6; digits <= 17; ++digits) {
    std::snprintf(buf, sizeof buf, "%.*g", digits, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  return buf;
}

}  // namespace detail

/// The settings a calibration_config stands for (its fields that settings have).
inline linear_settings settings_of(const calibration_config& c) {
  linear_settings s;
  s.wbits = c.weight_bits;
  s.abits = c.activation_bits;
  s.method = to_string(c.method);
  s.alpha = c.alpha_search ? "auto" : detail::exact_number_text(c.alpha);
  s.learn_steps = c.learn_steps;
  s.learning_rate = c.learning.learning_rate;
  s.batch_tokens = c.learning.batch_tokens;
  s.rank = c.rank.rank;
  s.min_rank = c.rank.min_rank;
  s.whiten = to_string(c.whitening.method);
  s.damping = c.whitening.damping;
  s.quantized_compensation = c.quantized_compensation;
  s.seed = static_cast<std::int64_t>(c.seed);
  return s;
}

/// The calibration_config of complete settings (recipe defaults with overrides applied); every
/// field settings do not have keeps calibration_config's default. Throws errc::invalid_argument
/// for incomplete or invalid settings.
inline calibration_config calibration_config_of(const linear_settings& s) {
  s.validate("linear settings", true);
  return s.partial_config();
}

inline linear_settings linear_settings::defaults() {
  calibration_config c;
  c.learn_steps = 50;
  return settings_of(c);
}

}  // namespace masquant

// report_format.hpp: the calibration report as a table (stdout) and as JSON (--report), with
// the stage and phase names of the CLI contract.
#pragma once

#include <cmath>
#include <cstdio>
#include <masquant/calibrate/report.hpp>
#include <nlohmann/json.hpp>
#include <string>

namespace masquant::cli {

/// A number for JSON: null when not finite (not computed, or an exact output).
inline nlohmann::json json_number(double v) {
  return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr);
}

/// One layer's entry of the report JSON: {"rank", "modalities": {name: {...}}, "seconds": {...}},
/// "learning" when learned MAS ran, "skipped" when something asked for did not run. A modality
/// whose scores were not computed has null scores and "sqnr_status" saying why.
inline nlohmann::json report_json(const calibration_report& r) {
  nlohmann::json layer;
  layer["rank"] = r.rank;
  nlohmann::json mods = nlohmann::json::object();
  for (const auto& m : r.modalities) {
    nlohmann::json e;
    e["tokens"] = m.tokens;
    e["effective_rank"] = json_number(m.effective_rank);
    e["rank"] = m.rank;
    nlohmann::json sq = nlohmann::json::object();
    for (int s = 0; s < report_stage_count; ++s)
      sq[to_string(static_cast<report_stage>(s))] = json_number(m.sqnr_db[std::size_t(s)]);
    e["sqnr_db"] = sq;
    if (m.scores != score_status::computed) e["sqnr_status"] = to_string(m.scores);
    e["alpha"] = json_number(m.alpha);
    if (m.relative_residual) e["relative_residual"] = json_number(*m.relative_residual);
    e["damping"] = m.damping;
    mods[m.name] = e;
  }
  layer["modalities"] = mods;
  if (r.learning.steps > 0)
    layer["learning"] = {{"steps", r.learning.steps},
                         {"initial_loss", json_number(r.learning.initial_loss)},
                         {"final_loss", json_number(r.learning.final_loss)},
                         {"skipped_steps", r.learning.skipped_steps}};
  nlohmann::json seconds = nlohmann::json::object();
  for (int p = 0; p < calibration_phase_count; ++p)
    seconds[to_string(static_cast<calibration_phase>(p))] =
        r.seconds[static_cast<calibration_phase>(p)];
  seconds["total"] = r.seconds.total;
  layer["seconds"] = seconds;
  if (!r.skipped.empty()) {
    nlohmann::json skipped = nlohmann::json::array();
    for (const auto& s : r.skipped)
      skipped.push_back({{"phase", to_string(s.phase)}, {"reason", s.reason}});
    layer["skipped"] = skipped;
  }
  return layer;
}

/// A score as the table shows it: "-" for a modality without tokens, "n/c" for scores not
/// computed (no token sample, or the report turned off), "nan" for a NaN score, "exact" for
/// +inf (a lossless stage).
inline std::string format_db(score_status status, double v) {
  if (status == score_status::no_tokens) return "-";
  if (status != score_status::computed) return "n/c";
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "exact" : "-inf";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

/// Prints one layer's table: a row per modality, a column per stage (SQNR in dB, higher is
/// better), plus rank and effective rank of its compensation; then a line per skipped part.
inline void print_report_table(std::FILE* out, const calibration_report& r) {
  std::fprintf(out, "  %-10s %7s %5s %7s", "modality", "tokens", "rank", "erank");
  for (int s = 0; s < report_stage_count; ++s)
    std::fprintf(out, " %15s", to_string(static_cast<report_stage>(s)));
  std::fprintf(out, "\n");
  for (const auto& m : r.modalities) {
    char erank[32] = "-";
    if (m.rank > 0) std::snprintf(erank, sizeof erank, "%.1f", m.effective_rank);
    std::fprintf(out, "  %-10s %7td %5td %7s", m.name.c_str(), m.tokens, m.rank, erank);
    for (int s = 0; s < report_stage_count; ++s)
      std::fprintf(out, " %15s", format_db(m.scores, m.sqnr_db[std::size_t(s)]).c_str());
    std::fprintf(out, "\n");
  }
  for (const auto& s : r.skipped)
    std::fprintf(out, "  not computed (%s): %s\n", to_string(s.phase), s.reason.c_str());
}

}  // namespace masquant::cli

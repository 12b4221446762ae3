// Tests of the masquant tool's report (tools/masquant/report_format.hpp): the table and the JSON
// tell a modality without tokens from scores not computed from a NaN score, and list what was
// skipped.
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <cstdio>
#include <limits>
#include <masquant/calibrate/report.hpp>
#include <string>

#include "masquant/report_format.hpp"

using namespace masquant;

namespace {

/// text: computed, one NaN and one exact stage; vision: no tokens; audio: no token sample;
/// speech: report turned off.
calibration_report four_kinds() {
  calibration_report r;
  r.modalities.resize(4);
  const char* names[] = {"text", "vision", "audio", "speech"};
  const score_status status[] = {score_status::computed, score_status::no_tokens,
                                 score_status::no_sample, score_status::not_requested};
  for (std::size_t m = 0; m < 4; ++m) {
    r.modalities[m].name = names[m];
    r.modalities[m].scores = status[m];
    r.modalities[m].tokens = m == 1 ? 0 : 64;
  }
  auto& db = r.modalities[0].sqnr_db;
  db = {11.5, std::numeric_limits<double>::quiet_NaN(), 20.25,
        std::numeric_limits<double>::infinity(), 30.0};
  r.skipped.push_back({calibration_phase::learning, "learned MAS needs calibration tokens"});
  return r;
}

std::string table_of(const calibration_report& r) {
  std::FILE* f = std::tmpfile();
  cli::print_report_table(f, r);
  std::rewind(f);
  std::string out;
  for (int c; (c = std::fgetc(f)) != EOF;) out += static_cast<char>(c);
  std::fclose(f);
  return out;
}

std::string line_of(const std::string& table, const std::string& name) {
  const auto at = table.find("  " + name + " ");
  BOOST_REQUIRE(at != std::string::npos);
  return table.substr(at, table.find('\n', at) - at);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(cli_report)

BOOST_AUTO_TEST_CASE(the_table_tells_no_tokens_not_computed_and_nan_apart) {
  const std::string t = table_of(four_kinds());
  const std::string text = line_of(t, "text"), vision = line_of(t, "vision"),
                    audio = line_of(t, "audio"), speech = line_of(t, "speech");
  BOOST_TEST(text.find("11.50") != std::string::npos, text);
  BOOST_TEST(text.find(" nan") != std::string::npos, text);
  BOOST_TEST(text.find(" exact") != std::string::npos, text);
  BOOST_TEST(vision.find("n/c") == std::string::npos, vision);
  BOOST_TEST(vision.find("nan") == std::string::npos, vision);
  BOOST_TEST(vision.substr(vision.size() - 2) == " -", vision);
  for (const auto& l : {audio, speech}) {
    BOOST_TEST(l.find(" n/c") != std::string::npos, l);
    BOOST_TEST(l.find("nan") == std::string::npos, l);
  }
  BOOST_TEST(
      t.find("not computed (learning): learned MAS needs calibration tokens") != std::string::npos,
      t);
}

BOOST_AUTO_TEST_CASE(the_json_says_why_scores_are_missing) {
  const auto j = cli::report_json(four_kinds());
  const auto& mods = j.at("modalities");
  BOOST_TEST(!mods.at("text").contains("sqnr_status"));
  BOOST_TEST(mods.at("text").at("sqnr_db").at("smoothquant").is_null());  // the NaN score
  BOOST_TEST(mods.at("text").at("sqnr_db").at("rtn").get<double>() == 11.5);
  BOOST_TEST(mods.at("vision").at("sqnr_status").get<std::string>() == "no_tokens");
  BOOST_TEST(mods.at("audio").at("sqnr_status").get<std::string>() == "no_sample");
  BOOST_TEST(mods.at("speech").at("sqnr_status").get<std::string>() == "not_requested");
  BOOST_TEST(mods.at("audio").at("sqnr_db").at("cmc").is_null());
  BOOST_TEST(j.at("skipped").size() == 1u);
  BOOST_TEST(j.at("skipped")[0].at("phase").get<std::string>() == "learning");
  // Every phase has its timing key, and the total.
  for (int p = 0; p < calibration_phase_count; ++p)
    BOOST_TEST(j.at("seconds").contains(to_string(static_cast<calibration_phase>(p))));
  BOOST_TEST(j.at("seconds").contains("total"));
  calibration_report none = four_kinds();
  none.skipped.clear();
  BOOST_TEST(!cli::report_json(none).contains("skipped"));
}

BOOST_AUTO_TEST_SUITE_END()

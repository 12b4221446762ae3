// Tests of the masquant tool's strict argument parser (tools/masquant/args.hpp), and of the
// flags of `calibrate` against the calibration config (tools/masquant/command_specs.hpp).
#include <boost/test/unit_test.hpp>
#include <string>
#include <vector>

#include "masquant/args.hpp"
#include "masquant/cli_common.hpp"
#include "masquant/command_specs.hpp"

using namespace masquant::cli;

namespace {
const command_spec spec{"calibrate",
                        "IN -o OUT [flags]",
                        "Calibrates.",
                        {"IN"},
                        {{"output", "OUT", "output file", ""},
                         {"wbits", "N", "weight bits", "8"},
                         {"alpha", "A", "migration strength", "0.5"},
                         {"method", "M", "rtn|smoothquant|mas", "mas"},
                         {"verbose", "", "more output", ""}}};
}  // namespace

BOOST_AUTO_TEST_SUITE(cli_args)

BOOST_AUTO_TEST_CASE(accepts_both_value_forms) {
  auto a = parse(spec, {"in.st", "-o", "out.st", "--wbits=4", "--alpha", "0.75", "--verbose"});
  BOOST_TEST(a.positional().size() == 1u);
  BOOST_TEST(a.get("output") == "out.st");
  BOOST_TEST(a.get_int("wbits", 8, 2, 8) == 4);
  BOOST_TEST(a.get_double("alpha", 0.5, 0, 1) == 0.75);
  BOOST_TEST(a.has("verbose"));
  BOOST_TEST(a.get_choice("method", "mas", {"rtn", "smoothquant", "mas"}) == "mas");
  auto b = parse(spec, {"--", "-weird-name"});
  BOOST_TEST(b.positional()[0] == "-weird-name");
}

BOOST_AUTO_TEST_CASE(rejects_mistakes) {
  BOOST_CHECK_THROW(parse(spec, {"in", "--wbit", "4"}), usage_error);  // unknown flag
  BOOST_CHECK_THROW(parse(spec, {"in", "--wbits"}), usage_error);      // missing value
  BOOST_CHECK_THROW(parse(spec, {"in", "--verbose=1"}), usage_error);  // switch with value
  BOOST_CHECK_THROW(parse(spec, {"in", "--wbits", "4", "--wbits=8"}), usage_error);  // twice
  BOOST_CHECK_THROW(parse(spec, {}), usage_error);  // positional count
  BOOST_CHECK_THROW(parse(spec, {"a", "b"}), usage_error);
  BOOST_CHECK_THROW(parse(spec, {"in", "-x"}), usage_error);
  auto a = parse(spec, {"in", "--wbits", "4x", "--alpha", "nan", "--method", "gptq"});
  BOOST_CHECK_THROW(a.get_int("wbits", 8, 2, 8), usage_error);
  BOOST_CHECK_THROW(a.get_double("alpha", 0.5, 0, 1), usage_error);
  BOOST_CHECK_THROW(a.get_choice("method", "mas", {"rtn", "smoothquant", "mas"}), usage_error);
  auto b = parse(spec, {"in", "--wbits", "9", "--alpha", "1.5"});
  BOOST_CHECK_THROW(b.get_int("wbits", 8, 2, 8), usage_error);
  BOOST_CHECK_THROW(b.get_double("alpha", 0.5, 0, 1), usage_error);
  try {
    parse(spec, {"in", "--rank", "3"});
  } catch (const usage_error& e) {
    BOOST_TEST(std::string(e.what()).find("--rank") != std::string::npos);
  }
}

BOOST_AUTO_TEST_CASE(help) {
  BOOST_TEST(wants_help({"in", "--help"}));
  BOOST_TEST(wants_help({"-h"}));
  BOOST_TEST(!wants_help({"--", "--help"}));
  const std::string h = help_text(spec);
  BOOST_TEST(h.find("--wbits N") != std::string::npos);
  BOOST_TEST(h.find("(default: 8)") != std::string::npos);
}

// The help shows the defaults the tool uses (rendered from tool_default_config(), not repeated
// literals), the choices come from the enums' name tables, and no flag gives that config.
BOOST_AUTO_TEST_CASE(calibrate_defaults_come_from_the_config) {
  const masquant::calibration_config d = tool_default_config();
  BOOST_TEST(d.learn_steps == 50);  // the tool's one default that differs from the library's
  const std::string h = help_text(calibrate_spec);
  BOOST_TEST(h.find("rtn | smoothquant | mas (default: mas)") != std::string::npos, h);
  BOOST_TEST(h.find("cholesky | eigen | none (default: cholesky)") != std::string::npos, h);
  BOOST_TEST(h.find("(default: 50)") != std::string::npos);
  BOOST_TEST(h.find("(default: 1e-6)") != std::string::npos);
  BOOST_TEST(h.find("(default: 0.05)") != std::string::npos);
  const auto c = config_from_flags(parse(calibrate_spec, {"in", "-o", "out"}));
  BOOST_TEST(c.weight_bits == d.weight_bits);
  BOOST_TEST(c.learn_steps == d.learn_steps);
  BOOST_TEST((c.method == d.method));
  BOOST_TEST(c.alpha == d.alpha);
  BOOST_TEST(!c.alpha_search);
  BOOST_TEST(c.rank.rank == d.rank.rank);
  BOOST_TEST(c.rank.min_rank == d.rank.min_rank);
  BOOST_TEST((c.whitening.method == d.whitening.method));
  BOOST_TEST(c.whitening.damping == d.whitening.damping);
  BOOST_TEST(c.learning.learning_rate == d.learning.learning_rate);
  BOOST_TEST(c.learning.batch_tokens == d.learning.batch_tokens);
  BOOST_TEST(c.seed == d.seed);
  const auto e = config_from_flags(
      parse(calibrate_spec, {"in", "-o", "out", "--method", "rtn", "--whiten", "eigen"}));
  BOOST_TEST((e.method == masquant::smoothing_method::rtn));
  BOOST_TEST((e.whitening.method == masquant::whitening_method::eigen));
  for (const auto& n : masquant::smoothing_method_names)
    BOOST_TEST((masquant::parse_enum(masquant::smoothing_method_names, n.name) == n.value));
  BOOST_TEST(!masquant::parse_enum(masquant::whitening_method_names, "cholesky ").has_value());
  BOOST_TEST(number_text(1e-6) == "1e-6");
  BOOST_TEST(number_text(0.05) == "0.05");
  BOOST_TEST(number_text(2e10) == "2e10");
}

BOOST_AUTO_TEST_SUITE_END()

// Tests of the masquant tool's strict argument parser (tools/masquant/args.hpp).
#include <boost/test/unit_test.hpp>
#include <string>
#include <vector>

#include "masquant/args.hpp"

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

BOOST_AUTO_TEST_SUITE_END()

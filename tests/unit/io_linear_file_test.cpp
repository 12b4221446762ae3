// io_linear_file_test.cpp: load_linear in the engine's modality order (a round trip through a file
// whose modalities sort differently), modalities that cannot be mapped, and the metadata keys
// load_linear reads (a missing or malformed one is named).
#include <boost/test/unit_test.hpp>
#include <cstring>
#include <masquant/io/linear_file.hpp>
#include <masquant/layer/quantized_linear.hpp>

#include "support/layer_testing.hpp"

using namespace masquant;
using masquant::testing::layer_case;
using masquant::testing::matrix;

namespace {

// A layer calibrated for text (reference), vision and audio, in that id order; the file sorts
// them text, audio, vision (load_linear's default order).
quantized_linear_params three_modalities() {
  layer_case c;
  c.d_in = 40;
  c.d_out = 24;
  c.ranks = {0, 5, 3};
  auto p = testing::random_params(c);
  p.modality_names = {"text", "vision", "audio"};
  return p;
}

std::vector<std::uint8_t> file_bytes(const quantized_linear_params& p,
                                     const std::vector<std::string>& drop_metadata = {}) {
  safetensors_writer w;
  add_linear(w, "layers.0.q", p);
  const std::pair<const char*, std::string> meta[] = {
      {"wbits", "8"}, {"abits", "8"}, {"reference", "text"}};
  for (const auto& [key, value] : meta)
    if (std::find(drop_metadata.begin(), drop_metadata.end(), key) == drop_metadata.end())
      w.set_metadata(key, value);
  return w.serialize();
}

template <class Fn>
void expect_error(Fn&& fn, errc code, const std::vector<std::string>& parts) {
  try {
    fn();
    BOOST_FAIL("no error");
  } catch (const error& e) {
    BOOST_TEST(e.code() == code, e.what());
    for (const auto& part : parts)
      BOOST_TEST(std::string(e.what()).find(part) != std::string::npos,
                 "'" << part << "' not in: " << e.what());
  }
}

}  // namespace

BOOST_AUTO_TEST_SUITE(io_linear_file)

BOOST_AUTO_TEST_CASE(engine_order_round_trip_keeps_every_token_on_its_modality) {
  const auto p = three_modalities();
  const quantized_linear original(p);
  const auto bytes = file_bytes(p);
  const auto f = safetensors_file::from_memory(bytes.data(), bytes.size());

  // The engine's own order, which is neither the original one nor the file's name order.
  const std::vector<std::string> engine = {"text", "audio", "vision"};
  const quantized_linear loaded(load_linear(f, "layers.0.q", engine));
  BOOST_TEST(loaded.params().modality_names == engine);
  BOOST_TEST(loaded.params().weight_bits == 8);

  // The same tokens: original ids (vision 1, audio 2) and the engine's (audio 1, vision 2).
  const auto x = testing::random_input(30, p.d_in, 5);
  const auto original_ids = testing::random_ids(30, 3, 6);
  std::vector<modality_id> engine_ids(original_ids.size());
  for (std::size_t i = 0; i < original_ids.size(); ++i)
    engine_ids[i] = original_ids[i] == 0 ? 0 : static_cast<modality_id>(3 - original_ids[i]);
  matrix<float> want(30, p.d_out), got(30, p.d_out);
  original.forward(x.cview(), original_ids, want.view());
  loaded.forward(x.cview(), engine_ids, got.view());
  BOOST_TEST(std::memcmp(want.data.data(), got.data.data(), want.data.size() * 4) == 0);
  // Passing the original ids to the loaded layer is wrong: the comparison can tell.
  loaded.forward(x.cview(), original_ids, got.view());
  BOOST_TEST(std::memcmp(want.data.data(), got.data.data(), want.data.size() * 4) != 0);

  // The original order works too, and the default (metadata, name order) is the file's.
  const quantized_linear same(load_linear(f, "layers.0.q", p.modality_names));
  same.forward(x.cview(), original_ids, got.view());
  BOOST_TEST(std::memcmp(want.data.data(), got.data.data(), want.data.size() * 4) == 0);
  const auto by_name = load_linear(f, "layers.0.q");
  BOOST_TEST(by_name.modality_names == (std::vector<std::string>{"text", "audio", "vision"}));
}

BOOST_AUTO_TEST_CASE(modalities_that_cannot_be_mapped_are_refused) {
  const auto bytes = file_bytes(three_modalities());
  const auto f = safetensors_file::from_memory(bytes.data(), bytes.size());
  expect_error(
      [&] {
        load_linear(f, "layers.0.q", {"vision", "text", "audio"});
      },
      errc::invalid_argument, {"modality 0 is 'vision'", "reference modality is 'text'"});
  expect_error(
      [&] {
        load_linear(f, "layers.0.q", {"text", "vision"});
      },
      errc::invalid_argument, {"modality 'audio'", "does not list (text, vision)"});
  expect_error(
      [&] {
        load_linear(f, "layers.0.q", {"text", "vision", "audio", "speech"});
      },
      errc::invalid_argument,
      {"no modality 'speech'", "id 3", "calibrated for audio, text, vision"});
  expect_error([&] { load_linear(f, "layers.0.q", std::vector<std::string>{}); },
               errc::invalid_argument, {"no modalities given"});
  // The explicit-bits overload names an unknown modality the same way.
  expect_error(
      [&] {
        load_linear(f, "layers.0.q", std::vector<std::string>{"text", "vision", "audio", "image"},
                    8, 8);
      },
      errc::format_error, {"missing tensor 'layers.0.q.smooth.image'", "id 3"});
}

BOOST_AUTO_TEST_CASE(missing_or_malformed_metadata_names_the_key) {
  const auto p = three_modalities();
  for (const char* key : {"wbits", "abits", "reference"}) {
    const auto bytes = file_bytes(p, {key});
    const auto f = safetensors_file::from_memory(bytes.data(), bytes.size());
    expect_error([&] { load_linear(f, "layers.0.q"); }, errc::format_error,
                 {std::string("__metadata__ has no '") + key + "'"});
    expect_error(
        [&] {
          load_linear(f, "layers.0.q", {"text", "vision", "audio"});
        },
        errc::format_error, {std::string("'") + key + "'"});
  }
  safetensors_writer w;
  add_linear(w, "l", p);
  w.set_metadata("wbits", "8 bits");
  w.set_metadata("abits", "8");
  w.set_metadata("reference", "text");
  const auto bytes = w.serialize();
  const auto f = safetensors_file::from_memory(bytes.data(), bytes.size());
  expect_error([&] { read_linear_metadata(f); }, errc::format_error,
               {"'wbits' is '8 bits'", "expected a bit width"});
}

BOOST_AUTO_TEST_SUITE_END()

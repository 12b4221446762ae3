// Tests of the grammar of tensor names (io/tensor_names.hpp) and of the layer files that use it
// (io/linear_file.hpp): every legal layer prefix, including ones that contain the grammar's own
// words (m.smooth, x.outputs.y, a.lowrank.b), reads back as itself.
#include <boost/test/unit_test.hpp>
#include <masquant/io/linear_file.hpp>
#include <masquant/io/safetensors.hpp>
#include <masquant/io/tensor_names.hpp>
#include <optional>
#include <string>
#include <support/io_testing.hpp>
#include <vector>

using namespace masquant;
using masquant::testing::check_error;

namespace {

std::string show(const std::optional<layer_tensor_name>& n) {
  if (!n) return "none";
  static const char* kinds[] = {"weight",  "bias",   "qweight",   "wscale",   "inputs",
                                "outputs", "smooth", "lowrank_L", "lowrank_R"};
  return n->prefix + " | " + kinds[static_cast<int>(n->kind)] +
         (n->modality.empty() ? "" : " | " + n->modality);
}

// A small valid layer with modalities text (reference) and vision (with a correction).
quantized_linear_params small_layer(float scale) {
  quantized_linear_params p;
  p.d_in = 3;
  p.d_out = 2;
  p.qweight = {1, -2, 3, 4, -5, 6};
  p.wscale = {scale, 2 * scale};
  p.bias = {0.5f, -0.5f};
  p.smooth = {{1.0f, 2.0f, 0.5f}, {0.25f, 1.0f, 4.0f}};
  p.modality_names = {"text", "vision"};
  p.lowrank.resize(2);
  p.lowrank[1].L = row_matrix<float>::Constant(3, 1, scale);
  p.lowrank[1].R = row_matrix<float>::Constant(1, 2, 0.5f);
  return p;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(io_tensor_names)

BOOST_AUTO_TEST_CASE(every_name_parses_one_way) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"model.layers.0.mlp.up_proj.weight", "model.layers.0.mlp.up_proj | weight"},
      {"p.bias", "p | bias"},
      {"p.qweight", "p | qweight"},
      {"p.wscale", "p | wscale"},
      {"p.inputs.text", "p | inputs | text"},
      {"p.outputs.vision", "p | outputs | vision"},
      {"p.smooth.audio", "p | smooth | audio"},
      {"p.lowrank.vision.L", "p | lowrank_L | vision"},
      {"p.lowrank.vision.R", "p | lowrank_R | vision"},
      // Layer prefixes holding the grammar's words.
      {"m.smooth.weight", "m.smooth | weight"},
      {"m.smooth.smooth.text", "m.smooth | smooth | text"},
      {"x.outputs.y.weight", "x.outputs.y | weight"},
      {"x.outputs.y.inputs.text", "x.outputs.y | inputs | text"},
      {"a.lowrank.b.qweight", "a.lowrank.b | qweight"},
      {"a.lowrank.b.lowrank.v.L", "a.lowrank.b | lowrank_L | v"},
      {"q.inputs.weight", "q.inputs | weight"},
      {"w.weight.weight", "w.weight | weight"},
      {"a.lowrank.smooth.L", "a.lowrank | smooth | L"},  // modality "L" of layer a.lowrank
      {"a.lowrank.inputs.R", "a.lowrank | inputs | R"},
      {"p.inputs.L", "p | inputs | L"},
      {"p.lowrank.L.R", "p | lowrank_R | L"},
      {"..weight", ". | weight"},
      // Not the grammar's: ignored.
      {"weight", "none"},
      {".weight", "none"},
      {"p.inputs.", "none"},
      {"p.inputs", "none"},
      {"inputs.text", "none"},
      {".inputs.text", "none"},
      {"p.smooth", "none"},
      {"p.lowrank.v", "none"},
      {"p.lowrank.v.X", "none"},
      {"lowrank.v.L", "none"},
      {"p.lowrank.smooth.X", "p.lowrank | smooth | X"},
      {"p.other", "none"},
      {"", "none"},
  };
  for (const auto& [name, expected] : cases)
    BOOST_TEST(show(parse_layer_tensor_name(name)) == expected, "'" << name << "'");
}

BOOST_AUTO_TEST_CASE(modality_names_exclude_the_grammars_words) {
  for (const char* ok : {"text", "vision", "audio", "L", "R", "0", "image_patch", "a-b"})
    BOOST_TEST(is_modality_name(ok), ok);
  for (const char* bad : {"", "a.b", ".", "weight", "bias", "qweight", "wscale", "inputs",
                          "outputs", "smooth", "lowrank"})
    BOOST_TEST(!is_modality_name(bad), "'" << bad << "'");
}

// Layers whose prefixes nest inside each other and hold the grammar's words, in one file: each
// reads back as written, and none takes the others' tensors.
BOOST_AUTO_TEST_CASE(layers_with_tricky_prefixes_round_trip) {
  const std::vector<std::string> prefixes = {"m",          "m.smooth",         "m.smooth.text",
                                             "m.lowrank",  "m.lowrank.vision", "x.outputs.y",
                                             "q.inputs.r", "w.weight"};
  safetensors_writer w;
  for (std::size_t i = 0; i < prefixes.size(); ++i)
    add_linear(w, prefixes[i], small_layer(0.1f * float(i + 1)));
  const auto bytes = w.serialize();
  const auto f = safetensors_file::from_memory(bytes.data(), bytes.size());
  for (std::size_t i = 0; i < prefixes.size(); ++i) {
    const auto p = load_linear(f, prefixes[i], "text", 8, 8);
    const auto expected = small_layer(0.1f * float(i + 1));
    BOOST_TEST(p.modality_names == expected.modality_names, prefixes[i]);
    BOOST_TEST(p.wscale == expected.wscale, prefixes[i]);
    BOOST_TEST(p.smooth == expected.smooth, prefixes[i]);
    BOOST_TEST_REQUIRE(p.has_lowrank(1), prefixes[i]);
    BOOST_TEST(p.lowrank[1].L(0, 0) == expected.lowrank[1].L(0, 0), prefixes[i]);
  }
}

BOOST_AUTO_TEST_CASE(add_linear_refuses_names_that_would_not_read_back) {
  for (const char* bad : {"weight", "smooth", "a.b", "lowrank"}) {
    auto p = small_layer(0.5f);
    p.modality_names[1] = bad;
    safetensors_writer w;
    check_error([&] { add_linear(w, "p", p); }, errc::invalid_argument,
                {"modality name '" + std::string(bad) + "'"});
    BOOST_TEST(w.size() == 0);
  }
  safetensors_writer w;
  check_error([&] { add_linear(w, "", small_layer(0.5f)); }, errc::invalid_argument,
              {"empty layer prefix"});
}

BOOST_AUTO_TEST_SUITE_END()

// main.cpp: calibrates a linear, saves it with add_linear (the tensors `masquant calibrate`
// writes), loads it back with load_linear, and checks that the loaded layer computes exactly
// what the original computes. Built against the installed package (CMakeLists.txt beside this
// file), and in masquant's own tree as example_layer_file.
//   layer_file [OUT.safetensors]
#include <cstdio>
#include <masquant/io/linear_file.hpp>
#include <masquant/io/safetensors.hpp>
#include <masquant/masquant.hpp>
#include <random>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  using masquant::index_t;
  const std::string path = argc > 1 ? argv[1] : "calibrated_layer.safetensors";
  const std::string prefix = "model.layers.0.mlp.up_proj";

  // A small linear, [d_out, d_in], and calibration tokens of three modalities.
  const index_t d_in = 64, d_out = 48, n = 96;
  std::mt19937 gen(1);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  auto random = [&](index_t rows, float scale) {
    std::vector<float> v(static_cast<std::size_t>(rows * d_in));
    for (auto& e : v) e = scale * normal(gen);
    return v;
  };
  const std::vector<float> weight = random(d_out, 0.125f);
  std::vector<float> text = random(n, 1.0f), vision = random(n, 3.0f), audio = random(n, 1.5f);
  for (index_t t = 0; t < n; ++t) {
    text[std::size_t(t * d_in + 3)] = 40.0f;     // a massive text channel
    vision[std::size_t(t * d_in + 9)] *= 30.0f;  // a vision outlier channel
  }
  // The engine's modality ids: text 0 (the reference), vision 1, audio 2.
  const std::vector<std::string> engine_names{"text", "vision", "audio"};

  masquant::calibration_config config;
  config.weight_bits = 4;
  config.activation_bits = 8;
  const masquant::calibration_result result = masquant::calibrate(
      masquant::make_matrix_view(weight, d_out, d_in), {},
      {masquant::make_matrix_view(text, n, d_in), masquant::make_matrix_view(vision, n, d_in),
       masquant::make_matrix_view(audio, n, d_in)},
      config, engine_names);

  // Save: P.qweight, P.wscale, P.smooth.<m>, P.lowrank.<m>.L/R, plus the metadata that
  // load_linear's caller needs (what `masquant calibrate` writes too).
  masquant::safetensors_writer out;
  masquant::add_linear(out, prefix, result.params);
  out.set_metadata("format", "masquant");
  out.set_metadata("version", masquant::version_string);
  out.set_metadata("wbits", std::to_string(config.weight_bits));
  out.set_metadata("abits", std::to_string(config.activation_bits));
  out.set_metadata("reference", engine_names[0]);
  out.write(path);  // atomic: the file appears complete or not at all

  // Load.
  const masquant::safetensors_file file(path);
  // The engine's order: name m gets id m, so the engine's ids go to forward unchanged (the file
  // lists text, audio, vision); the bit widths come from the file's __metadata__.
  const masquant::quantized_linear loaded(masquant::load_linear(file, prefix, engine_names));
  const std::vector<std::string>& file_names = loaded.modality_names();

  // A prefill mixing all three modalities, through the original and the loaded layer.
  const index_t tokens = 40;
  const std::vector<float> x = random(tokens, 2.0f);
  const std::vector<masquant::modality_id> ids =
      masquant::ids_from_spans({{8, 24, 1}, {24, 32, 2}}, tokens);
  std::vector<float> y_original(static_cast<std::size_t>(tokens * d_out)), y_loaded(y_original);
  const masquant::quantized_linear original(result.params);
  original.forward(masquant::make_matrix_view(x, tokens, d_in), ids,
                   masquant::make_matrix_view(y_original, tokens, d_out));
  loaded.forward(masquant::make_matrix_view(x, tokens, d_in), ids,
                 masquant::make_matrix_view(y_loaded, tokens, d_out));

  std::printf("masquant %s: wrote %s (%zu tensors)\n", masquant::version_string, path.c_str(),
              file.tensors().size());
  for (const auto& t : file.tensors())
    std::printf("  %-40s %s\n", t.name.c_str(), masquant::to_string(t.type));
  const bool same = y_original == y_loaded;
  std::printf("loaded modalities:");
  for (const auto& name : file_names) std::printf(" %s", name.c_str());
  std::printf("\noutputs of the loaded layer %s the original's\n", same ? "equal" : "DIFFER from");
  return same ? 0 : 1;
}

// embed_engine.cpp: masquant seen from an inference engine.
//
// The engine owns plain float arrays: a linear's weight [d_out, d_in] (PyTorch nn.Linear layout)
// and bias [d_out], and calibration activations it captured per modality. This program
//   1. wraps those arrays in views (no copy),
//   2. calibrates the linear with MASQuant (W4A8: per-modality smoothing + compensation),
//   3. builds the deployable quantized_linear,
//   4. runs a prefill of a multimodal sequence (text, an image span, an audio span, text) with
//      a thread pool, then one decode step,
//   5. prints the calibration report and the output error against float x·Wᵀ + b.
// It returns non-zero when the results are not what they should be, so CTest checks it.
#include <cmath>
#include <cstdio>
#include <masquant/masquant.hpp>
#include <random>
#include <vector>

namespace {

using masquant::index_t;

constexpr index_t d_in = 256, d_out = 192;

/// Activations of one modality, [tokens, d_in] row-major, as an engine would capture them.
/// Text: unit-scale channels plus two massive ones; vision: larger, low-rank, with outlier
/// channels of its own; audio: in between. (Synthetic, to keep the example self-contained.)
std::vector<float> activations(int modality, index_t tokens, std::mt19937& gen) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(static_cast<std::size_t>(tokens * d_in));
  const index_t rank = modality == 1 ? 8 : 16;
  const float scale = modality == 1 ? 3.0f : 1.5f;
  std::vector<float> codes(static_cast<std::size_t>(rank));
  for (index_t t = 0; t < tokens; ++t) {
    float* row = x.data() + t * d_in;
    for (auto& c : codes) c = normal(gen);
    for (index_t j = 0; j < d_in; ++j) {
      if (modality == 0) {
        row[j] = normal(gen);
      } else {  // a low-rank signal: a fixed pseudo-random basis mixed by per-token codes
        float v = 0.1f * normal(gen);
        for (index_t k = 0; k < rank; ++k)
          v += codes[std::size_t(k)] * scale * std::sin(float(j * (k + 1 + 5 * modality)));
        row[j] = v;
      }
    }
    if (modality == 0) row[7] = row[100] = 40.0f + normal(gen);  // text's massive channels
    if (modality == 1)
      for (index_t j : {30, 31, 200}) row[j] *= 30.0f;  // vision outliers
    if (modality == 2)
      for (index_t j : {60, 150}) row[j] *= 10.0f;  // audio outliers
  }
  return x;
}

/// SQNR in dB of y against the float output x·Wᵀ + b (computed in double) over the given rows.
double sqnr_db(const std::vector<float>& x, const std::vector<float>& w,
               const std::vector<float>& b, const std::vector<float>& y, index_t row_begin,
               index_t row_end) {
  double signal = 0, noise = 0;
  for (index_t t = row_begin; t < row_end; ++t)
    for (index_t o = 0; o < d_out; ++o) {
      double ref = b[std::size_t(o)];
      for (index_t j = 0; j < d_in; ++j)
        ref += double(x[std::size_t(t * d_in + j)]) * double(w[std::size_t(o * d_in + j)]);
      const double err = double(y[std::size_t(t * d_out + o)]) - ref;
      signal += ref * ref;
      noise += err * err;
    }
  return 10.0 * std::log10(signal / noise);
}

}  // namespace

int main() {
  std::mt19937 gen(7);
  std::normal_distribution<float> normal(0.0f, 1.0f);

  // --- 1. The engine's float parameters and calibration activations, wrapped in views ------
  std::vector<float> weight(static_cast<std::size_t>(d_out * d_in));
  std::vector<float> bias(static_cast<std::size_t>(d_out));
  for (auto& v : weight) v = normal(gen) / 16.0f;
  for (auto& v : bias) v = 0.02f * normal(gen);
  const std::vector<float> calib_text = activations(0, 256, gen);
  const std::vector<float> calib_vision = activations(1, 256, gen);
  const std::vector<float> calib_audio = activations(2, 256, gen);

  const masquant::matrix_view<const float> w(weight.data(), d_out, d_in);  // no copy
  const masquant::vector_view<const float> b(bias);
  // One block of tokens per modality; the index is the modality id (0 = text, the reference).
  const masquant::modality_inputs inputs{masquant::make_matrix_view(calib_text, 256, d_in),
                                         masquant::make_matrix_view(calib_vision, 256, d_in),
                                         masquant::make_matrix_view(calib_audio, 256, d_in)};

  // --- 2. Calibrate: W4A8, MAS with 20 learning steps, compensation rank max(0.05·192, 32) -
  masquant::thread_pool pool(2);  // or the engine's own pool, as a parallel_for_fn
  masquant::calibration_config config;
  config.weight_bits = 4;
  config.activation_bits = 8;
  config.learn_steps = 20;
  config.parallel = pool.as_function();  // results do not depend on the thread count
  const masquant::calibration_result result =
      masquant::calibrate(w, b, inputs, config, {"text", "vision", "audio"});

  std::printf("calibration report (output SQNR in dB on the calibration tokens; rank %td)\n",
              result.report.rank);
  std::printf("  %-8s", "modality");
  for (int s = 0; s < masquant::report_stage_count; ++s)
    std::printf(" %15s", masquant::to_string(static_cast<masquant::report_stage>(s)));
  std::printf("\n");
  for (const auto& m : result.report.modalities) {
    std::printf("  %-8s", m.name.c_str());
    for (double db : m.sqnr_db) std::printf(" %15.2f", db);
    std::printf("\n");
  }

  // --- 3. The deployable linear (validates and packs once; immutable and thread-safe) -------
  const masquant::quantized_linear linear(result.params);
  // The same shared weight without the low-rank compensation, to show what CMC buys.
  masquant::quantized_linear_params no_cmc_params = result.params;
  no_cmc_params.lowrank.clear();
  const masquant::quantized_linear no_cmc(std::move(no_cmc_params));

  // --- 4. Prefill: 16 text tokens, a 64-token image, 32 audio tokens, 16 text tokens -------
  const index_t tokens = 128;
  std::vector<float> x(std::size_t(tokens * d_in));
  auto fill = [&](index_t begin, index_t end, int modality) {  // fresh tokens, not calibration
    const std::vector<float> rows = activations(modality, end - begin, gen);
    std::copy(rows.begin(), rows.end(), x.begin() + begin * d_in);
  };
  fill(0, 16, 0);
  fill(16, 80, 1);
  fill(80, 112, 2);
  fill(112, 128, 0);
  // The engine knows where the image and audio placeholders are: spans → one id per token.
  const std::vector<masquant::modality_id> ids =
      masquant::ids_from_spans({{16, 80, 1}, {80, 112, 2}}, tokens);  // other tokens: text (0)

  std::vector<float> y(std::size_t(tokens * d_out)), y_no_cmc(y.size());
  masquant::forward_options opt;
  opt.parallel = pool.as_function();
  linear.forward(masquant::make_matrix_view(x, tokens, d_in), ids,
                 masquant::make_matrix_view(y, tokens, d_out), opt);
  no_cmc.forward(masquant::make_matrix_view(x, tokens, d_in), ids,
                 masquant::make_matrix_view(y_no_cmc, tokens, d_out), opt);

  // --- 5. Decode: one generated (text) token, no ids: the reference path, no low-rank work --
  const std::vector<float> x1 = activations(0, 1, gen);
  std::vector<float> y1(static_cast<std::size_t>(d_out));
  linear.forward(masquant::make_matrix_view(x1, 1, d_in), masquant::make_matrix_view(y1, 1, d_out),
                 opt);

  // --- 6. Output error against float x·Wᵀ + b on these new tokens --------------------------
  struct span {
    const char* name;
    index_t begin, end;
  };
  const span spans[] = {{"text", 112, 128}, {"vision", 16, 80}, {"audio", 80, 112}};
  std::printf("\nprefill of %td tokens, output SQNR vs float (dB):\n", tokens);
  std::printf("  %-8s %12s %12s\n", "modality", "deployed", "without CMC");
  bool ok = true;
  for (const auto& s : spans) {
    const double db = sqnr_db(x, weight, bias, y, s.begin, s.end);
    const double db_no = sqnr_db(x, weight, bias, y_no_cmc, s.begin, s.end);
    std::printf("  %-8s %12.2f %12.2f\n", s.name, db, db_no);
    ok = ok && db > 15.0;  // W4A8: far above what a broken pipeline gives
    if (s.begin != 112) ok = ok && db > db_no + 1.0;  // compensation helps vision and audio
  }
  const double decode_db = sqnr_db(x1, weight, bias, y1, 0, 1);
  std::printf("decode (1 text token): %.2f dB\n", decode_db);
  ok = ok && decode_db > 15.0;
  std::printf("%s\n", ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}

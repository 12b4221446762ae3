// The runtime half built with -fno-exceptions (tests/consumer/run.cmake): views, the packed
// weights and the layer's forward on a thread_pool, checked against reference_forward; with an
// argument, a bad call that must reach MASQUANT_ERROR_HANDLER (and then std::abort()).
#include <cstdio>
#include <string>

static void report(int code, const std::string& message) {
  std::fprintf(stderr, "engine handler: code %d: %s\n", code, message.c_str());
}
#define MASQUANT_ERROR_HANDLER(code, message) report(static_cast<int>(code), message)

#include <cmath>
#include <masquant/layer/quantized_linear.hpp>
#include <masquant/parallel.hpp>
#include <vector>

#if defined(__cpp_exceptions) || defined(__EXCEPTIONS)
#error "build this file with -fno-exceptions"
#endif

int main(int argc, char**) {
  const masquant::index_t d_in = 96, d_out = 80, tokens = 5;
  masquant::quantized_linear_params p;
  p.d_in = d_in;
  p.d_out = d_out;
  p.weight_bits = 4;
  for (masquant::index_t i = 0; i < d_in * d_out; ++i)
    p.qweight.push_back(static_cast<std::int8_t>((i * 7) % 15 - 7));
  p.wscale.assign(static_cast<std::size_t>(d_out), 0.02f);
  p.smooth = {std::vector<float>(static_cast<std::size_t>(d_in), 1.0f),
              std::vector<float>(static_cast<std::size_t>(d_in), 0.5f)};
  p.lowrank.resize(2);
  p.lowrank[1].L = masquant::row_matrix<float>::Constant(d_in, 3, 0.01f);
  p.lowrank[1].R = masquant::row_matrix<float>::Constant(3, d_out, 0.02f);
  masquant::linear_options lo;
  lo.storage = masquant::lowrank_storage::float32;
  const masquant::quantized_linear layer(p, lo);

  std::vector<float> x(static_cast<std::size_t>(tokens * d_in));
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.37f * static_cast<float>(i));
  const std::vector<masquant::modality_id> ids = {0, 1, 1, 0, 1};
  std::vector<float> y(static_cast<std::size_t>(tokens * d_out));
  std::vector<double> ref(y.size());
  const masquant::matrix_view<const float> xv(x.data(), tokens, d_in);
  const masquant::vector_view<const masquant::modality_id> idv(ids.data(), tokens);
  masquant::thread_pool pool(2);
  masquant::forward_options opt;
  opt.parallel = pool.as_function();
  layer.forward(xv, idv, masquant::matrix_view<float>(y.data(), tokens, d_out), opt);
  layer.reference_forward(xv, idv, masquant::matrix_view<double>(ref.data(), tokens, d_out));
  for (std::size_t i = 0; i < y.size(); ++i) {
    if (std::abs(static_cast<double>(y[i]) - ref[i]) > 1e-4 * (1.0 + std::abs(ref[i]))) {
      std::fprintf(stderr, "no_exceptions: y[%zu] = %g, reference %g\n", i,
                   static_cast<double>(y[i]), ref[i]);
      return 1;
    }
  }
  if (argc > 1) {  // y has the wrong width: reported through the handler, then abort
    layer.forward(xv, idv, masquant::matrix_view<float>(y.data(), tokens, d_out - 1), opt);
    std::fprintf(stderr, "no_exceptions: the bad call returned\n");
    return 1;
  }
  std::printf("no_exceptions: forward == reference_forward\n");
  return 0;
}

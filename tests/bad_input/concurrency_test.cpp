// Concurrency: one shared quantized_linear (INT8 with corrections, INT4, unquantized
// activations) called from several threads at once, all of them also sharing one thread_pool
// for their inner parallelism, some with their own workspace: every call gives bitwise the serial
// result. Run under ThreadSanitizer by `scripts/check tsan`. (calibrate() from several threads:
// calibrate_test.)
#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <cstring>
#include <masquant/layer/quantized_linear.hpp>
#include <masquant/parallel.hpp>
#include <thread>
#include <vector>

#include "support/layer_testing.hpp"

using namespace masquant;
using masquant::testing::layer_case;
using masquant::testing::matrix;

namespace {

matrix<float> run(const quantized_linear& layer, const matrix<float>& x,
                  const std::vector<modality_id>& ids, const forward_options& opt = {}) {
  matrix<float> y(x.rows, layer.d_out());
  layer.forward(x.cview(), ids, y.view(), opt);
  return y;
}

bool bitwise_equal(const matrix<float>& a, const matrix<float>& b) {
  return a.data.size() == b.data.size() &&
         std::equal(a.data.begin(), a.data.end(), b.data.begin(),
                    [](float u, float v) { return std::memcmp(&u, &v, sizeof u) == 0; });
}

}  // namespace

BOOST_AUTO_TEST_SUITE(concurrency)

BOOST_AUTO_TEST_CASE(shared_layers_and_a_shared_pool) {
  std::vector<quantized_linear> layers;
  for (auto [wbits, abits] : {std::pair<int, int>{8, 8}, {4, 8}, {8, 16}}) {
    layer_case c;
    c.d_in = 72;
    c.d_out = 100;
    c.weight_bits = wbits;
    c.activation_bits = abits;
    c.ranks = {0, 9, 14};
    layers.emplace_back(testing::random_params(c));
  }
  constexpr int callers = 4, inputs = 3;
  std::vector<matrix<float>> xs;
  std::vector<std::vector<modality_id>> ids;
  for (int i = 0; i < inputs; ++i) {
    xs.push_back(testing::random_input(1 + 45 * i, 72, 10 + i));  // decode, and larger batches
    ids.push_back(testing::random_ids(1 + 45 * i, 3, 20 + i));
  }
  std::vector<std::vector<matrix<float>>> want(layers.size());
  for (std::size_t l = 0; l < layers.size(); ++l)
    for (int i = 0; i < inputs; ++i) want[l].push_back(run(layers[l], xs[i], ids[i]));

  thread_pool pool(2);
  std::vector<int> mismatches(callers, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < callers; ++t) {
    threads.emplace_back([&, t] {
      linear_workspace own;
      forward_options opt;
      opt.parallel = pool.as_function();
      if (t % 2) opt.workspace = &own;  // half the callers bring their own scratch memory
      for (int rep = 0; rep < 12; ++rep) {
        const std::size_t l = std::size_t(t + rep) % layers.size();
        const int i = (t + 2 * rep) % inputs;
        if (!bitwise_equal(run(layers[l], xs[i], ids[i], opt), want[l][i])) ++mismatches[t];
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < callers; ++t) BOOST_TEST(mismatches[t] == 0, "caller " << t);
}

BOOST_AUTO_TEST_SUITE_END()

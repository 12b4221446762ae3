// Built with nothing but `pkg-config --cflags --libs masquant` (tests/consumer/run.cmake): the
// installed headers and Eigen come from the .pc files alone.
#include <cstdio>
#include <masquant/parallel.hpp>
#include <masquant/tensor/eigen.hpp>
#include <masquant/version.hpp>

int main() {
  masquant::row_matrix<float> m = masquant::row_matrix<float>::Constant(2, 3, 1.5f);
  const auto view = masquant::view_of(m);
  masquant::thread_pool pool(2);
  float sum = 0;
  pool.parallel_for(1, [&](masquant::index_t) { sum = masquant::as_eigen(view).sum(); });
  std::printf("masquant %s: %g\n", MASQUANT_VERSION_STRING, static_cast<double>(sum));
  return sum == 9.0f ? 0 : 1;
}

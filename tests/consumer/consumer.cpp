// A tiny program that uses masquant the way an outside project does (umbrella header only).
#include <masquant/masquant.hpp>

#include <cstdio>
#include <vector>

int main() {
  std::vector<float> buf{1.0f, -2.0f, 3.0f, -4.0f, 5.0f, -6.0f};
  const masquant::matrix_view<const float> x(buf.data(), 2, 3);
  const auto ids = masquant::ids_from_spans({{1, 2, 1}}, 2);
  std::printf("masquant %s: %td x %td, token 1 has modality %d\n", masquant::version_string,
              x.rows(), x.cols(), int(ids[1]));
  return (x(1, 2) == -6.0f && ids[1] == 1) ? 0 : 1;
}

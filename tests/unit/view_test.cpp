// Tests of tensor/view.hpp and tensor/eigen.hpp.
#include <masquant/tensor/eigen.hpp>
#include <masquant/tensor/view.hpp>

#include <boost/test/unit_test.hpp>
#include <type_traits>
#include <vector>

using namespace masquant;

BOOST_AUTO_TEST_SUITE(tensor_view)

static_assert(std::is_trivially_copyable_v<matrix_view<float>>);
static_assert(std::is_trivially_copyable_v<vector_view<const float>>);
static_assert(std::is_convertible_v<matrix_view<float>, matrix_view<const float>>);
static_assert(!std::is_convertible_v<matrix_view<const float>, matrix_view<float>>);
static_assert(!std::is_convertible_v<vector_view<const int>, vector_view<int>>);
static_assert(!std::is_convertible_v<matrix_view<float>, matrix_view<double>>);

BOOST_AUTO_TEST_CASE(indexing_and_strides) {
  std::vector<float> buf(3 * 5);
  for (std::size_t i = 0; i < buf.size(); ++i) buf[i] = float(i);
  matrix_view<float> m(buf.data(), 3, 4, 5);  // padded rows
  BOOST_TEST(m.rows() == 3);
  BOOST_TEST(m.cols() == 4);
  BOOST_TEST(m.stride() == 5);
  BOOST_TEST(!m.is_contiguous());
  BOOST_TEST(m(2, 3) == 13.0f);
  BOOST_TEST(m.row(1)[0] == 5.0f);
  auto b = m.block(1, 2, 2, 2);
  BOOST_TEST(b(0, 0) == 7.0f);
  BOOST_TEST(b(1, 1) == 13.0f);
  BOOST_TEST(b.stride() == 5);
  matrix_view<const float> c = m;
  BOOST_TEST(c(0, 1) == 1.0f);
  BOOST_TEST(m.middle_rows(2, 1)(0, 0) == 10.0f);
}

BOOST_AUTO_TEST_CASE(checked_construction) {
  std::vector<float> buf(16);
  BOOST_CHECK_THROW(matrix_view<float>(buf.data(), -1, 4), error);
  BOOST_CHECK_THROW(matrix_view<float>(buf.data(), 2, 4, 3), error);
  BOOST_CHECK_THROW(matrix_view<float>(nullptr, 2, 4), error);
  BOOST_CHECK_NO_THROW(matrix_view<float>(nullptr, 0, 4));
  BOOST_CHECK_NO_THROW(matrix_view<float>(buf.data(), 1, 4, 0));  // one row: any stride
  matrix_view<float> m(buf.data(), 4, 4);
  BOOST_CHECK_THROW(m.block(2, 2, 3, 1), error);
  BOOST_CHECK_THROW(m.row(4), error);
  BOOST_CHECK_THROW(vector_view<float>(nullptr, 3), error);
  BOOST_CHECK_THROW(vector_view<float>(buf.data(), 16).subview(10, 7), error);
  try {
    matrix_view<float>(buf.data(), 2, 4, 3);
  } catch (const error& e) {
    BOOST_TEST(e.code() == errc::invalid_argument);
    BOOST_TEST(std::string(e.what()).find("stride 3") != std::string::npos);
  }
}

BOOST_AUTO_TEST_CASE(make_view_checks_size) {
  std::vector<int> v(12);
  BOOST_TEST(make_matrix_view(v, 3, 4).stride() == 4);
  BOOST_CHECK_THROW(make_matrix_view(v, 3, 5), error);
}

BOOST_AUTO_TEST_CASE(eigen_round_trip) {
  std::vector<double> buf(4 * 6, 0.0);
  matrix_view<double> m(buf.data(), 4, 5, 6);
  auto e = as_eigen(m);
  e.setConstant(2.0);
  BOOST_TEST(buf[5] == 0.0);  // padding untouched
  BOOST_TEST(buf[6] == 2.0);
  e(3, 4) = 7.0;
  BOOST_TEST(m(3, 4) == 7.0);

  row_matrix<float> a(3, 2);
  a << 1, 2, 3, 4, 5, 6;
  auto va = view_of(a);
  static_assert(std::is_same_v<decltype(va), matrix_view<float>>);
  BOOST_TEST(va(2, 1) == 6.0f);
  const row_matrix<float>& ca = a;
  static_assert(std::is_same_v<decltype(view_of(ca)), matrix_view<const float>>);

  // A writable Map gives a writable view; a const Map a read-only one.
  auto vm = view_of(as_eigen(m));
  static_assert(std::is_same_v<decltype(vm), matrix_view<double>>);
  BOOST_TEST(vm.stride() == 6);
  auto vc = view_of(as_eigen(matrix_view<const double>(m)));
  static_assert(std::is_same_v<decltype(vc), matrix_view<const double>>);

  Eigen::VectorXf v(5);
  v.setLinSpaced(0.f, 4.f);
  auto vv = vector_view_of(v);
  BOOST_TEST(vv[4] == 4.0f);
  BOOST_TEST(as_eigen(vv).sum() == 10.0f);
}

BOOST_AUTO_TEST_SUITE_END()

// Tests of modality/modality.hpp.
#include <masquant/modality/modality.hpp>

#include <boost/test/unit_test.hpp>
#include <vector>

using namespace masquant;

BOOST_AUTO_TEST_SUITE(modality)

BOOST_AUTO_TEST_CASE(spans_round_trip) {
  auto ids = ids_from_spans({{2, 5, 1}, {7, 9, 2}}, 10);
  const std::vector<modality_id> want{0, 0, 1, 1, 1, 0, 0, 2, 2, 0};
  BOOST_TEST(ids == want, boost::test_tools::per_element());
  auto spans = spans_from_ids(vector_view<const modality_id>(ids));
  BOOST_TEST(spans.size() == 5u);
  BOOST_TEST(spans[1].begin == 2);
  BOOST_TEST(spans[1].end == 5);
  BOOST_TEST(int(spans[3].id) == 2);
  auto again = ids_from_spans(spans, 10, 7);
  BOOST_TEST(again == ids, boost::test_tools::per_element());
  BOOST_TEST(spans_from_ids(vector_view<const modality_id>()).empty());
}

BOOST_AUTO_TEST_CASE(bad_spans) {
  BOOST_CHECK_THROW(ids_from_spans({{2, 11, 1}}, 10), error);
  BOOST_CHECK_THROW(ids_from_spans({{5, 4, 1}}, 10), error);
  BOOST_CHECK_THROW(ids_from_spans({{0, 4, 1}, {3, 5, 2}}, 10), error);
}

BOOST_AUTO_TEST_CASE(masks_and_counts) {
  std::vector<modality_id> ids(6, 0);
  const std::vector<std::uint8_t> vision{0, 1, 1, 0, 0, 0}, audio{0, 0, 0, 0, 1, 1},
      clash{1, 1, 0, 0, 0, 0};
  apply_mask(vision, 1, ids);
  apply_mask(audio, 2, ids);
  const std::vector<modality_id> want{0, 1, 1, 0, 2, 2};
  BOOST_TEST(ids == want, boost::test_tools::per_element());
  BOOST_CHECK_THROW(apply_mask(clash, 2, ids), error);
  BOOST_TEST(ids == want, boost::test_tools::per_element());  // unchanged by the failed call
  auto counts = count_tokens(vector_view<const modality_id>(ids), 3);
  BOOST_TEST(counts[0] == 2);
  BOOST_TEST(counts[1] == 2);
  BOOST_TEST(counts[2] == 2);
  BOOST_CHECK_THROW(count_tokens(vector_view<const modality_id>(ids), 2), error);
  auto rows = tokens_of(vector_view<const modality_id>(ids), 2);
  BOOST_TEST(rows == (std::vector<index_t>{4, 5}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(names) {
  modality_names names;
  BOOST_TEST(names.size() == 3);
  BOOST_TEST(int(names.id("audio")) == 2);
  BOOST_TEST(names.name(1) == "vision");
  BOOST_TEST(!names.find("video").has_value());
  BOOST_CHECK_THROW(names.id("video"), error);
  BOOST_CHECK_THROW(names.name(3), error);
  BOOST_CHECK_THROW(modality_names({"text", "text"}), error);
  BOOST_CHECK_THROW(modality_names(std::vector<std::string>{}), error);
}

BOOST_AUTO_TEST_SUITE_END()

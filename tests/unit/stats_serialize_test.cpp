// Tests of stats/serialize.hpp: bit-exact round trips, the documented byte layout, every kind
// of corruption (with its byte offset), atomic saves.
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <masquant/stats/serialize.hpp>
#include <string>
#include <vector>

#include "support/stats_testing.hpp"

using namespace masquant;
using namespace masquant::testing;

namespace {

using bytes_t = std::vector<std::uint8_t>;

channel_stats sample(index_t c, bool gram, std::uint64_t seed) {
  channel_stats s(c, gram);
  s.add(random_normal(37, c, 2.0f, seed).cview());
  return s;
}

template <class T>
void poke(bytes_t& b, std::size_t at, T value) {
  std::memcpy(b.data() + at, &value, sizeof(T));  // the test host is little-endian
}

void expect_format_error(const bytes_t& b, std::size_t offset, const std::string& part = "") {
  expect_error([&] { channel_stats_from_bytes(b.data(), b.size()); }, errc::format_error,
               "at byte offset " + std::to_string(offset));
  if (!part.empty())
    expect_error([&] { channel_stats_from_bytes(b.data(), b.size()); }, errc::format_error, part);
}

std::string temp_path(const std::string& name) {
  return (boost::unit_test::framework::current_test_case().p_name.get() + "_" + name);
}

bool exists(const std::string& path) {
  return std::ifstream(path).good();
}

// Files in the working directory whose name starts with `prefix` (leftover temporaries).
int count_files_starting_with(const std::string& prefix) {
  int n = 0;
  for (const auto& entry : std::filesystem::directory_iterator("."))
    if (entry.path().filename().string().rfind(prefix, 0) == 0) ++n;
  return n;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(stats_serialize)

BOOST_AUTO_TEST_CASE(documented_layout) {
  const channel_stats s = sample(3, true, 1);
  const bytes_t b = to_bytes(s);
  BOOST_TEST(b.size() == 24u + 16u + 4u * 3u * 8u + 6u * 8u);
  BOOST_TEST(std::memcmp(b.data(), "MQSTATS\0", 8) == 0);
  std::uint32_t u = 0;
  std::int64_t i = 0;
  double d = 0;
  std::memcpy(&u, b.data() + 8, 4);
  BOOST_TEST(u == 1u);  // version
  std::memcpy(&u, b.data() + 12, 4);
  BOOST_TEST(u == 1u);  // records
  std::memcpy(&i, b.data() + 16, 8);
  BOOST_TEST(i == 3);  // channels
  std::memcpy(&u, b.data() + 24, 4);
  BOOST_TEST(u == 1u);  // flags: Gram
  std::memcpy(&i, b.data() + 32, 8);
  BOOST_TEST(i == 37);  // count
  std::memcpy(&d, b.data() + 40 + 8, 8);
  BOOST_TEST(d == s.min()[1]);
  std::memcpy(&d, b.data() + 40 + 3 * 8 + 2 * 8, 8);
  BOOST_TEST(d == s.max()[2]);
  std::memcpy(&d, b.data() + 40 + 6 * 8, 8);
  BOOST_TEST(d == s.mean()[0]);
  std::memcpy(&d, b.data() + 40 + 9 * 8 + 8, 8);
  BOOST_TEST(d == s.variance()[1] * 37.0, boost::test_tools::tolerance(1e-15));  // m2
  // Gram: column by column, G(0,0), G(0,1), G(1,1), G(0,2), ...
  const Eigen::MatrixXd g = s.gram();
  std::memcpy(&d, b.data() + 40 + 12 * 8 + 3 * 8, 8);
  BOOST_TEST(d == g(0, 2));
  std::memcpy(&d, b.data() + 40 + 12 * 8 + 5 * 8, 8);
  BOOST_TEST(d == g(2, 2));
}

BOOST_AUTO_TEST_CASE(round_trip_is_bit_exact) {
  for (index_t c : {0, 1, 3, 17}) {
    for (bool gram : {false, true}) {
      const channel_stats s = sample(c, gram, static_cast<std::uint64_t>(c + 3));
      const bytes_t b = to_bytes(s);
      const channel_stats r = channel_stats_from_bytes(b.data(), b.size());
      BOOST_TEST(r.channels() == c);
      BOOST_TEST(r.count() == s.count());
      BOOST_TEST(r.has_gram() == gram);
      BOOST_TEST(to_bytes(r) == b);
      for (index_t j = 0; j < c; ++j) {
        BOOST_TEST(same_bits(r.mean()[j], s.mean()[j]));
        BOOST_TEST(same_bits(r.variance()[j], s.variance()[j]));
        BOOST_TEST(same_bits(r.absmax()[j], s.absmax()[j]));
      }
      if (gram) BOOST_TEST((r.gram() == s.gram()));
      // The loaded accumulator keeps accumulating like the original.
      channel_stats a = s, b2 = r;
      const auto more = random_normal(9, c, 1.0f, 99);
      a.add(more.cview());
      b2.add(more.cview());
      BOOST_TEST(to_bytes(a) == to_bytes(b2));
    }
  }
  // An empty accumulator round-trips too.
  const bytes_t e = to_bytes(channel_stats(4, true));
  BOOST_TEST(to_bytes(channel_stats_from_bytes(e.data(), e.size())) == e);
}

BOOST_AUTO_TEST_CASE(modality_stats_round_trip) {
  modality_stats s(6, 3, gram_mode::non_reference);
  std::vector<modality_id> ids(40);
  for (std::size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<modality_id>(i % 2);
  s.add(random_normal(40, 6, 1.0f, 5).cview(), ids);
  const bytes_t b = to_bytes(s);
  const modality_stats r = modality_stats_from_bytes(b.data(), b.size());
  BOOST_TEST(r.modalities() == 3);
  BOOST_TEST(!r[0].has_gram());
  BOOST_TEST(r[1].has_gram());
  BOOST_TEST(r[2].count() == 0);
  BOOST_TEST(to_bytes(r) == b);
  // Three records are not one channel_stats.
  expect_format_error(b, 12, "holds 3 accumulators");
}

BOOST_AUTO_TEST_CASE(every_truncation_is_rejected) {
  const bytes_t b = to_bytes(sample(3, true, 2));
  for (std::size_t n = 0; n < b.size(); ++n) {
    const bytes_t cut(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(n));
    expect_error([&] { channel_stats_from_bytes(cut.data(), cut.size()); }, errc::format_error,
                 "byte offset");
  }
  expect_format_error(bytes_t(b.begin(), b.begin() + 20), 16, "truncated: channel count");
  expect_format_error(bytes_t(b.begin(), b.begin() + 30), 16, "does not fit the 6 bytes");
  expect_format_error(bytes_t(b.end() - 4, b.end()), 0, "truncated: magic");
  expect_format_error(bytes_t(b.begin(), b.end() - 4), 40, "truncated: record arrays");
  bytes_t longer = b;
  longer.push_back(0);
  expect_format_error(longer, b.size(), "1 unexpected bytes");
}

BOOST_AUTO_TEST_CASE(every_corruption_names_its_offset) {
  const bytes_t good = to_bytes(sample(3, true, 3));
  const double nan = std::numeric_limits<double>::quiet_NaN();
  {
    bytes_t b = good;
    b[3] = 'X';
    expect_format_error(b, 0, "bad magic");
  }
  {
    bytes_t b = good;
    poke<std::uint32_t>(b, 8, 2);
    expect_format_error(b, 8, "unsupported version 2");
  }
  {
    bytes_t b = good;
    poke<std::uint32_t>(b, 12, 0);
    expect_format_error(b, 12, "record count 0");
  }
  {
    bytes_t b = good;
    poke<std::int64_t>(b, 16, 4);  // the arrays no longer fit
    expect_format_error(b, 40, "truncated: record arrays");
    poke<std::int64_t>(b, 16, -1);
    expect_format_error(b, 16, "channel count -1");
    poke<std::int64_t>(b, 16, std::int64_t{1} << 60);
    expect_format_error(b, 16, "does not fit");
  }
  {
    bytes_t b = good;
    poke<std::uint32_t>(b, 24, 2);
    expect_format_error(b, 24, "unknown flags");
    poke<std::uint32_t>(b, 24, 0);  // no Gram: the Gram bytes are now trailing garbage
    expect_format_error(b, good.size() - 6 * 8, "unexpected bytes");
  }
  {
    bytes_t b = good;
    poke<std::uint32_t>(b, 28, 1);
    expect_format_error(b, 28, "reserved");
  }
  {
    bytes_t b = good;
    poke<std::int64_t>(b, 32, -5);
    expect_format_error(b, 32, "negative token count");
  }
  {
    bytes_t b = good;
    poke<double>(b, 40 + 6 * 8 + 8, nan);  // mean of channel 1
    expect_format_error(b, 40 + 6 * 8 + 8, "invalid mean nan of channel 1");
  }
  {
    bytes_t b = good;
    poke<double>(b, 40 + 2 * 8, 1e30);  // min of channel 2 above its max
    expect_format_error(b, 40 + 2 * 8, "invalid min 1e+30 of channel 2");
  }
  {
    bytes_t b = good;
    poke<double>(b, 40 + 9 * 8, -1.0);  // negative m2 of channel 0
    expect_format_error(b, 40 + 9 * 8, "invalid m2 -1 of channel 0");
  }
  {
    bytes_t b = good;
    poke<std::int64_t>(b, 32, 0);  // an empty record must hold the empty state
    expect_format_error(b, 40, "0 tokens");
  }
  {
    bytes_t b = good;
    const std::size_t gram_at = 40 + 12 * 8;
    poke<double>(b, gram_at + 4 * 8, std::numeric_limits<double>::infinity());  // G(1, 2)
    expect_format_error(b, gram_at + 4 * 8, "Gram entry (1, 2)");
    b = good;
    poke<double>(b, gram_at + 2 * 8, -1.0);  // G(1, 1) < 0
    expect_format_error(b, gram_at + 2 * 8, "Gram entry (1, 1)");
  }
}

BOOST_AUTO_TEST_CASE(save_and_load_files_atomically) {
  const std::string path = temp_path("stats.bin");
  const channel_stats s = sample(9, true, 4);
  save(s, path);
  BOOST_TEST(to_bytes(load_channel_stats(path)) == to_bytes(s));
  // Overwriting replaces the whole file.
  const channel_stats t = sample(2, false, 5);
  save(t, path);
  BOOST_TEST(to_bytes(load_channel_stats(path)) == to_bytes(t));
  modality_stats m(4, 2);
  save(m, path);
  BOOST_TEST(to_bytes(load_modality_stats(path)) == to_bytes(m));
  BOOST_TEST(count_files_starting_with(path) == 1);  // no temporary left beside it
  expect_error([&] { load_channel_stats(path + ".missing"); }, errc::io_error, "cannot open");
  // A corrupt file names the path and the offset.
  { std::ofstream(path, std::ios::binary | std::ios::trunc) << "MQSTATS"; }
  expect_error([&] { load_channel_stats(path); }, errc::format_error, path);
  std::remove(path.c_str());
  // An unwritable destination fails without leaving anything behind.
  const std::string bad = "no_such_directory_for_stats/stats.bin";
  expect_error([&] { save(s, bad); }, errc::io_error, "no_such_directory_for_stats");
  BOOST_TEST(!exists(bad));
}

BOOST_AUTO_TEST_SUITE_END()

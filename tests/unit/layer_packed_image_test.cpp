// layer_packed_image_test.cpp: a layer adopted from its packed image runs bit for bit as the
// layer that wrote it, reads the big sections in place, and every damaged image is refused with
// an error that names the section and byte offset.
#include <boost/test/unit_test.hpp>
#include <cstring>
#include <limits>
#include <masquant/detail/aligned_buffer.hpp>
#include <masquant/layer/packed_image.hpp>
#include <masquant/parallel.hpp>
#include <memory>
#include <string>
#include <vector>

#include "support/layer_testing.hpp"
#include "support/stats_testing.hpp"

using namespace masquant;
using masquant::testing::expect_error;
using masquant::testing::layer_case;
using masquant::testing::matrix;

namespace {

using image = detail::aligned_buffer<unsigned char>;

image write_image(const quantized_linear& layer) {
  image out(packed_image_bytes(layer));
  write_packed_image(layer, out.data(), out.size());
  return out;
}

bool inside(const void* p, const image& img) {
  const auto* b = static_cast<const unsigned char*>(p);
  return b >= img.data() && b < img.data() + img.size();
}

template <class T>
void put(image& img, std::size_t at, T v) {
  std::memcpy(img.data() + at, &v, sizeof(T));
}
template <class T>
T get(const image& img, std::size_t at) {
  T v;
  std::memcpy(&v, img.data() + at, sizeof(T));
  return v;
}

// Recomputes the header checksum after an edit (FNV-1a 64 with bytes 24..31 as zeros; an
// independent copy of the documented rule).
void reseal(image& img) {
  const auto header = get<std::uint32_t>(img, 12);
  std::uint64_t h = 14695981039346656037ull;
  for (std::size_t i = 0; i < header; ++i) {
    h ^= (i >= 24 && i < 32) ? 0u : img.data()[i];
    h *= 1099511628211ull;
  }
  put<std::uint64_t>(img, 24, h);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(layer_packed_image)

BOOST_AUTO_TEST_CASE(adopted_layers_run_as_the_written_ones_reading_in_place) {
  thread_pool pool(2);
  std::uint64_t seed = 70;
  for (int wb : {8, 4}) {
    for (int ab : {8, 16}) {
      for (auto storage : {lowrank_storage::bfloat16, lowrank_storage::float32}) {
        for (bool bias : {true, false}) {
          layer_case c;
          c.d_in = 130;
          c.d_out = 77;
          c.weight_bits = wb;
          c.activation_bits = ab;
          c.ranks = {0, 9, 0, 20};
          c.bias = bias;
          c.seed = ++seed;
          BOOST_TEST_CONTEXT(c.name() << " storage " << static_cast<int>(storage)) {
            linear_options opt;
            opt.storage = storage;
            const quantized_linear written(testing::random_params(c), opt);
            const image img = write_image(written);
            BOOST_TEST(img.size() % packed_image_alignment == 0);
            const quantized_linear adopted = adopt_packed_image(img.data(), img.size());
            BOOST_TEST((adopted.options().storage == storage));
            if (ab < 16) BOOST_TEST(inside(adopted.packed().data(), img));
            for (index_t m : {1, 3}) BOOST_TEST(adopted.rank(m) == written.rank(m));
            BOOST_TEST(adopted.lowrank_bytes() == written.lowrank_bytes());
            // The same parameters, and the same image when written again.
            const auto p1 = written.params(), p2 = adopted.params();
            BOOST_TEST(p1.qweight == p2.qweight);
            BOOST_TEST(p1.wscale == p2.wscale);
            BOOST_TEST(p1.bias == p2.bias);
            BOOST_TEST(p1.smooth == p2.smooth);
            BOOST_TEST(p1.modality_names == p2.modality_names);
            for (index_t m : {1, 3}) {
              BOOST_TEST((p1.lowrank[std::size_t(m)].L == p2.lowrank[std::size_t(m)].L));
              BOOST_TEST((p1.lowrank[std::size_t(m)].R == p2.lowrank[std::size_t(m)].R));
            }
            const image again = write_image(adopted);
            BOOST_TEST(again.size() == img.size());
            BOOST_TEST(std::memcmp(again.data(), img.data(), img.size()) == 0);
            // Bit for bit the same outputs, on one thread and on the pool.
            for (index_t tokens : {1, 37}) {
              const matrix<float> x = testing::random_input(tokens, c.d_in, seed);
              const auto ids = testing::random_ids(tokens, 4, seed + 1);
              matrix<float> y1(tokens, c.d_out), y2(tokens, c.d_out);
              forward_options fo;
              written.forward(x.cview(), ids, y1.view(), fo);
              fo.parallel = pool.as_function();
              adopted.forward(x.cview(), ids, y2.view(), fo);
              BOOST_TEST(std::memcmp(y1.data.data(), y2.data.data(), y1.data.size() * 4) == 0);
            }
          }
        }
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(the_owner_keeps_the_bytes_alive) {
  layer_case c;
  c.ranks = {0, 3};
  const quantized_linear written(testing::random_params(c));
  auto bytes = std::make_shared<image>(write_image(written));
  const quantized_linear adopted = adopt_packed_image(bytes->data(), bytes->size(), bytes);
  const std::weak_ptr<image> watch = bytes;
  bytes.reset();
  BOOST_TEST(!watch.expired());  // the layer holds it
  const matrix<float> x = testing::random_input(3, c.d_in, 2);
  const std::vector<modality_id> ids = {0, 1, 1};
  matrix<float> y1(3, c.d_out), y2(3, c.d_out);
  written.forward(x.cview(), ids, y1.view());
  {
    const quantized_linear copy = adopted;
    copy.forward(x.cview(), ids, y2.view());
  }
  BOOST_TEST(std::memcmp(y1.data.data(), y2.data.data(), y1.data.size() * 4) == 0);
}

BOOST_AUTO_TEST_CASE(damaged_images_are_refused_naming_what_is_wrong) {
  layer_case c;
  c.d_in = 40;
  c.d_out = 24;
  c.ranks = {0, 4};
  const quantized_linear written(testing::random_params(c));
  const image good = write_image(written);
  const auto adopt = [](const image& img, std::size_t size) {
    return [&img, size] { (void)adopt_packed_image(img.data(), size, nullptr, "q.mqlin"); };
  };
  const auto edited = [&good](auto edit) {
    image img = good;
    edit(img);
    return img;
  };

  expect_error(adopt(good, good.size() - 64), errc::format_error,
               "q.mqlin: packed image: the header gives");
  expect_error(adopt(good, 10), errc::format_error, "no \"MQLINEAR\" header");
  {
    image shifted(good.size() + 64);
    std::memcpy(shifted.data() + 1, good.data(), good.size());
    expect_error([&] { (void)adopt_packed_image(shifted.data() + 1, good.size()); },
                 errc::invalid_argument, "not 64-byte aligned");
  }
  const image v2 = edited([](image& img) {
    put<std::uint32_t>(img, 8, 2);
    reseal(img);
  });
  expect_error(adopt(v2, v2.size()), errc::not_supported, "layout version 2");
  const image flipped = edited([](image& img) { img.data()[40] ^= 1; });  // d_out, not resealed
  expect_error(adopt(flipped, flipped.size()), errc::format_error,
               "header checksum at byte 24 does not match");
  // Section table entries start at byte 72, 32 bytes each: kind, modality, rank, offset, bytes.
  const image past_end = edited([](image& img) {
    put<std::uint64_t>(img, 72 + 32 * 4 + 24, std::uint64_t{1} << 40);  // the weight's size
    reseal(img);
  });
  expect_error(adopt(past_end, past_end.size()), errc::format_error,
               "section 4 (weight, table entry at byte 200)");
  const image wrong_size = edited([](image& img) {
    put<std::int64_t>(img, 40, 25);  // d_out 25: every size disagrees
    reseal(img);
  });
  expect_error(adopt(wrong_size, wrong_size.size()), errc::format_error, "expected 100");
  const image bad_kind = edited([](image& img) {
    put<std::uint32_t>(img, 72 + 32 * 2, 99);
    reseal(img);
  });
  expect_error(adopt(bad_kind, bad_kind.size()), errc::format_error, "unknown kind 99");
  const image bad_rank = edited([](image& img) {
    put<std::uint64_t>(img, 72 + 32 * 7 + 8, 5);  // R's rank disagrees with L's
    reseal(img);
  });
  expect_error(adopt(bad_rank, bad_rank.size()), errc::format_error, "rank 5 but L has rank 4");
  const image bad_scale = edited([&](image& img) {
    const auto wscale_at = get<std::uint64_t>(img, 72 + 32 * 1 + 16);
    put<float>(img, static_cast<std::size_t>(wscale_at) + 4 * 3,
               std::numeric_limits<float>::quiet_NaN());
  });
  expect_error(adopt(bad_scale, bad_scale.size()), errc::non_finite, "wscale[3]");
  const image bad_smooth = edited([&](image& img) {
    const auto smooth_at = get<std::uint64_t>(img, 72 + 32 * 3 + 16);
    put<float>(img, static_cast<std::size_t>(smooth_at) + 4 * 45, 0.0f);
  });
  expect_error(adopt(bad_smooth, bad_smooth.size()), errc::invalid_argument, "smooth[1][5] = 0");
  image small(16);
  expect_error([&] { write_packed_image(written, small.data(), small.size()); },
               errc::shape_mismatch, "the image needs");
}

BOOST_AUTO_TEST_SUITE_END()

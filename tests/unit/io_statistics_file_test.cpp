// Tests of io/safetensors_stream_writer.hpp and io/statistics_file.hpp: the stream writer's file
// equals safetensors_writer's byte for byte whatever the write order, and nothing is left behind
// on failure; statistics sets round-trip exactly, shard files merge into what one pass gives,
// and every malformed statistics file is refused naming the tensor.
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <cstdint>
#include <limits>
#include <masquant/io/safetensors.hpp>
#include <masquant/io/safetensors_stream_writer.hpp>
#include <masquant/io/statistics_file.hpp>
#include <string>
#include <vector>

#include "support/io_testing.hpp"
#include "support/testing.hpp"

using namespace masquant;
using namespace masquant::testing;

namespace {

// A set of two inputs over three modalities; `seed` varies the tokens, `ids` route them.
statistics_set sample_set(std::uint64_t seed, index_t tokens = 40) {
  statistics_set set({"text", "vision", "audio"});
  const auto x = random_normal(tokens, 12, 1.5f, seed);
  std::vector<modality_id> ids(static_cast<std::size_t>(tokens));
  for (index_t i = 0; i < tokens; ++i)
    ids[std::size_t(i)] = static_cast<modality_id>((i * 7 + seed) % 3);
  set.record("model.layers.0.self_attn.q_proj", 12, gram_mode::non_reference)
      .add(x.cview(), vector_view<const modality_id>(ids));
  const auto y = random_normal(tokens / 2, 5, 3.0f, seed + 100);
  set.record("model.layers.0.mlp.down_proj", 5).add(y.cview(), modality_id{1});
  return set;
}

void expect_same(const channel_stats& a, const channel_stats& b, bool exact) {
  BOOST_TEST(a.count() == b.count());
  BOOST_TEST(a.has_gram() == b.has_gram());
  auto close = [&](const Eigen::MatrixXd& x, const Eigen::MatrixXd& y) {
    if (exact) return x == y;
    return ((x - y).array().abs() <= 1e-12 * (1.0 + y.array().abs())).all();
  };
  BOOST_TEST((a.min() == b.min()));
  BOOST_TEST((a.max() == b.max()));
  BOOST_TEST(close(a.mean(), b.mean()));
  BOOST_TEST(close(a.variance(), b.variance()));
  if (a.has_gram() && b.has_gram()) BOOST_TEST(close(a.gram(), b.gram()));
}

void expect_same(const statistics_set& a, const statistics_set& b, bool exact) {
  BOOST_TEST(a.modalities() == b.modalities(), boost::test_tools::per_element());
  BOOST_TEST_REQUIRE(a.size() == b.size());
  for (const auto& [input, s] : a.records()) {
    BOOST_TEST_CONTEXT("input " << input) {
      const modality_stats& t = b.at(input);
      BOOST_TEST_REQUIRE(s.modalities() == t.modalities());
      for (index_t m = 0; m < s.modalities(); ++m)
        expect_same(s[modality_id(m)], t[modality_id(m)], exact);
    }
  }
}

}  // namespace

BOOST_AUTO_TEST_SUITE(io_statistics_file)

BOOST_AUTO_TEST_CASE(stream_writer_equals_the_in_memory_writer_in_any_order) {
  const auto w = random_normal(7, 5, 1.0f, 3);
  const std::vector<float> s{1, 2, 3, 4, 5, 6, 7};
  const std::vector<std::int8_t> q{1, -2, 3};
  safetensors_writer ref;
  ref.add("layer.weight", w.cview(), dtype::bf16);
  ref.add("layer.scale", vector_view<const float>(s));
  ref.add("b.q", vector_view<const std::int8_t>(q));
  ref.set_metadata("format", "masquant");
  temp_dir dir;
  ref.write(dir.file("ref.safetensors"));
  for (int order = 0; order < 2; ++order) {
    const std::string path = dir.file("stream" + std::to_string(order) + ".safetensors");
    safetensors_stream_writer out(path,
                                  {{"b.q", dtype::i8, {3}},
                                   {"layer.weight", dtype::bf16, {7, 5}},
                                   {"layer.scale", dtype::f32, {7}}},
                                  {{"format", "masquant"}});
    if (order == 0) {
      out.write("layer.weight", w.cview());
      out.write("b.q", vector_view<const std::int8_t>(q));
      out.write("layer.scale", vector_view<const float>(s));
    } else {
      out.write("layer.scale", vector_view<const float>(s));
      out.write("b.q", vector_view<const std::int8_t>(q));
      out.write("layer.weight", w.cview());
    }
    out.commit();
    BOOST_TEST(read_bytes(path) == read_bytes(dir.file("ref.safetensors")),
               boost::test_tools::per_element());
    BOOST_TEST(safetensors_stream_writer::file_bytes(out.tensors(), {{"format", "masquant"}}) ==
               read_bytes(path).size());
  }
}

BOOST_AUTO_TEST_CASE(stream_writer_copies_tensors_from_another_file) {
  const auto w = random_normal(64, 33, 1.0f, 4);
  temp_dir dir;
  safetensors_writer src;
  src.add("a", w.cview(), dtype::bf16);
  src.add("b", w.cview());
  src.write(dir.file("src.safetensors"));
  const safetensors_file in(dir.file("src.safetensors"));
  safetensors_stream_writer out(dir.file("copy.safetensors"),
                                {{"a", dtype::bf16, {64, 33}}, {"b", dtype::f32, {64, 33}}});
  for (const char* name : {"a", "b"})
    out.copy_from(name, dir.file("src.safetensors"), in.info(name).file_offset);
  out.commit();
  BOOST_TEST(read_bytes(dir.file("copy.safetensors")) == read_bytes(dir.file("src.safetensors")),
             boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(stream_writer_refuses_misuse_and_leaves_nothing) {
  temp_dir dir;
  const std::string path = dir.file("out.safetensors");
  const std::vector<float> v{1, 2};
  check_error(
      [&] {
        safetensors_stream_writer out(path, {{"a", dtype::f32, {2}}, {"a", dtype::f32, {2}}});
      },
      errc::invalid_argument, {"'a'", "declared twice"});
  check_error(
      [&] {
        safetensors_stream_writer out(path, {{"", dtype::f32, {2}}});
      },
      errc::invalid_argument, {"empty tensor name"});
  {
    safetensors_stream_writer out(path, {{"a", dtype::f32, {2}}, {"b", dtype::f16, {2}}});
    check_error([&] { out.write("c", vector_view<const float>(v)); }, errc::out_of_range,
                {"'c'", "not declared"});
    check_error([&] { out.write_bytes("a", v.data(), 4); }, errc::shape_mismatch,
                {"'a'", "4 bytes", "needs 8"});
    const std::vector<float> huge{1e30f, 0};
    check_error([&] { out.write("b", vector_view<const float>(huge)); }, errc::overflow,
                {"'b'", "element 0", "F16"});
    out.write("a", vector_view<const float>(v));
    check_error([&] { out.write("a", vector_view<const float>(v)); }, errc::invalid_argument,
                {"'a'", "already written"});
    check_error([&] { out.commit(); }, errc::invalid_argument, {"'b'", "never written"});
  }
  BOOST_TEST(dir.entries().empty(), "left behind: " << dir.entries().size() << " entries");
}

BOOST_AUTO_TEST_CASE(statistics_round_trip_exactly) {
  const statistics_set set = sample_set(5);
  temp_dir dir;
  save_statistics(set, dir.file("s.safetensors"));
  const statistics_file f(dir.file("s.safetensors"));
  BOOST_TEST(f.modalities() == set.modalities(), boost::test_tools::per_element());
  BOOST_TEST(f.inputs().size() == 2u);
  BOOST_TEST(f.channels("model.layers.0.self_attn.q_proj") == 12);
  BOOST_TEST(
      f.gram_flags("model.layers.0.self_attn.q_proj") == std::vector<bool>({false, true, true}),
      boost::test_tools::per_element());
  expect_same(set, f.load_all(), true);
  // The empty modalities of the second input (text, audio) keep the empty state.
  const modality_stats down = f.load("model.layers.0.mlp.down_proj");
  BOOST_TEST(down[0].count() == 0);
  BOOST_TEST(down[0].absmax().isZero());
  check_error([&] { (void)f.load("nope"); }, errc::out_of_range, {"'nope'"});
}

BOOST_AUTO_TEST_CASE(shards_merge_into_one_pass) {
  // Tokens of one capture split over three processes; their files merge into the one-pass set.
  const auto x = random_normal(90, 12, 2.0f, 9);
  std::vector<modality_id> ids(90);
  for (std::size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<modality_id>((i / 7) % 3);
  statistics_set whole({"text", "vision", "audio"});
  whole.record("in", 12, gram_mode::all).add(x.cview(), vector_view<const modality_id>(ids));
  temp_dir dir;
  std::vector<std::string> files;
  for (index_t part = 0; part < 3; ++part) {
    statistics_set shard({"text", "vision", "audio"});
    shard.record("in", 12, gram_mode::all)
        .add(x.cview().middle_rows(part * 30, 30),
             vector_view<const modality_id>(ids.data() + part * 30, 30));
    if (part == 1) shard.record("only.in.one", 3).add(x.cview().block(0, 0, 4, 3), modality_id{2});
    files.push_back(dir.file("shard" + std::to_string(part) + ".safetensors"));
    save_statistics(shard, files.back());
  }
  merge_statistics_files(files, dir.file("merged.safetensors"));
  const statistics_set merged = statistics_file(dir.file("merged.safetensors")).load_all();
  BOOST_TEST(merged.size() == 2);
  statistics_set expected = whole;
  statistics_set extra({"text", "vision", "audio"});
  extra.record("only.in.one", 3).add(x.cview().block(0, 0, 4, 3), modality_id{2});
  expected.merge(extra);
  expect_same(expected, merged, false);
  // Counts, min and max are exact whatever the split.
  for (index_t m = 0; m < 3; ++m)
    BOOST_TEST(merged.at("in")[modality_id(m)].count() == whole.at("in")[modality_id(m)].count());
}

BOOST_AUTO_TEST_CASE(merging_refuses_shards_that_disagree) {
  temp_dir dir;
  statistics_set a({"text", "vision"}), b({"text", "audio"}), c({"text", "vision"}),
      d({"text", "vision"});
  a.record("in", 4).add(random_normal(3, 4).cview(), modality_id{0});
  b.record("in", 4).add(random_normal(3, 4).cview(), modality_id{0});
  c.record("in", 5).add(random_normal(3, 5).cview(), modality_id{0});
  d.record("in", 4, gram_mode::all).add(random_normal(3, 4).cview(), modality_id{0});
  for (auto [name, set] : {std::pair{"a", &a}, {"b", &b}, {"c", &c}, {"d", &d}})
    save_statistics(*set, dir.file(std::string(name) + ".safetensors"));
  const std::string out = dir.file("out.safetensors");
  check_error(
      [&] {
        merge_statistics_files({dir.file("a.safetensors"), dir.file("b.safetensors")}, out);
      },
      errc::invalid_argument, {"b.safetensors", "text,audio", "text,vision"});
  check_error(
      [&] {
        merge_statistics_files({dir.file("a.safetensors"), dir.file("c.safetensors")}, out);
      },
      errc::shape_mismatch, {"c.safetensors", "'in'", "5 channels"});
  check_error(
      [&] {
        merge_statistics_files({dir.file("a.safetensors"), dir.file("d.safetensors")}, out);
      },
      errc::invalid_argument, {"d.safetensors", "'in'", "Gram"});
  check_error([&] { a.merge(b); }, errc::invalid_argument, {"text,audio", "text,vision"});
  BOOST_TEST(!std::ifstream(out).good());
}

BOOST_AUTO_TEST_CASE(malformed_statistics_files_name_the_tensor) {
  temp_dir dir;
  const statistics_set set = sample_set(6);
  const std::string good = dir.file("good.safetensors");
  save_statistics(set, good);
  const safetensors_file src(good);
  // Rewrites the good file with one tensor changed (or dropped, or one added) and metadata edits.
  auto variant = [&](const std::string& name, auto edit) {
    safetensors_writer w;
    for (const auto& [k, v] : src.metadata()) w.set_metadata(k, v);
    for (const tensor_info& t : src.tensors()) {
      auto bytes = src.bytes(t.name);
      std::vector<std::uint8_t> copy(bytes.begin(), bytes.end());
      tensor_info info = t;
      if (!edit(info, copy)) continue;
      w.add_raw(info.name, info.type, info.shape, copy.data(), copy.size());
    }
    const std::string path = dir.file(name);
    w.write(path);
    return path;
  };
  const std::string q = "model.layers.0.self_attn.q_proj";
  auto set_double = [](std::vector<std::uint8_t>& b, std::size_t i, double v) {
    std::memcpy(b.data() + i * 8, &v, 8);
  };
  check_error(
      [&] {
        statistics_file f(variant("nan.safetensors", [&](tensor_info& t, auto& b) {
          if (t.name == q + ".vision.mean") set_double(b, 3, NAN);
          return true;
        }));
        (void)f.load(q);
      },
      errc::format_error, {"'" + q + ".vision.mean'", "element 3"});
  check_error(
      [&] {
        statistics_file f(variant("minmax.safetensors", [&](tensor_info& t, auto& b) {
          if (t.name == q + ".text.min") set_double(b, 0, 1e9);
          return true;
        }));
        (void)f.load(q);
      },
      errc::format_error, {"'" + q + ".text.min'", "element 0"});
  check_error(
      [&] {
        statistics_file f(variant("gram.safetensors", [&](tensor_info& t, auto& b) {
          if (t.name == q + ".audio.gram") set_double(b, 2, -1.0);  // diagonal (1, 1)
          return true;
        }));
        (void)f.load(q);
      },
      errc::format_error, {"'" + q + ".audio.gram'", "element 2", "entry 1, 1"});
  check_error(
      [&] {
        statistics_file f(variant("missing.safetensors", [&](tensor_info& t, auto&) {
          return t.name != q + ".audio.m2";
        }));
      },
      errc::format_error, {"'" + q + "'", "'" + q + ".audio.m2'"});
  check_error(
      [&] {
        statistics_file f(variant("dtype.safetensors", [&](tensor_info& t, auto& b) {
          if (t.name == q + ".text.max") {
            t.type = dtype::i64;
            (void)b;
          }
          return true;
        }));
      },
      errc::format_error, {"'" + q + ".text.max'", "I64", "expected F64"});
  check_error(
      [&] {
        statistics_file f(variant("stranger.safetensors", [&](tensor_info& t, auto&) {
          if (t.name == q + ".text.max") t.name = q + ".speech.max";
          return true;
        }));
      },
      errc::format_error, {"'" + q + ".speech.max'", "text,vision,audio"});
  check_error([&] { statistics_file f(dir.file("nope.safetensors")); }, errc::io_error,
              {"nope.safetensors"});
  safetensors_writer plain;
  plain.add("w", random_normal(2, 2).cview());
  plain.write(dir.file("plain.safetensors"));
  check_error([&] { statistics_file f(dir.file("plain.safetensors")); }, errc::format_error,
              {"plain.safetensors", "not a statistics file"});
}

BOOST_AUTO_TEST_SUITE_END()

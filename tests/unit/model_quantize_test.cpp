// Tests of model/quantize.hpp and model/quantized_checkpoint.hpp on small synthetic checkpoints:
// every quantized linear equals calibrate() run on that linear alone (from the same statistics,
// or from the same raw tokens); copied tensors are byte-identical; sharded outputs have an index;
// resumed and part + join runs write the bytes of one uninterrupted run; bad input is refused
// naming the file, tensor or pattern, with nothing written.
#include <boost/test/unit_test.hpp>
#include <cstring>
#include <filesystem>
#include <masquant/calibrate/calibrate.hpp>
#include <masquant/io/statistics_file.hpp>
#include <masquant/model/packed_checkpoint.hpp>
#include <masquant/model/presets.hpp>
#include <masquant/model/quantize.hpp>
#include <masquant/model/quantized_checkpoint.hpp>
#include <masquant/model/settings.hpp>
#include <string>
#include <vector>

#include "support/io_testing.hpp"
#include "support/layer_testing.hpp"
#include "support/model_testing.hpp"
#include "support/stats_testing.hpp"

using namespace masquant;
using namespace masquant::testing;
namespace fs = std::filesystem;

namespace {

const std::vector<std::string> modalities{"text", "vision", "audio"};

// The input key of each decoder linear under the llama preset's groups.
std::string key_of(const std::string& linear) {
  const auto dot = linear.rfind('.');
  const std::string parent = linear.substr(0, dot + 1), leaf = linear.substr(dot + 1);
  if (leaf == "k_proj" || leaf == "v_proj") return parent + "q_proj";
  if (leaf == "up_proj") return parent + "gate_proj";
  return linear;
}

// Writes the model, per-input tokens (as raw P.inputs.<m> for every linear, and as K.inputs.<m>
// samples per input), and the statistics of those tokens split over two files.
struct fixture {
  temp_dir dir;
  tiny_model model;
  std::string ckpt, stats_a, stats_b, samples, raw;
  index_t tokens = 24;

  explicit fixture(tiny_model m = {}) : model(std::move(m)) {
    ckpt = dir.file("model");
    fs::create_directories(ckpt);
    model.write(ckpt);
    statistics_set a(modalities), b(modalities);
    safetensors_writer sample_writer, raw_writer;
    std::set<std::string> keys;
    for (const auto& l : model.decoder_linears()) keys.insert(key_of(l.name));
    std::uint64_t seed = 100;
    for (const auto& l : model.decoder_linears()) {
      const std::string key = key_of(l.name);
      if (l.name != key) continue;
      const bool gram = l.name.find("down_proj") == std::string::npos;
      for (std::size_t m = 0; m < modalities.size(); ++m) {
        const auto x = tiny_model::activations(tokens, l.d_in, static_cast<modality_id>(m), ++seed);
        const index_t half = tokens / 2;
        a.record(key, l.d_in, gram ? gram_mode::non_reference : gram_mode::none)
            .add(x.cview().middle_rows(0, half), static_cast<modality_id>(m));
        b.record(key, l.d_in, gram ? gram_mode::non_reference : gram_mode::none)
            .add(x.cview().middle_rows(half, tokens - half), static_cast<modality_id>(m));
        sample_writer.add(key + ".inputs." + modalities[m], x.cview());
        for (const auto& other : model.decoder_linears())
          if (key_of(other.name) == key)
            raw_writer.add(other.name + ".inputs." + modalities[m], x.cview());
      }
    }
    stats_a = dir.file("stats-a.safetensors");
    stats_b = dir.file("stats-b.safetensors");
    samples = dir.file("samples.safetensors");
    raw = dir.file("raw.safetensors");
    save_statistics(a, stats_a);
    save_statistics(b, stats_b);
    sample_writer.write(samples);
    raw_writer.write(raw);
  }

  quantize_options options(const std::string& out) const {
    quantize_options o;
    o.model = ckpt;
    o.output = dir.file(out);
    o.recipe = recipe_preset("llama");
    o.recipe.defaults.learn_steps = 0;
    o.statistics = {stats_a, stats_b};
    return o;
  }
};

// Every file of a directory (recursively), by relative path, with its bytes.
std::map<std::string, bytes> files_of(const std::string& dir) {
  std::map<std::string, bytes> out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file())
      out[fs::relative(e.path(), dir).string()] = read_bytes(e.path().string());
  return out;
}

void expect_same_params(const quantized_linear_params& a, const quantized_linear_params& b) {
  BOOST_TEST(a.qweight == b.qweight, boost::test_tools::per_element());
  BOOST_TEST(a.wscale == b.wscale, boost::test_tools::per_element());
  BOOST_TEST(a.bias == b.bias, boost::test_tools::per_element());
  BOOST_TEST_REQUIRE(a.smooth.size() == b.smooth.size());
  for (std::size_t m = 0; m < a.smooth.size(); ++m) {
    BOOST_TEST(a.smooth[m] == b.smooth[m], boost::test_tools::per_element());
    BOOST_TEST(a.has_lowrank(index_t(m)) == b.has_lowrank(index_t(m)));
    if (a.has_lowrank(index_t(m)) && b.has_lowrank(index_t(m))) {
      BOOST_TEST((a.lowrank[m].L == b.lowrank[m].L));
      BOOST_TEST((a.lowrank[m].R == b.lowrank[m].R));
    }
  }
}

}  // namespace

BOOST_AUTO_TEST_SUITE(model_quantize)

BOOST_AUTO_TEST_CASE(every_linear_equals_calibrate_on_its_statistics) {
  fixture f;
  quantize_options o = f.options("out");
  o.tokens = {f.samples};
  const quantize_result r = quantize_checkpoint(o);
  BOOST_TEST(r.plan.linears == 14);
  BOOST_TEST(r.linears.size() == 14u);
  const quantized_checkpoint q(o.output);
  BOOST_TEST(q.modalities() == modalities, boost::test_tools::per_element());
  BOOST_TEST(q.linears().size() == 14u);
  // The statistics of both files merged, as calibrate() would see them.
  const statistics_set stats = [&] {
    statistics_set s = statistics_file(f.stats_a).load_all();
    s.merge(statistics_file(f.stats_b).load_all());
    return s;
  }();
  const hf_checkpoint src(f.ckpt);
  const safetensors_file samples(f.samples);
  for (const auto& l : f.model.decoder_linears()) {
    BOOST_TEST_CONTEXT(l.name) {
      const auto w = src.load_f32(l.name + ".weight");
      owned_tensor<float> b;
      if (src.has(l.name + ".bias")) b = src.load_f32(l.name + ".bias");
      std::vector<owned_tensor<float>> x;
      for (const auto& m : modalities)
        x.push_back(samples.load_f32(key_of(l.name) + ".inputs." + m));
      modality_inputs views;
      for (const auto& t : x) views.push_back(t.matrix());
      calibration_config c = calibration_config_of(o.recipe.settings_of(l.name));
      const calibration_problem problem(
          w.matrix(), b.size() ? b.vector() : vector_view<const float>(), modalities, views, c);
      const auto expected =
          calibrate(problem, calibration_statistics::view(stats.at(key_of(l.name))));
      expect_same_params(q.params(l.name), expected.params);
      // The deployable linear loads and runs.
      const quantized_linear lin = q.linear(l.name);
      BOOST_TEST(lin.d_in() == l.d_in);
    }
  }
  // down_proj: no smoothing, no compensation; the others compensated for both modalities.
  const auto down = q.params("model.layers.1.mlp.down_proj");
  for (const auto& s : down.smooth)
    BOOST_TEST(std::all_of(s.begin(), s.end(), [](float v) { return v == 1.0f; }));
  BOOST_TEST(!down.has_lowrank(1));
  BOOST_TEST(q.params("model.layers.1.self_attn.k_proj").has_lowrank(2));
  // Everything else is copied byte for byte; config.json carries the recipe.
  for (const auto& n : src.tensor_names()) {
    if (n.find("_proj.") != std::string::npos && n.find("layers.") != std::string::npos) continue;
    const auto a = src.file_of(n).bytes(n), b2 = q.files().file_of(n).bytes(n);
    BOOST_TEST(std::equal(a.begin(), a.end(), b2.begin(), b2.end()), n);
  }
  BOOST_TEST(q.recipe().preset == "llama");
  BOOST_TEST(q.files().config()["num_hidden_layers"] == f.model.blocks);
  // The report covers every stage on the samples.
  for (const auto& lr : r.linears) BOOST_TEST(lr.report.modalities.size() == 3u);
}

BOOST_AUTO_TEST_CASE(packed_directories_load_the_checkpoints_linears) {
  fixture f;
  quantize_options o = f.options("out");
  o.tokens = {f.samples};
  (void)quantize_checkpoint(o);
  const quantized_checkpoint q(o.output);
  const std::string packed = f.dir.file("packed/nested");
  thread_pool pool(2);
  std::vector<std::string> seen;
  save_packed_checkpoint(q, packed, {}, pool.as_function(),
                         [&](std::size_t done, std::size_t total, const std::string& name) {
                           BOOST_TEST(total == 14u);
                           BOOST_TEST(done == seen.size() + 1);
                           seen.push_back(name);
                         });
  BOOST_TEST(seen == q.linears(), boost::test_tools::per_element());
  const auto layers = load_packed_linears(packed, q.linears());
  BOOST_TEST(layers.size() == 14u);
  std::uint64_t seed = 300;
  for (const auto& [name, adopted] : layers) {
    BOOST_TEST_CONTEXT(name) {
      const quantized_linear fresh = q.linear(name);
      const matrix<float> x = random_input(9, fresh.d_in(), ++seed);
      const auto ids = random_ids(9, 3, ++seed);
      matrix<float> y1(9, fresh.d_out()), y2(9, fresh.d_out());
      fresh.forward(x.cview(), ids, y1.view());
      adopted.forward(x.cview(), ids, y2.view());
      BOOST_TEST(std::memcmp(y1.data.data(), y2.data.data(), y1.data.size() * 4) == 0);
      BOOST_TEST(adopted.modality_names() == fresh.modality_names(),
                 boost::test_tools::per_element());
    }
  }
  fs::remove(fs::path(packed) / packed_image_name(q.linears().front()));
  expect_error([&] { (void)load_packed_linears(packed, q.linears()); }, errc::io_error,
               packed_image_name(q.linears().front()) + ": cannot open");
}

BOOST_AUTO_TEST_CASE(raw_inputs_give_what_calibrate_gives_per_linear) {
  tiny_model m;
  m.shards = 2;
  m.weights = dtype::f32;
  fixture f(m);
  quantize_options o = f.options("out");
  o.statistics.clear();
  o.inputs = f.raw;
  o.recipe.defaults.learn_steps = 3;
  o.recipe.defaults.wbits = 4;
  o.shard_bytes = 30000;
  const quantize_result r = quantize_checkpoint(o);
  BOOST_TEST(r.plan.shards.size() > 1u);
  BOOST_TEST(fs::exists(o.output + "/model.safetensors.index.json"));
  const quantized_checkpoint q(o.output);
  // As `masquant calibrate` numbers them: the reference, then the others in name order.
  const std::vector<std::string> order{"text", "audio", "vision"};
  BOOST_TEST(q.modalities() == order, boost::test_tools::per_element());
  const hf_checkpoint src(f.ckpt);
  const safetensors_file raw(f.raw);
  for (const auto& l : f.model.decoder_linears()) {
    BOOST_TEST_CONTEXT(l.name) {
      const auto w = src.load_f32(l.name + ".weight");
      owned_tensor<float> b;
      if (src.has(l.name + ".bias")) b = src.load_f32(l.name + ".bias");
      std::vector<owned_tensor<float>> x;
      modality_inputs views;
      for (const auto& mod : order) x.push_back(raw.load_f32(l.name + ".inputs." + mod));
      for (const auto& t : x) views.push_back(t.matrix());
      const calibration_config c = calibration_config_of(o.recipe.settings_of(l.name));
      const auto expected = calibrate(
          w.matrix(), b.size() ? b.vector() : vector_view<const float>(), views, c, order);
      expect_same_params(q.params(l.name), expected.params);
    }
  }
}

BOOST_AUTO_TEST_CASE(tied_groups_share_the_smoothing_of_their_stacked_weight) {
  fixture f;
  quantize_options o = f.options("tied");
  o.recipe.tie_group_smoothing = true;
  quantize_checkpoint(o);
  const quantized_checkpoint q(o.output);
  const hf_checkpoint src(f.ckpt);
  const statistics_set stats = [&] {
    statistics_set s = statistics_file(f.stats_a).load_all();
    s.merge(statistics_file(f.stats_b).load_all());
    return s;
  }();
  for (const char* block : {"model.layers.0.", "model.layers.1."}) {
    const std::string p = block;
    const auto wq = src.load_f32(p + "self_attn.q_proj.weight"),
               wk = src.load_f32(p + "self_attn.k_proj.weight"),
               wv = src.load_f32(p + "self_attn.v_proj.weight");
    // SmoothQuant's factors (α = 0.5, no learning) with the weight term over q, k and v.
    const modality_stats& r = stats.at(p + "self_attn.q_proj");
    std::vector<std::vector<float>> absmax;
    for (index_t m = 0; m < 3; ++m) {
      const Eigen::VectorXd a = r[modality_id(m)].absmax();
      absmax.emplace_back(a.data(), a.data() + a.size());
    }
    const auto expected = smoothquant_modality_factors(
        absmax, weight_input_absmax({wq.matrix(), wk.matrix(), wv.matrix()}));
    for (const char* l : {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"}) {
      const auto params = q.params(p + l);
      for (std::size_t m = 0; m < 3; ++m)
        BOOST_TEST(params.smooth[m] == expected.per_modality[m], p + l << " modality " << m);
    }
  }
  // Untied (the preset's choice), k's factors follow k's own weight.
  quantize_options untied = f.options("untied");
  quantize_checkpoint(untied);
  const quantized_checkpoint u(untied.output);
  BOOST_TEST(u.params("model.layers.0.self_attn.q_proj").smooth[1] !=
             u.params("model.layers.0.self_attn.k_proj").smooth[1]);
}

BOOST_AUTO_TEST_CASE(resumed_and_joined_runs_write_the_bytes_of_one_run) {
  tiny_model m;
  m.blocks = 3;
  fixture f(m);
  quantize_options whole = f.options("whole");
  whole.shard_bytes = 40000;
  const quantize_result full = quantize_checkpoint(whole);
  BOOST_TEST_REQUIRE(full.plan.shards.size() >= 3u);
  const auto expected = files_of(whole.output);

  // Interrupted after the first shard, then resumed.
  quantize_options cut = f.options("resumed");
  cut.shard_bytes = whole.shard_bytes;
  index_t calls = 0;
  cut.progress = [&](const quantize_progress& p) {
    if (p.finished && p.linears_done == 4 && ++calls == 1) throw std::runtime_error("killed");
  };
  BOOST_CHECK_THROW(quantize_checkpoint(cut), std::runtime_error);
  BOOST_TEST(!fs::exists(cut.output + "/config.json"));
  check_error([&] { quantize_checkpoint(f.options("resumed")); }, errc::invalid_argument,
              {"resumed", "exists", "--resume"});
  cut.progress = {};
  cut.existing = existing_output::resume;
  const quantize_result resumed = quantize_checkpoint(cut);
  BOOST_TEST(resumed.shards_kept >= 1);
  BOOST_TEST(resumed.shards_written + resumed.shards_kept == index_t(full.plan.shards.size()));
  BOOST_TEST((files_of(cut.output) == expected));

  // Two parts on "two machines", then the join.
  quantize_options part = f.options("joined");
  part.shard_bytes = whole.shard_bytes;
  part.part.layers = std::make_pair(index_t{0}, index_t{1});
  quantize_checkpoint(part);
  part.part.layers = std::make_pair(index_t{2}, index_t{2});
  quantize_checkpoint(part);
  quantize_options join = f.options("joined");
  join.shard_bytes = whole.shard_bytes;
  join.join = true;
  quantize_checkpoint(join);
  BOOST_TEST(!fs::exists(join.output + "/parts"));
  BOOST_TEST((files_of(join.output) == expected));
}

BOOST_AUTO_TEST_CASE(bad_input_is_refused_and_nothing_is_written) {
  fixture f;
  auto refused = [&](quantize_options o, errc code, std::initializer_list<std::string> parts) {
    check_error([&] { quantize_checkpoint(o); }, code, parts);
    BOOST_TEST(!fs::exists(o.output), o.output << " was created");
  };
  quantize_options o = f.options("out1");
  o.recipe.overrides.push_back({"*.no_such_proj", {}});
  refused(o, errc::invalid_argument, {"override pattern '*.no_such_proj'"});
  o = f.options("out2");
  o.statistics = {f.stats_a, f.dir.file("missing.safetensors")};
  refused(o, errc::io_error, {"missing.safetensors"});
  // Statistics whose modalities differ between shards.
  statistics_set other({"text", "speech"});
  other.record("model.layers.0.self_attn.q_proj", f.model.hidden)
      .add(random_normal(3, f.model.hidden).cview(), modality_id{0});
  save_statistics(other, f.dir.file("other.safetensors"));
  o = f.options("out3");
  o.statistics = {f.stats_a, f.dir.file("other.safetensors")};
  refused(o, errc::invalid_argument, {"other.safetensors", "text,speech", "text,vision,audio"});
  // Statistics of another model: a width that does not match the weight.
  statistics_set wrong(modalities);
  for (const auto& l : f.model.decoder_linears())
    wrong.record(key_of(l.name), l.d_in + 1)
        .add(random_normal(3, l.d_in + 1).cview(), modality_id{0});
  save_statistics(wrong, f.dir.file("wrong.safetensors"));
  o = f.options("out4");
  o.statistics = {f.dir.file("wrong.safetensors")};
  refused(o, errc::invalid_argument, {"channels", "d_in"});
  // Statistics for a linear the model does not have is fine; one it needs but lacks is not.
  statistics_set partial(modalities);
  partial.record("model.layers.0.self_attn.q_proj", f.model.hidden)
      .add(random_normal(3, f.model.hidden).cview(), modality_id{0});
  save_statistics(partial, f.dir.file("partial.safetensors"));
  o = f.options("out5");
  o.statistics = {f.dir.file("partial.safetensors")};
  refused(o, errc::invalid_argument, {"no statistics for input 'model.layers.0.mlp.down_proj'"});
  // Compensation needs the Gram matrix of every non-reference modality with tokens.
  statistics_set no_gram(modalities);
  for (const auto& l : f.model.decoder_linears())
    no_gram.record(key_of(l.name), l.d_in).add(random_normal(3, l.d_in).cview(), modality_id{1});
  save_statistics(no_gram, f.dir.file("nogram.safetensors"));
  o = f.options("out6");
  o.statistics = {f.dir.file("nogram.safetensors")};
  refused(o, errc::invalid_argument, {"no Gram matrix of modality 'vision'"});
}

BOOST_AUTO_TEST_SUITE_END()

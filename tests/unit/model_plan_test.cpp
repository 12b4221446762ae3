// Tests of io/checkpoint.hpp, model/recipe.hpp, model/presets.hpp and model/plan.hpp: checkpoint
// directories (single file and sharded, refused when an index or a shard lies), recipe JSON in
// and out, presets on each naming, and the plan of a small Qwen2-style model.
#include <boost/test/unit_test.hpp>
#include <filesystem>
#include <fstream>
#include <masquant/io/checkpoint.hpp>
#include <masquant/model/plan.hpp>
#include <masquant/model/presets.hpp>
#include <masquant/model/recipe.hpp>
#include <string>
#include <vector>

#include "support/io_testing.hpp"
#include "support/model_testing.hpp"

using namespace masquant;
using namespace masquant::testing;

namespace {

// Statistics summary for every input key: `channels` and `tokens` tokens per modality.
auto all_inputs(const hf_checkpoint& ckpt, index_t modalities, std::int64_t tokens = 10) {
  return [&ckpt, modalities, tokens](const std::string& key) -> std::optional<input_summary> {
    input_summary s;
    s.channels = ckpt.info(key + ".weight").shape[1];
    s.tokens.assign(static_cast<std::size_t>(modalities), tokens);
    return s;
  };
}

std::vector<std::string> names_of(const std::vector<tensor_declaration>& d) {
  std::vector<std::string> out;
  for (const auto& t : d) out.push_back(t.name);
  return out;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(model_plan)

BOOST_AUTO_TEST_CASE(checkpoints_read_the_same_single_or_sharded) {
  temp_dir one, three;
  tiny_model m;
  m.write(one.path());
  m.shards = 3;
  m.write(three.path());
  const hf_checkpoint a(one.path()), b(three.path());
  BOOST_TEST(!a.sharded());
  BOOST_TEST(b.sharded());
  BOOST_TEST(b.shard_names().size() == 3u);
  BOOST_TEST(a.model_type() == "qwen2");
  BOOST_TEST(a.tensor_names() == b.tensor_names(), boost::test_tools::per_element());
  for (const auto& n : a.tensor_names()) {
    const auto x = a.load_f32(n), y = b.load_f32(n);
    BOOST_TEST(x.values() == y.values(), boost::test_tools::per_element());
    BOOST_TEST((x.shape() == y.shape()));
  }
  BOOST_TEST(a.info("model.layers.1.self_attn.k_proj.weight").shape[0] == m.kv_width());
  a.release("model.embed_tokens.weight");  // pages given back; still readable
  BOOST_TEST(a.load_f32("model.embed_tokens.weight").values() ==
             b.load_f32("model.embed_tokens.weight").values());
}

BOOST_AUTO_TEST_CASE(checkpoints_that_lie_are_refused_naming_the_file) {
  temp_dir dir;
  tiny_model m;
  m.shards = 2;
  m.write(dir.path());
  const std::string index = dir.file("model.safetensors.index.json");
  const auto original = read_bytes(index);
  auto edit_index = [&](const std::string& from, const std::string& to) {
    std::string text(original.begin(), original.end());
    const auto at = text.find(from);
    BOOST_TEST_REQUIRE(at != std::string::npos);
    text.replace(at, from.size(), to);
    std::ofstream(index, std::ios::trunc) << text;
  };
  edit_index("\"model.norm.weight\"", "\"model.absent.weight\"");
  check_error([&] { hf_checkpoint c(dir.path()); }, errc::format_error,
              {"model.safetensors.index.json", "'model.absent.weight'", "is not in"});
  edit_index("model-00002-of-00002", "model-00003-of-00002");
  check_error([&] { hf_checkpoint c(dir.path()); }, errc::io_error,
              {"model-00003-of-00002.safetensors", "missing shard"});
  write_bytes(index, original);
  std::filesystem::remove(dir.file("model-00001-of-00002.safetensors"));
  check_error([&] { hf_checkpoint c(dir.path()); }, errc::io_error,
              {"model-00001-of-00002.safetensors", "missing shard"});
  std::filesystem::remove(dir.file("config.json"));
  check_error([&] { hf_checkpoint c(dir.path()); }, errc::io_error, {"config.json"});
  temp_dir empty;
  std::ofstream(empty.file("config.json")) << "{}";
  check_error([&] { hf_checkpoint c(empty.path()); }, errc::io_error,
              {"no model.safetensors", "not a Hugging Face"});
}

BOOST_AUTO_TEST_CASE(recipes_round_trip_through_json) {
  quantization_recipe r = recipe_preset("qwen2_5_omni");
  r.defaults.wbits = 4;
  r.defaults.alpha = "auto";
  linear_settings o;
  o.rank = 64;
  o.learn_steps = 0;
  r.overrides.push_back({"re:.*\\.o_proj", o});
  const auto j = to_json(r);
  const quantization_recipe back = recipe_from_json(nlohmann::json::parse(j.dump()), "test");
  BOOST_TEST(to_json(back).dump() == j.dump());
  BOOST_TEST(*back.defaults.wbits == 4);
  BOOST_TEST(*back.overrides.back().settings.rank == 64.0);
  BOOST_TEST(!back.overrides.back().settings.wbits.has_value());
  // A partial recipe takes the defaults; unknown keys and bad values are refused by name.
  const auto partial = recipe_from_json(nlohmann::json::parse(R"({"targets": ["*.q_proj"]})"), "p");
  BOOST_TEST(*partial.defaults.learn_steps == 50);
  check_error(
      [] {
        recipe_from_json(nlohmann::json::parse(R"({"targets": ["a"], "tagrets": []})"), "r.json");
      },
      errc::format_error, {"r.json", "unknown key \"tagrets\""});
  check_error(
      [] {
        recipe_from_json(nlohmann::json::parse(R"({"targets": ["a"], "defaults": {"wbits": 9}})"),
                         "r.json");
      },
      errc::invalid_argument, {"r.json", "weight_bits", "got 9"});
  check_error(
      [] {
        recipe_from_json(
            nlohmann::json::parse(
                R"({"targets": ["a"], "overrides": [{"match": "b", "alpha": "high"}]})"),
            "r.json");
      },
      errc::invalid_argument, {"r.json", "override 0", "\"alpha\" is high"});
  check_error([] { recipe_from_json(nlohmann::json::parse(R"({"targets": ["re:("]})"), "r.json"); },
              errc::invalid_argument, {"pattern 're:('"});
  check_error([] { recipe_preset("gpt2"); }, errc::invalid_argument, {"'gpt2'", "llama"});
  // Modality names follow the tensor-name grammar: a word of it would make names parse two ways.
  check_error(
      [] {
        recipe_from_json(
            nlohmann::json::parse(R"({"targets": ["a"], "modalities": ["text", "weight"]})"),
            "r.json");
      },
      errc::invalid_argument, {"r.json", "modality 'weight'"});
  check_error(
      [] {
        recipe_from_json(nlohmann::json::parse(R"({"targets": ["a"], "reference": "smooth"})"),
                         "r.json");
      },
      errc::invalid_argument, {"r.json", "\"reference\" 'smooth'"});
}

BOOST_AUTO_TEST_CASE(name_patterns) {
  BOOST_TEST(name_pattern("lm_head").matches("lm_head"));
  BOOST_TEST(!name_pattern("lm_head").matches("model.lm_head"));
  BOOST_TEST(name_pattern("*.down_proj").matches("model.layers.3.mlp.down_proj"));
  BOOST_TEST(!name_pattern("*.down_proj").matches("model.layers.3.mlp.down_proj_x"));
  BOOST_TEST(name_pattern("re:.*layers\\.[0-9]+\\..*").matches("a.layers.12.b"));
  BOOST_TEST(!name_pattern("a.b").matches("aXb"));  // '.' is literal outside re:
}

BOOST_AUTO_TEST_CASE(presets_select_the_decoder_of_each_naming) {
  struct naming {
    std::string preset, prefix;
  };
  for (const auto& n : {naming{"llama", "model.layers."}, naming{"qwen2_5_vl", "model.layers."},
                        naming{"qwen2_5_vl", "model.language_model.layers."},
                        naming{"qwen2_5_omni", "thinker.model.layers."}}) {
    const auto r = recipe_preset(n.preset);
    std::vector<name_pattern> t, ig;
    for (const auto& p : r.targets) t.emplace_back(p);
    for (const auto& p : r.ignore) ig.emplace_back(p);
    auto quantized = [&](const std::string& name) {
      bool hit = false, skip = false;
      for (const auto& p : t) hit = hit || p.matches(name);
      for (const auto& p : ig) skip = skip || p.matches(name);
      return hit && !skip;
    };
    BOOST_TEST_CONTEXT(n.preset << " on " << n.prefix) {
      for (const char* l : {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                            "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"})
        BOOST_TEST(quantized(n.prefix + "11." + l), l);
      BOOST_TEST(!quantized("lm_head"));
      BOOST_TEST(!quantized("visual.blocks.0.mlp.gate_proj"));
      BOOST_TEST(!quantized("thinker.visual.blocks.0.mlp.gate_proj"));
      BOOST_TEST(!quantized("thinker.audio_tower.layers.0.fc1"));
      if (n.preset == "qwen2_5_omni")
        BOOST_TEST(!quantized("talker.model.layers.0.self_attn.q_proj"));
    }
  }
  BOOST_TEST(preset_for_model_type("qwen2") == "llama");
  BOOST_TEST(preset_for_model_type("qwen2_5_vl") == "qwen2_5_vl");
  BOOST_TEST(preset_for_model_type("qwen2_5_omni") == "qwen2_5_omni");
  BOOST_TEST(preset_for_model_type("bert") == "");
}

BOOST_AUTO_TEST_CASE(plan_of_a_qwen2_model) {
  temp_dir dir;
  tiny_model m;
  m.blocks = 3;
  m.write(dir.path());
  const hf_checkpoint ckpt(dir.path());
  const auto recipe = recipe_preset("llama");
  const auto plan = make_plan(ckpt, recipe, {"text", "vision", "audio"}, all_inputs(ckpt, 3),
                              std::uint64_t{1} << 40);
  BOOST_TEST(plan.linears == 21);
  BOOST_TEST(plan.shards.size() == 1u);
  BOOST_TEST(plan.shards[0].file == "model.safetensors");
  // Per block: q/k/v one group keyed by q_proj, o alone, gate/up keyed by gate_proj, down alone.
  std::vector<std::string> keys;
  for (const auto& u : plan.units)
    if (u.group) keys.push_back(u.group->input);
  const std::vector<std::string> expected_first{
      "model.layers.0.mlp.down_proj", "model.layers.0.mlp.gate_proj",
      "model.layers.0.self_attn.o_proj", "model.layers.0.self_attn.q_proj"};
  BOOST_TEST_REQUIRE(keys.size() == 12u);
  BOOST_TEST(std::vector<std::string>(keys.begin(), keys.begin() + 4) == expected_first,
             boost::test_tools::per_element());
  BOOST_TEST(keys.back() == "model.layers.2.self_attn.q_proj");
  const plan_unit* qkv = plan.unit_of_linear("model.layers.1.self_attn.k_proj");
  BOOST_TEST_REQUIRE(qkv != nullptr);
  BOOST_TEST(qkv->group->linears.size() == 3u);
  BOOST_TEST(qkv->group->linears[1].name == "model.layers.1.self_attn.k_proj");
  // k: [kv_width, hidden], rank max(32, 0.05 * kv_width) clamped to min(d_in, d_out) = kv_width.
  const auto& k = qkv->group->linears[1];
  BOOST_TEST(k.d_out == m.kv_width());
  BOOST_TEST(k.ranks[0] == 0);
  BOOST_TEST(k.ranks[1] == m.kv_width());
  const auto outs = names_of(linear_outputs(k, plan.modalities));
  const std::vector<std::string> want{"model.layers.1.self_attn.k_proj.qweight",
                                      "model.layers.1.self_attn.k_proj.wscale",
                                      "model.layers.1.self_attn.k_proj.bias",
                                      "model.layers.1.self_attn.k_proj.smooth.text",
                                      "model.layers.1.self_attn.k_proj.smooth.vision",
                                      "model.layers.1.self_attn.k_proj.lowrank.vision.L",
                                      "model.layers.1.self_attn.k_proj.lowrank.vision.R",
                                      "model.layers.1.self_attn.k_proj.smooth.audio",
                                      "model.layers.1.self_attn.k_proj.lowrank.audio.L",
                                      "model.layers.1.self_attn.k_proj.lowrank.audio.R"};
  BOOST_TEST(outs == want, boost::test_tools::per_element());
  // down_proj: rtn, no compensation, smoothing tensors for every modality still.
  const auto* down = plan.unit_of_linear("model.layers.0.mlp.down_proj");
  BOOST_TEST(*down->group->linears[0].settings.method == "rtn");
  BOOST_TEST(down->group->linears[0].ranks == std::vector<index_t>({0, 0, 0}),
             boost::test_tools::per_element());
  // Copied tensors keep their dtype and shape; weights of quantized linears are not copied.
  bool embed = false;
  for (const auto& u : plan.units) {
    if (u.copied == "model.embed_tokens.weight") {
      embed = true;
      BOOST_TEST((u.outputs[0].type == dtype::bf16));
    }
    BOOST_TEST(u.copied != "model.layers.0.self_attn.q_proj.weight");
    BOOST_TEST(u.copied != "model.layers.0.self_attn.q_proj.bias");
  }
  BOOST_TEST(embed);
  // Blocks in numeric order, shards cut between units within the cap.
  const auto small =
      make_plan(ckpt, recipe, {"text", "vision", "audio"}, all_inputs(ckpt, 3), 20000);
  BOOST_TEST(small.shards.size() > 2u);
  char first[64];
  std::snprintf(first, sizeof first, "model-00001-of-%05zu.safetensors", small.shards.size());
  BOOST_TEST(small.shards[0].file == first);
  std::uint64_t total = 0;
  for (const auto& s : small.shards) {
    std::uint64_t bytes = 0;
    for (auto u : s.units) bytes += small.units[u].bytes;
    BOOST_TEST((bytes <= 20000 || s.units.size() == 1));
    total += bytes;
  }
  BOOST_TEST(total == plan.total_bytes);
  // A modality without tokens gets no compensation anywhere.
  const auto no_audio = make_plan(
      ckpt, recipe, {"text", "vision", "audio"},
      [&](const std::string& key) -> std::optional<input_summary> {
        return input_summary{ckpt.info(key + ".weight").shape[1], {5, 5, 0}, {}};
      },
      std::uint64_t{1} << 40);
  BOOST_TEST(
      no_audio.unit_of_linear("model.layers.0.self_attn.q_proj")->group->linears[0].ranks[2] == 0);
}

BOOST_AUTO_TEST_CASE(plans_refuse_what_does_not_fit) {
  temp_dir dir;
  tiny_model m;
  m.write(dir.path());
  const hf_checkpoint ckpt(dir.path());
  const std::vector<std::string> mods{"text", "vision"};
  auto recipe = recipe_preset("llama");
  recipe.targets.push_back("*.nothing_proj");
  check_error([&] { make_plan(ckpt, recipe, mods, all_inputs(ckpt, 2), 1u << 30); },
              errc::invalid_argument, {"target pattern '*.nothing_proj'", "matches no linear"});
  recipe = recipe_preset("qwen2_5_vl");  // visual.* ignored, but this model has no vision tower
  check_error([&] { make_plan(ckpt, recipe, mods, all_inputs(ckpt, 2), 1u << 30); },
              errc::invalid_argument, {"ignore pattern", "matches no module"});
  recipe = recipe_preset("llama");
  recipe.overrides.push_back({"*.c_attn", {}});
  check_error([&] { make_plan(ckpt, recipe, mods, all_inputs(ckpt, 2), 1u << 30); },
              errc::invalid_argument, {"override pattern '*.c_attn'"});
  recipe = recipe_preset("llama");
  check_error(
      [&] {
        make_plan(
            ckpt, recipe, mods,
            [&](const std::string& key) -> std::optional<input_summary> {
              if (key == "model.layers.1.mlp.gate_proj") return std::nullopt;
              return all_inputs(ckpt, 2)(key);
            },
            1u << 30);
      },
      errc::invalid_argument, {"no statistics for input 'model.layers.1.mlp.gate_proj'"});
  check_error(
      [&] {
        make_plan(
            ckpt, recipe, mods,
            [&](const std::string&) -> std::optional<input_summary> {
              return input_summary{7, {1, 1}, {}};
            },
            1u << 30);
      },
      errc::invalid_argument, {"7 channels", "d_in = "});
  recipe = recipe_preset("qwen2_5_vl");
  recipe.ignore.clear();
  check_error(
      [&] {
        make_plan(ckpt, recipe, {"text", "vision", "audio"}, all_inputs(ckpt, 3), 1u << 30);
      },
      errc::invalid_argument, {"recipe's modalities (text,vision)", "(text,vision,audio)"});
  recipe = recipe_preset("llama");
  recipe.tie_group_smoothing = true;
  linear_settings k4;
  k4.wbits = 4;
  recipe.overrides.push_back({"*.k_proj", k4});
  check_error([&] { make_plan(ckpt, recipe, mods, all_inputs(ckpt, 2), 1u << 30); },
              errc::invalid_argument, {"tied group", "k_proj", "q_proj"});
}

BOOST_AUTO_TEST_SUITE_END()

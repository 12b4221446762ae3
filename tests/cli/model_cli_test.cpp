// End-to-end tests of `masquant quantize` and `masquant stats`: a synthetic checkpoint and
// statistics written here, the real binary run on them, its output compared byte for byte with
// quantize_checkpoint() run in-process, its failures against the CLI contract.
// Usage: model_cli_test -- path/to/masquant
#include <sys/wait.h>

#include <boost/test/unit_test.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <masquant/io/statistics_file.hpp>
#include <masquant/model/presets.hpp>
#include <masquant/model/quantize.hpp>
#include <masquant/model/quantized_checkpoint.hpp>
#include <sstream>
#include <string>

#include "support/io_testing.hpp"
#include "support/model_testing.hpp"

using namespace masquant;
using namespace masquant::testing;
namespace fs = std::filesystem;

namespace {

std::string tool() {
  const auto& suite = boost::unit_test::framework::master_test_suite();
  BOOST_TEST_REQUIRE(suite.argc >= 2, "usage: model_cli_test -- path/to/masquant");
  return suite.argv[suite.argc - 1];
}

struct run_result {
  int code;
  std::string out, err;
};

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// A model, two statistics shards and a token sample in a scratch directory.
struct model_dir {
  temp_dir dir;
  tiny_model model;
  std::string ckpt = dir.file("model");

  model_dir() {
    fs::create_directories(ckpt);
    model.write(ckpt);
    const std::vector<std::string> names{"text", "vision"};
    statistics_set shards[2] = {statistics_set(names), statistics_set(names)};
    safetensors_writer sample;
    std::uint64_t seed = 50;
    for (const auto& l : model.decoder_linears()) {
      const std::string leaf = l.name.substr(l.name.rfind('.') + 1);
      if (leaf == "k_proj" || leaf == "v_proj" || leaf == "up_proj") continue;
      const bool gram = leaf != "down_proj";
      for (modality_id m = 0; m < 2; ++m) {
        const auto x = tiny_model::activations(20, l.d_in, m, ++seed);
        for (int k = 0; k < 2; ++k)
          shards[k]
              .record(l.name, l.d_in, gram ? gram_mode::non_reference : gram_mode::none)
              .add(x.cview().middle_rows(k * 10, 10), m);
        sample.add(l.name + ".inputs." + names[m], x.cview());
      }
    }
    save_statistics(shards[0], dir.file("s0.safetensors"));
    save_statistics(shards[1], dir.file("s1.safetensors"));
    sample.write(dir.file("sample.safetensors"));
  }

  run_result run(const std::string& args) const {
    const std::string cmd = "'" + tool() + "' " + args + " > '" + dir.file("stdout") + "' 2> '" +
                            dir.file("stderr") + "'";
    const int status = std::system(cmd.c_str());
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, slurp(dir.file("stdout")),
            slurp(dir.file("stderr"))};
  }

  std::string stats() const {
    return dir.file("s0.safetensors") + " " + dir.file("s1.safetensors");
  }
};

std::map<std::string, std::string> files_of(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) out[fs::relative(e.path(), dir).string()] = slurp(e.path().string());
  return out;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(model_cli)

BOOST_AUTO_TEST_CASE(quantize_writes_what_the_library_writes) {
  model_dir d;
  const std::string out = d.dir.file("out");
  const auto r = d.run("quantize " + d.ckpt + " -o " + out + " --stats " + d.stats() +
                       " --tokens " + d.dir.file("sample.safetensors") +
                       " --learn-steps 2 --wbits 4 --shard-size 40KB --threads 2 --report " +
                       d.dir.file("report.json"));
  BOOST_TEST_REQUIRE(r.code == 0, r.err);
  // One progress line per linear with an ETA, then a report table per linear.
  BOOST_TEST(r.out.find("[14/14]") != std::string::npos, r.out);
  BOOST_TEST(r.out.find("ETA") != std::string::npos);
  BOOST_TEST(r.out.find("model.layers.1.mlp.down_proj") != std::string::npos);
  const auto report = nlohmann::json::parse(slurp(d.dir.file("report.json")));
  BOOST_TEST(report["layers"].size() == 14u);
  BOOST_TEST(report["layers"].contains("model.layers.0.self_attn.v_proj"));

  quantize_options o;
  o.model = d.ckpt;
  o.output = d.dir.file("library");
  o.statistics = {d.dir.file("s0.safetensors"), d.dir.file("s1.safetensors")};
  o.tokens = {d.dir.file("sample.safetensors")};
  o.recipe = recipe_preset("llama");  // qwen2's preset, as the tool chooses from config.json
  o.recipe.defaults.learn_steps = 2;
  o.recipe.defaults.wbits = 4;
  o.shard_bytes = 40000;
  quantize_checkpoint(o);
  BOOST_TEST((files_of(out) == files_of(o.output)));
  BOOST_TEST(fs::exists(out + "/model.safetensors.index.json"));
  const quantized_checkpoint q(out);
  BOOST_TEST(*q.recipe().defaults.wbits == 4);
  BOOST_TEST(q.modalities() == std::vector<std::string>({"text", "vision"}),
             boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(parts_join_and_resume) {
  model_dir d;
  const std::string common = " --stats " + d.stats() + " --learn-steps 0 --shard-size 30KB";
  BOOST_TEST_REQUIRE(d.run("quantize " + d.ckpt + " -o " + d.dir.file("whole") + common).code == 0);
  // An existing output is refused (exit 1) and left alone; --resume keeps what is there.
  auto r = d.run("quantize " + d.ckpt + " -o " + d.dir.file("whole") + common);
  BOOST_TEST(r.code == 1);
  BOOST_TEST(r.err.find("--resume") != std::string::npos, r.err);
  r = d.run("quantize " + d.ckpt + " -o " + d.dir.file("whole") + common + " --resume");
  BOOST_TEST(r.code == 0, r.err);
  BOOST_TEST(r.out.find("0 shards written") != std::string::npos, r.out);
  // Two parts and a join.
  const std::string parts = d.dir.file("parts");
  BOOST_TEST(d.run("quantize " + d.ckpt + " -o " + parts + common + " --layers 0:0").code == 0);
  r = d.run("quantize " + d.ckpt + " -o " + parts + common + " --join");
  BOOST_TEST(r.code == 1, "a join with a part missing must fail");
  BOOST_TEST(r.err.find("no part holds 'model.layers.1.") != std::string::npos, r.err);
  BOOST_TEST(
      d.run("quantize " + d.ckpt + " -o " + parts + common + " --only '*.layers.1.*'").code == 0);
  BOOST_TEST(d.run("quantize " + d.ckpt + " -o " + parts + common + " --join").code == 0);
  BOOST_TEST((files_of(parts) == files_of(d.dir.file("whole"))));
}

BOOST_AUTO_TEST_CASE(stats_merge_and_inspect) {
  model_dir d;
  const std::string merged = d.dir.file("merged.safetensors");
  auto r = d.run("stats merge " + d.stats() + " -o " + merged);
  BOOST_TEST_REQUIRE(r.code == 0, r.err);
  BOOST_TEST(r.out.find("8 inputs") != std::string::npos, r.out);
  const statistics_file f(merged);
  BOOST_TEST(f.tokens("model.layers.0.mlp.gate_proj") == std::vector<std::int64_t>({20, 20}),
             boost::test_tools::per_element());
  r = d.run("stats inspect " + merged);
  BOOST_TEST_REQUIRE(r.code == 0, r.err);
  BOOST_TEST(r.out.find("model.layers.1.self_attn.q_proj") != std::string::npos, r.out);
  BOOST_TEST(r.out.find("text,vision") != std::string::npos, r.out);
  // The merged statistics quantize like the two shards.
  BOOST_TEST(d.run("quantize " + d.ckpt + " -o " + d.dir.file("a") + " --stats " + merged +
                   " --learn-steps 0")
                 .code == 0);
  BOOST_TEST(d.run("quantize " + d.ckpt + " -o " + d.dir.file("b") + " --stats " + d.stats() +
                   " --learn-steps 0")
                 .code == 0);
  const quantized_checkpoint a(d.dir.file("a")), b(d.dir.file("b"));
  for (const auto& name : a.linears()) {
    const auto pa = a.params(name), pb = b.params(name);
    BOOST_TEST(pa.qweight == pb.qweight, name);
  }
}

BOOST_AUTO_TEST_CASE(bad_command_lines_and_inputs) {
  model_dir d;
  const std::string out = d.dir.file("out");
  auto usage = [&](const std::string& args, const std::string& words) {
    const auto r = d.run(args);
    BOOST_TEST(r.code == 2, args << " -> " << r.code << ": " << r.err);
    BOOST_TEST(r.err.find(words) != std::string::npos, args << ": " << r.err);
    BOOST_TEST(!fs::exists(out), args << " created the output");
  };
  usage("quantize " + d.ckpt + " -o " + out, "--stats");
  usage("quantize " + d.ckpt + " -o " + out + " --stats a --inputs b", "exclude");
  usage("quantize " + d.ckpt + " -o " + out + " --stats a --resume --force", "exclude");
  usage("quantize " + d.ckpt + " -o " + out + " --stats a --layers 3:1", "--layers");
  usage("quantize " + d.ckpt + " -o " + out + " --stats a --wbits 9", "--wbits");
  usage("quantize " + d.ckpt + " -o " + out + " --stats a --shard-size 4XB", "--shard-size");
  usage("quantize " + d.ckpt + " -o " + out + " --stats a --preset gpt2", "gpt2");
  usage("quantize " + d.ckpt + " -o " + out + " --stats a --join --layers 0:1", "--join");
  usage("stats merge " + d.stats(), "-o");
  usage("stats frobnicate", "frobnicate");
  // An output that is an input, by any spelling, is refused before anything is read.
  fs::create_symlink(d.dir.file("s0.safetensors"), d.dir.file("link.safetensors"));
  usage("stats merge " + d.stats() + " -o " + d.dir.file("link.safetensors"), "same file");
  usage("quantize " + d.ckpt + " -o " + out + " --stats " + d.stats() + " --report " +
            d.dir.file("link.safetensors"),
        "same file");
  // Bad inputs: one line naming the file, exit 1, nothing written.
  auto failure = [&](const std::string& args, const std::string& words) {
    const auto r = d.run(args);
    BOOST_TEST(r.code == 1, args << " -> " << r.code << ": " << r.err);
    BOOST_TEST(r.err.find(words) != std::string::npos, args << ": " << r.err);
    BOOST_TEST(std::count(r.err.begin(), r.err.end(), '\n') == 1, r.err);
    BOOST_TEST(!fs::exists(out), args << " created the output");
  };
  failure("quantize " + d.ckpt + " -o " + out + " --stats " + d.dir.file("missing.safetensors"),
          "missing.safetensors");
  failure("quantize " + d.ckpt + " -o " + out + " --stats " + d.stats() + " --preset qwen2_5_vl",
          "ignore pattern");
  failure("quantize " + d.dir.file("nowhere") + " -o " + out + " --stats " + d.stats() +
              " --preset llama",
          "config.json");
  failure("quantize " + d.ckpt + " -o " + out + " --stats " + d.dir.file("sample.safetensors"),
          "not a statistics file");
}

BOOST_AUTO_TEST_SUITE_END()

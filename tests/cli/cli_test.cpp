// End-to-end tests of the masquant tool: files written here, the real binary run on them, its
// outputs checked against the library in-process and its failures against the CLI contract
// (one line on stderr, exit code 1 or 2, no output file). Usage: cli_test -- path/to/masquant
#include <sys/wait.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <masquant/calibrate/calibrate.hpp>
#include <masquant/io/linear_file.hpp>
#include <masquant/io/safetensors.hpp>
#include <masquant/layer/quantized_linear.hpp>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "support/testing.hpp"

using namespace masquant;
using masquant::testing::matrix;

namespace {

std::string tool() {
  const auto& suite = boost::unit_test::framework::master_test_suite();
  BOOST_TEST_REQUIRE(suite.argc >= 2, "usage: cli_test -- path/to/masquant");
  return suite.argv[suite.argc - 1];
}

/// A scratch directory removed at the end of the test.
struct scratch {
  std::string dir;
  scratch() {
    char tmpl[] = "/tmp/masquant-cli-XXXXXX";
    dir = mkdtemp(tmpl);
  }
  ~scratch() { std::system(("rm -rf '" + dir + "'").c_str()); }
  std::string operator/(const std::string& name) const { return dir + "/" + name; }
};

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

bool exists(const std::string& path) {
  return access(path.c_str(), F_OK) == 0;
}

run_result run(const scratch& s, const std::string& args) {
  const std::string cmd =
      "'" + tool() + "' " + args + " > '" + (s / "stdout") + "' 2> '" + (s / "stderr") + "'";
  const int status = std::system(cmd.c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, slurp(s / "stdout"), slurp(s / "stderr")};
}

/// Expects a failure with `code`, one line on stderr containing `words`, and no `output` file.
void expect_failure(const scratch& s, const std::string& args, int code, const std::string& words,
                    const std::string& output) {
  const auto r = run(s, args);
  BOOST_TEST(r.code == code, args << " -> " << r.code << ": " << r.err);
  BOOST_TEST(r.err.find(words) != std::string::npos, args << " stderr: " << r.err);
  BOOST_TEST(std::count(r.err.begin(), r.err.end(), '\n') == 1, "not one line: " << r.err);
  if (!output.empty()) BOOST_TEST(!exists(output), args << " left " << output);
}

/// A two-layer calibration file: layer 0 with bias, F16 text, BF16 vision, F32 audio inputs;
/// layer 1 without bias, text and vision only.
struct layer_file {
  matrix<float> w0 = testing::random_normal(24, 32, 0.2f, 11),
                w1 = testing::random_normal(16, 32, 0.2f, 12);
  matrix<float> text = testing::random_normal(40, 32, 1.0f, 13);
  matrix<float> vision = testing::random_normal(40, 32, 3.0f, 14);
  matrix<float> audio = testing::random_normal(20, 32, 1.5f, 15);
  std::vector<float> b0 = std::vector<float>(24, 0.25f);

  layer_file() {
    for (index_t t = 0; t < text.rows; ++t) text(t, 2) = 30.0f;
    for (index_t t = 0; t < vision.rows; ++t) vision(t, 9) *= 20.0f;
  }
  void write(const std::string& path) const {
    safetensors_writer out;
    out.add("model.layers.0.mlp.up_proj.weight", w0.cview());
    out.add("model.layers.0.mlp.up_proj.bias", vector_view<const float>(b0));
    out.add("model.layers.0.mlp.up_proj.inputs.text", text.cview(), dtype::f16);
    out.add("model.layers.0.mlp.up_proj.inputs.vision", vision.cview(), dtype::bf16);
    out.add("model.layers.0.mlp.up_proj.inputs.audio", audio.cview());
    out.add("model.layers.1.self_attn.q_proj.weight", w1.cview(), dtype::bf16);
    out.add("model.layers.1.self_attn.q_proj.inputs.text", text.cview());
    out.add("model.layers.1.self_attn.q_proj.inputs.vision", vision.cview());
    out.write(path);
  }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(cli)

BOOST_AUTO_TEST_CASE(calibrate_forward_inspect_round_trip) {
  scratch s;
  layer_file lf;
  lf.write(s / "in.safetensors");
  auto r = run(s, "calibrate " + (s / "in.safetensors") + " -o " + (s / "out.safetensors") +
                      " --wbits 4 --learn-steps 3 --threads 2 --report " + (s / "report.json"));
  BOOST_TEST_REQUIRE(r.code == 0, r.err);
  BOOST_TEST(r.out.find("shared_no_cmc") != std::string::npos);

  // The output follows the file contract.
  const safetensors_file out(s / "out.safetensors");
  const std::string p0 = "model.layers.0.mlp.up_proj", p1 = "model.layers.1.self_attn.q_proj";
  BOOST_TEST(out.info(p0 + ".qweight").type == dtype::i8);
  BOOST_TEST((out.info(p0 + ".qweight").shape == tensor_shape{24, 32}));
  BOOST_TEST((out.info(p0 + ".wscale").shape == tensor_shape{24}));
  for (const char* m : {"text", "vision", "audio"})
    BOOST_TEST((out.info(p0 + ".smooth." + m).shape == tensor_shape{32}));
  BOOST_TEST(out.has(p0 + ".bias"));
  BOOST_TEST(!out.has(p1 + ".bias"));
  BOOST_TEST(out.has(p0 + ".lowrank.vision.L"));
  BOOST_TEST(out.has(p0 + ".lowrank.audio.R"));
  BOOST_TEST(!out.has(p0 + ".lowrank.text.L"));
  BOOST_TEST(out.info(p0 + ".lowrank.vision.L").shape[0] == 32);
  const auto& meta = out.metadata();
  for (const char* key :
       {"format", "version", "wbits", "abits", "reference", "method", "rank", "alpha"})
    BOOST_TEST(meta.count(key) == 1u, key);
  BOOST_TEST(meta.at("format") == "masquant");
  BOOST_TEST(meta.at("wbits") == "4");
  BOOST_TEST(meta.at("reference") == "text");

  // The report JSON has the contract's shape.
  const auto report = nlohmann::json::parse(slurp(s / "report.json"));
  const auto& layer0 = report.at("layers").at(p0);
  BOOST_TEST(layer0.at("rank").get<int>() == 24);  // max(⌊0.05·24⌋, 32) clamped to min(32, 24)
  for (const char* m : {"text", "vision", "audio"}) {
    const auto& e = layer0.at("modalities").at(m);
    BOOST_TEST(e.at("tokens").get<int>() > 0);
    BOOST_TEST(e.contains("effective_rank"));
    for (const char* stage : {"rtn", "smoothquant", "mas_multiweight", "shared_no_cmc", "cmc"})
      BOOST_TEST(e.at("sqnr_db").at(stage).is_number(), m << " " << stage);
  }

  // The CLI computes what the library computes (same seed, any thread count).
  const safetensors_file in(s / "in.safetensors");
  calibration_config c;
  c.weight_bits = 4;
  c.learn_steps = 3;
  const auto text = in.load_f32(p0 + ".inputs.text"), vision = in.load_f32(p0 + ".inputs.vision");
  const auto loaded = load_linear(out, p0, "text", 4, 8);
  BOOST_TEST((loaded.modality_names == std::vector<std::string>{"text", "audio", "vision"}));
  const auto lib2 =
      calibrate(lf.w0.cview(), vector_view<const float>(lf.b0),
                {text.matrix(), lf.audio.cview(), vision.matrix()}, c, loaded.modality_names);
  BOOST_TEST(lib2.params.qweight == loaded.qweight);
  BOOST_TEST(lib2.params.smooth == loaded.smooth);
  BOOST_TEST((lib2.params.lowrank[2].L == loaded.lowrank[2].L));

  // forward writes P.outputs.<m>, equal to the deployable linear in-process.
  r = run(s, "forward " + (s / "out.safetensors") + " " + (s / "in.safetensors") + " -o " +
                 (s / "y.safetensors"));
  BOOST_TEST_REQUIRE(r.code == 0, r.err);
  const safetensors_file y(s / "y.safetensors");
  const quantized_linear lin(loaded);
  for (const auto& [m, id] :
       std::vector<std::pair<std::string, modality_id>>{{"text", 0}, {"audio", 1}, {"vision", 2}}) {
    const auto x = in.load_f32(p0 + ".inputs." + m);
    const auto got = y.load_f32(p0 + ".outputs." + m);
    BOOST_TEST((got.shape() == tensor_shape{x.rows(), 24}));
    std::vector<float> want(static_cast<std::size_t>(x.rows() * 24));
    std::vector<modality_id> ids(static_cast<std::size_t>(x.rows()), id);
    lin.forward(x.matrix(), ids, matrix_view<float>(want.data(), x.rows(), 24));
    BOOST_TEST(got.values() == want, m);
  }
  BOOST_TEST(y.has(p1 + ".outputs.vision"));

  r = run(s, "inspect " + (s / "in.safetensors"));
  BOOST_TEST(r.code == 0, r.err);
  BOOST_TEST(r.out.find("model.layers.0.mlp.up_proj.inputs.vision") != std::string::npos);
  BOOST_TEST(r.out.find("top channels") != std::string::npos);
  r = run(s, "inspect " + (s / "out.safetensors"));
  BOOST_TEST(r.code == 0, r.err);
  BOOST_TEST(r.out.find("calibrated") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(help_and_usage_errors) {
  scratch s;
  for (const char* cmd : {"demo", "calibrate", "forward", "inspect"}) {
    const auto r = run(s, std::string(cmd) + " --help");
    BOOST_TEST(r.code == 0, cmd);
    BOOST_TEST(r.out.find("usage: masquant") != std::string::npos, cmd);
  }
  BOOST_TEST(run(s, "--help").code == 0);
  layer_file().write(s / "in.safetensors");
  const std::string in = s / "in.safetensors", out = s / "out.safetensors";
  expect_failure(s, "frobnicate", 2, "unknown command", "");
  expect_failure(s, "", 2, "missing command", "");
  expect_failure(s, "calibrate " + in + " -o " + out + " --wbits 9", 2, "--wbits", out);
  expect_failure(s, "calibrate " + in + " -o " + out + " --abits 12", 2, "--abits", out);
  expect_failure(s, "calibrate " + in + " -o " + out + " --method gptq", 2, "--method", out);
  expect_failure(s, "calibrate " + in + " -o " + out + " --alpha 2", 2, "--alpha", out);
  expect_failure(s, "calibrate " + in + " -o " + out + " --rank 2.5", 2, "--rank", out);
  expect_failure(s, "calibrate " + in + " -o " + out + " --colour blue", 2, "--colour", out);
  expect_failure(s, "calibrate " + in, 2, "-o", "");
  expect_failure(s, "calibrate " + in + " -o " + out + " --reference speech", 2, "speech", out);
  expect_failure(s, "forward " + in + " -o " + out, 2, "takes 2 arguments", out);
}

BOOST_AUTO_TEST_CASE(bad_files_fail_cleanly) {
  scratch s;
  layer_file lf;
  const std::string good = s / "in.safetensors", out = s / "out.safetensors";
  lf.write(good);
  const std::string bytes = slurp(good);
  auto write_bytes = [&](const std::string& name, const std::string& b) {
    std::ofstream(s / name, std::ios::binary) << b;
    return s / name;
  };
  auto calib = [&](const std::string& file) { return "calibrate " + file + " -o " + out; };

  expect_failure(s, calib(s / "missing.safetensors"), 1, "missing.safetensors", out);
  expect_failure(s, calib(write_bytes("short", bytes.substr(0, 5))), 1, "short", out);
  expect_failure(s, calib(write_bytes("trunc", bytes.substr(0, bytes.size() - 7))), 1, "trunc",
                 out);
  std::string lying = bytes;  // the header claims more bytes than the file has
  lying[0] = char(0xff), lying[1] = char(0xff), lying[2] = char(0x0f);
  expect_failure(s, calib(write_bytes("lying", lying)), 1, "header", out);

  auto with = [&](const std::string& name, auto&& add) {
    safetensors_writer w;
    add(w);
    w.write(s / name);
    return s / name;
  };
  auto nan_text = lf.text;
  nan_text(7, 3) = NAN;
  expect_failure(
      s,
      calib(with("nan",
                 [&](safetensors_writer& w) {
                   w.add("p.weight", lf.w0.cview());
                   w.add("p.inputs.text", nan_text.cview());
                 })),
      1, "tensor 'p.inputs.text' (40x32) has the non-finite value nan at row 7, column 3", out);
  expect_failure(
      s,
      calib(with("noweight",
                 [&](safetensors_writer& w) { w.add("p.inputs.text", lf.text.cview()); })),
      1, "p.weight", out);
  expect_failure(s,
                 calib(with("noinputs",
                            [&](safetensors_writer& w) {
                              w.add("p.weight", lf.w0.cview());
                              w.add("q.weight", lf.w0.cview());
                              w.add("q.inputs.text", lf.text.cview());
                            })),
                 1, "p.inputs", out);
  matrix<float> narrow(5, 31);
  expect_failure(s,
                 calib(with("narrow",
                            [&](safetensors_writer& w) {
                              w.add("p.weight", lf.w0.cview());
                              w.add("p.inputs.text", lf.text.cview());
                              w.add("p.inputs.vision", narrow.cview());
                            })),
                 1, "p.inputs.vision", out);

  // forward: a modality the model was not calibrated for, and a file that is not a model.
  BOOST_TEST_REQUIRE(run(s, calib(with("textonly",
                                       [&](safetensors_writer& w) {
                                         w.add("p.weight", lf.w0.cview());
                                         w.add("p.inputs.text", lf.text.cview());
                                       })))
                         .code == 0);
  const std::string y = s / "y.safetensors";
  expect_failure(
      s,
      "forward " + out + " " +
          with("vis", [&](safetensors_writer& w) { w.add("p.inputs.vision", lf.vision.cview()); }) +
          " -o " + y,
      1, "not calibrated", y);
  expect_failure(s, "forward " + good + " " + good + " -o " + y, 1, "masquant", y);
  // inspect reports NaN activations and exits 1.
  const auto r = run(s, "inspect " + (s / "nan"));
  BOOST_TEST(r.code == 1);
  BOOST_TEST(r.out.find("NON-FINITE") != std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()

// Bad input through the masquant tool, end to end (the real binary): every command on every kind
// of malformed file, models and activation files that lie, degenerate layers, failures that must
// leave the output directory as it was, and byte-identical outputs for any thread count.
// Usage: bad_input_cli_test -- path/to/masquant path/to/fuzz/corpus/safetensors
//        path/to/libmasquant_raise_on_fsync.so
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <initializer_list>
#include <limits>
#include <map>
#include <masquant/io/linear_file.hpp>
#include <masquant/io/safetensors.hpp>
#include <string>
#include <vector>

#include "support/io_testing.hpp"
#include "support/testing.hpp"

using namespace masquant;
using masquant::testing::bytes;
using masquant::testing::matrix;
using masquant::testing::temp_dir;

namespace {

std::string arg(int from_end) {
  const auto& suite = boost::unit_test::framework::master_test_suite();
  BOOST_TEST_REQUIRE(suite.argc >= 4,
                     "usage: bad_input_cli_test -- masquant corpus_dir raise_on_fsync.so");
  return suite.argv[suite.argc - from_end];
}
std::string tool() {
  return arg(3);
}
std::string corpus() {
  return arg(2);
}
/// The LD_PRELOAD shim support/raise_on_fsync.cpp.
std::string raise_on_fsync() {
  return arg(1);
}

std::string slurp(const std::string& path) {
  const bytes b = testing::read_bytes(path);
  return std::string(b.begin(), b.end());
}

struct run_result {
  int code;
  std::string out, err;
};

/// Runs `masquant <args>` (after `env`, environment assignments for it; after `shell`, shell
/// commands such as `ulimit -v N;`), killed after `seconds` when > 0 (coreutils timeout); its
/// stdout and stderr go to a directory of their own, so that the directories the commands write
/// to hold only what the commands leave there.
run_result run_limited(int seconds, const std::string& args, const std::string& env = "",
                       const std::string& shell = "") {
  static temp_dir logs;
  const std::string limit = seconds > 0 ? "timeout -s KILL " + std::to_string(seconds) + " " : "";
  const std::string cmd = shell + " env " + env + " " + limit + "'" + tool() + "' " + args +
                          " > '" + logs.file("out") + "' 2> '" + logs.file("err") + "'";
  const int status = std::system(cmd.c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, slurp(logs.file("out")),
          slurp(logs.file("err"))};
}

run_result run(const std::string& args) {
  return run_limited(0, args);
}

/// The command fails with `code`, says so in exactly one line on stderr containing every part,
/// and leaves `dir` holding exactly what it held before.
void expect_failure(const std::string& args, int code, std::initializer_list<std::string> parts,
                    const temp_dir& dir) {
  const auto before = dir.entries();
  const auto r = run(args);
  BOOST_TEST(r.code == code, args << " -> " << r.code << ": " << r.err);
  BOOST_TEST(std::count(r.err.begin(), r.err.end(), '\n') == 1,
             args << ": not one line: " << r.err);
  for (const auto& p : parts)
    BOOST_TEST(r.err.find(p) != std::string::npos, args << ": '" << p << "' missing in: " << r.err);
  BOOST_TEST(dir.entries() == before, args << " left files behind");
}

void expect_success(const std::string& args) {
  const auto r = run(args);
  BOOST_TEST_REQUIRE(r.code == 0, args << " -> " << r.code << ": " << r.err);
}

/// expect_success() for a command that must end within `seconds` (far more than it needs):
/// killed after that (exit code 137), it fails naming the limit.
run_result expect_success_within(int seconds, const std::string& args) {
  const auto r = run_limited(seconds, args);
  BOOST_TEST_REQUIRE(
      r.code == 0, args << " -> " << r.code << (r.code == 137 ? " (killed after " : "")
                        << (r.code == 137 ? std::to_string(seconds) + " s)" : "") << ": " << r.err);
  return r;
}

/// One calibration layer: weight, optional bias, and tokens per modality (an empty matrix with
/// d_in columns is a modality with zero tokens).
struct layer {
  matrix<float> w;
  std::vector<float> bias;
  std::map<std::string, matrix<float>> inputs;
};

layer random_layer(index_t d_in, index_t d_out, index_t tokens, std::uint64_t seed) {
  layer l;
  l.w = testing::random_normal(d_out, d_in, 0.3f, seed);
  for (index_t n = 0; n < d_out; ++n) l.bias.push_back(0.01f * float(n));
  l.inputs["text"] = testing::random_normal(tokens, d_in, 1.0f, seed + 1);
  l.inputs["vision"] = testing::random_normal(tokens, d_in, 3.0f, seed + 2);
  l.inputs["audio"] = testing::random_normal(tokens / 2 + 1, d_in, 1.5f, seed + 3);
  for (index_t t = 0; t < tokens; ++t) l.inputs["text"](t, 0) = 25.0f;
  return l;
}

void write_layers(const std::string& path, const std::map<std::string, layer>& layers,
                  bool inputs_only = false) {
  safetensors_writer w;
  for (const auto& [p, l] : layers) {
    if (!inputs_only) {
      w.add(p + ".weight", l.w.cview());
      if (!l.bias.empty()) w.add(p + ".bias", vector_view<const float>(l.bias));
    }
    for (const auto& [m, x] : l.inputs) w.add(p + ".inputs." + m, x.cview());
  }
  w.write(path);
}

/// The __metadata__ `masquant forward` needs, for a W8A<abits> model with reference "text".
void set_model_metadata(safetensors_writer& w, const std::string& abits) {
  for (const auto& [k, v] : std::map<std::string, std::string>{
           {"format", "masquant"}, {"wbits", "8"}, {"abits", abits}, {"reference", "text"}})
    w.set_metadata(k, v);
}

/// A one-modality ("text") layer of `d_out` x `d_in` levels `level`, scales `scale`, factors 1.
quantized_linear_params plain_layer(index_t d_in, index_t d_out, std::int8_t level, float scale) {
  quantized_linear_params p;
  p.d_in = d_in;
  p.d_out = d_out;
  p.qweight.assign(static_cast<std::size_t>(d_in * d_out), level);
  p.wscale.assign(static_cast<std::size_t>(d_out), scale);
  p.smooth = {std::vector<float>(static_cast<std::size_t>(d_in), 1.0f)};
  p.modality_names = {"text"};
  return p;
}

/// A copy of `src` with tensors and metadata edited: `edit` gets the writer after every other
/// tensor was added, `skip` names tensors not to copy, `meta` overrides (or, with an empty value,
/// removes) metadata keys.
void rewrite(const std::string& src, const std::string& dst, const std::vector<std::string>& skip,
             const std::map<std::string, std::string>& meta,
             const std::function<void(safetensors_writer&)>& edit = {}) {
  const safetensors_file f(src);
  safetensors_writer w;
  for (const auto& t : f.tensors()) {
    if (std::find(skip.begin(), skip.end(), t.name) != skip.end()) continue;
    if (t.type == dtype::i8)
      w.add(t.name, f.load<std::int8_t>(t.name));
    else
      w.add(t.name, f.load_f32(t.name));
  }
  for (const auto& [k, v] : f.metadata())
    if (!meta.count(k)) w.set_metadata(k, v);
  for (const auto& [k, v] : meta)
    if (!v.empty()) w.set_metadata(k, v);
  if (edit) edit(w);
  w.write(dst);
}

/// Every float-loadable tensor of the file is finite.
void expect_all_finite(const std::string& path) {
  const safetensors_file f(path);
  BOOST_TEST(!f.tensors().empty());
  for (const auto& t : f.tensors()) {
    if (t.type == dtype::i8) continue;
    const auto values = f.load_f32(t.name);
    for (float v : values.values())
      BOOST_TEST_REQUIRE(std::isfinite(v), path << ": " << t.name << " holds " << v);
  }
}

/// A small two-layer calibration file and the model calibrated from it, in `dir`.
struct fixture {
  temp_dir dir;
  std::string in = dir.file("in.safetensors"), model = dir.file("model.safetensors");
  fixture() {
    write_layers(in, {{"p", random_layer(8, 6, 24, 1)}, {"q", random_layer(8, 5, 24, 2)}});
    expect_success("calibrate " + in + " -o " + model + " --learn-steps 2 --threads 1");
  }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(bad_input_cli)

// Truncated files, headers that lie about lengths, shapes or offsets, overlapping or duplicate
// tensors, unknown dtypes, invalid JSON, a directory, a missing file: every command exits 1 with
// one line naming the file, and writes nothing.
BOOST_AUTO_TEST_CASE(every_command_refuses_every_malformed_file) {
  fixture fx;
  temp_dir work;
  std::vector<std::string> bad;
  for (const auto& e : std::filesystem::directory_iterator(corpus()))
    if (e.path().filename().string().rfind("bad_", 0) == 0) bad.push_back(e.path().string());
  std::sort(bad.begin(), bad.end());
  BOOST_TEST_REQUIRE(bad.size() >= 10u);
  temp_dir made;
  const std::string good_in = slurp(fx.in), good_model = slurp(fx.model);
  auto make = [&](const std::string& name, const std::string& content) {
    testing::write_bytes(made.file(name), bytes(content.begin(), content.end()));
    bad.push_back(made.file(name));
  };
  make("empty.safetensors", "");
  make("short.safetensors", good_in.substr(0, 5));
  make("truncated_input.safetensors", good_in.substr(0, good_in.size() - 7));
  make("truncated_model.safetensors", good_model.substr(0, good_model.size() / 2));
  std::string huge = good_in;  // header length 2^64 - 1
  std::fill(huge.begin(), huge.begin() + 8, char(0xff));
  make("huge_header.safetensors", huge);
  std::string past = good_in;  // header length one past the file
  const std::uint64_t n = good_in.size() - 7;
  for (int i = 0; i < 8; ++i) past[std::size_t(i)] = char((n >> (8 * i)) & 0xff);
  make("header_past_end.safetensors", past);
  bad.push_back(made.path());  // a directory
  bad.push_back(made.file("does_not_exist.safetensors"));

  const std::string out = work.file("out.safetensors");
  for (const auto& b : bad) {
    const std::string name = std::filesystem::path(b).filename().string();
    expect_failure("calibrate '" + b + "' -o " + out, 1, {name}, work);
    expect_failure("forward '" + b + "' " + fx.in + " -o " + out, 1, {name}, work);
    expect_failure("forward " + fx.model + " '" + b + "' -o " + out, 1, {name}, work);
    expect_failure("inspect '" + b + "'", 1, {name}, work);
  }
}

// forward on a MODEL whose metadata or tensors lie: exit 1 naming the key or tensor, no output.
BOOST_AUTO_TEST_CASE(forward_refuses_models_that_lie) {
  fixture fx;
  temp_dir work;
  const std::string y = work.file("y.safetensors"), lie = fx.dir.file("lie.safetensors");
  auto check = [&](const std::vector<std::string>& skip,
                   const std::map<std::string, std::string>& meta,
                   std::initializer_list<std::string> parts,
                   const std::function<void(safetensors_writer&)>& edit = {}) {
    rewrite(fx.model, lie, skip, meta, edit);
    expect_failure("forward " + lie + " " + fx.in + " -o " + y, 1, parts, work);
  };
  // Metadata.
  check({}, {{"format", ""}}, {"not a 'masquant calibrate' output"});
  check({}, {{"format", "masquant-outputs"}}, {"not a 'masquant calibrate' output"});
  check({}, {{"wbits", ""}}, {"__metadata__ has no 'wbits'"});
  for (const char* v : {"abc", "-4", "4.0", "1000", " 8"})
    check({}, {{"wbits", v}}, {"'wbits' is '" + std::string(v) + "'", "expected a bit width"});
  check({}, {{"abits", "12"}}, {"activation_bits = 12"});
  check({}, {{"abits", "1"}}, {"activation_bits = 1"});
  check({}, {{"wbits", "9"}}, {"weight_bits = 9"});
  check({}, {{"wbits", "0"}}, {"weight_bits = 0"});
  check({}, {{"wbits", "4"}}, {"layer 'p'", "qweight[", "weight_bits = 4"});  // 8-bit levels
  check({}, {{"reference", ""}}, {"__metadata__ has no 'reference'"});
  check({}, {{"reference", "speech"}}, {"missing tensor 'p.smooth.speech'"});
  check({}, {{"reference", "vision"}}, {"p.lowrank.vision", "corrects the reference"});
  // Tensors.
  check({"p.wscale"}, {}, {"missing tensor 'p.wscale'"});
  check({"p.lowrank.audio.R"}, {}, {"'p.lowrank.audio.R' is missing"});
  check({"p.qweight"}, {}, {"'p.inputs.", "has no calibrated layer 'p'"});
  check({"p.qweight"}, {}, {"'p.qweight' is F32", "expected I8"}, [](safetensors_writer& w) {
    std::vector<float> q(48, 1.0f);
    w.add("p.qweight", matrix_view<const float>(q.data(), 6, 8));  // F32, not I8
  });
  check({"p.qweight"}, {}, {"'p.smooth.text' is [8], expected [9]"}, [](safetensors_writer& w) {
    std::vector<std::int8_t> q(54, 1);
    w.add("p.qweight", matrix_view<const std::int8_t>(q.data(), 6, 9));
  });
  check({"p.smooth.vision"}, {}, {"lie.safetensors", "layer 'p'", "'vision'", "entry 5"},
        [](safetensors_writer& w) {
          std::vector<float> s(8, 1.0f);
          s[5] = -2.0f;
          w.add("p.smooth.vision", vector_view<const float>(s));
        });
  check({"q.wscale"}, {}, {"lie.safetensors", "layer 'q'", "wscale[3] is inf"},
        [](safetensors_writer& w) {
          std::vector<float> s(5, 0.1f);
          s[3] = std::numeric_limits<float>::infinity();
          w.add("q.wscale", vector_view<const float>(s));
        });
}

// forward never writes Inf and exits 0: a model whose wscale is finite but outside the weight
// quantizer's range is refused when loaded (naming P.wscale), one whose L or R are finite but
// huge, or finite activations too large for the layer, when an output overflows (naming the
// tensor, the layer, the modality and the term). Both used to write Inf.
BOOST_AUTO_TEST_CASE(forward_never_writes_inf) {
  fixture fx;
  temp_dir work;
  const std::string y = work.file("y.safetensors"), lie = fx.dir.file("lie.safetensors");
  auto set_all = [&](const std::string& name, float value) {
    return [&fx, name, value](safetensors_writer& w) {
      const safetensors_file f(fx.model);
      auto t = f.load_f32(name);
      auto v = t.values();
      std::fill(v.begin(), v.end(), value);
      w.add(name, t.shape(), vector_view<const float>(v));
    };
  };
  rewrite(fx.model, lie, {"p.wscale"}, {}, set_all("p.wscale", 3e38f));
  expect_failure("forward " + lie + " " + fx.in + " -o " + y, 1,
                 {"lie.safetensors", "tensor 'p.wscale' element 0 = 3e+38", "outside"}, work);
  rewrite(fx.model, lie, {"p.lowrank.vision.L"}, {}, set_all("p.lowrank.vision.L", 3e38f));
  expect_failure("forward " + lie + " " + fx.in + " -o " + y, 1,
                 {"tensor 'p.inputs.vision' through layer 'p'", "modality 'vision'", "lowrank["},
                 work);
  // Finite activations that overflow a healthy W8A16 layer (every level 127, unit scales): 1e37
  // on 8 inputs.
  safetensors_writer mw;
  add_linear(mw, "h", plain_layer(8, 2, 127, 1.0f));
  set_model_metadata(mw, "16");
  const std::string plain = fx.dir.file("plain.safetensors"), big = fx.dir.file("big.safetensors");
  mw.write(plain);
  safetensors_writer w;
  matrix<float> x(3, 8, 1.0f);
  for (index_t i = 0; i < 8; ++i) x(2, i) = 1e37f;
  w.add("h.inputs.text", x.cview());
  w.write(big);
  expect_failure("forward " + plain + " " + big + " -o " + y, 1,
                 {"tensor 'h.inputs.text' through layer 'h'", "row 2, column 0", "float's range"},
                 work);
}

// forward on activations that lie about the layer, or hold NaN: exit 1 naming the tensor.
BOOST_AUTO_TEST_CASE(forward_refuses_inputs_that_lie) {
  fixture fx;
  temp_dir work;
  const std::string y = work.file("y.safetensors"), in = fx.dir.file("x.safetensors");
  auto check = [&](const std::function<void(safetensors_writer&)>& add,
                   std::initializer_list<std::string> parts) {
    safetensors_writer w;
    add(w);
    w.write(in);
    expect_failure("forward " + fx.model + " " + in + " -o " + y, 1, parts, work);
  };
  const auto x = testing::random_normal(5, 8, 1.0f, 9);
  check(
      [&](safetensors_writer& w) { w.add("p.inputs.text", testing::random_normal(5, 9).cview()); },
      {"'p.inputs.text' is [5, 9]", "expected [tokens, 8]"});
  check([&](safetensors_writer& w) { w.add("p.inputs.text", vector_view<const float>(x.data)); },
        {"'p.inputs.text' is [40]"});
  auto with_nan = x;
  with_nan(3, 6) = std::numeric_limits<float>::quiet_NaN();
  check(
      [&](safetensors_writer& w) {
        w.add("p.inputs.text", x.cview());
        w.add("q.inputs.vision", with_nan.cview());
      },
      {"'q.inputs.vision'", "row 3"});
  check([&](safetensors_writer& w) { w.add("r.inputs.text", x.cview()); },
        {"'r.inputs.text'", "no calibrated layer 'r'"});
  check([&](safetensors_writer& w) { w.add("p.inputs.speech", x.cview()); },
        {"modality 'speech'", "not calibrated", "text, audio, vision"});
  check([&](safetensors_writer& w) { w.add("p.weight", x.cview()); }, {"no activations to run"});
  // I64 activations (a dtype the reader lists but cannot load as float).
  const std::string header =
      R"({"p.inputs.text":{"dtype":"I64","shape":[1,8],"data_offsets":[0,64]}})";
  testing::write_bytes(in, testing::image(header, 64));
  expect_failure("forward " + fx.model + " " + in + " -o " + y, 1, {"p.inputs.text", "I64"}, work);
  // A modality with zero tokens is not an error: its output has zero rows.
  safetensors_writer w;
  w.add("p.inputs.vision", matrix<float>(0, 8).cview());
  w.write(in);
  expect_success("forward " + fx.model + " " + in + " -o " + y);
  const safetensors_file out(y);
  BOOST_TEST((out.info("p.outputs.vision").shape == tensor_shape{0, 6}));
}

// d_in = 1, d_out = 1, dead channels, zero weight columns and rows, constant tokens, an all-zero
// modality and one without tokens: calibrate, forward and inspect succeed, and no tensor of any
// output holds NaN or Inf, for every smoothing method.
BOOST_AUTO_TEST_CASE(degenerate_layers_end_to_end) {
  temp_dir dir;
  std::map<std::string, layer> layers;
  layers["one_in"] = random_layer(1, 5, 12, 10);
  layers["one_out"] = random_layer(7, 1, 12, 20);
  layers["one_one"] = random_layer(1, 1, 12, 30);
  layer d = random_layer(16, 12, 40, 40);
  for (auto& [m, x] : d.inputs)
    for (index_t r = 0; r < x.rows; ++r) x(r, 3) = 0.0f, x(r, 7) = 0.0f;
  for (index_t n = 0; n < 12; ++n) d.w(n, 5) = 0.0f, d.w(n, 7) = 0.0f;
  for (index_t k = 0; k < 16; ++k) d.w(2, k) = 0.0f;
  for (index_t r = 0; r < 40; ++r)
    for (index_t k = 0; k < 16; ++k) d.inputs["text"](r, k) = float(r % 3);  // constant rows
  d.inputs["audio"] = matrix<float>(20, 16, 0.0f);                           // all zero
  d.inputs["speech"] = matrix<float>(0, 16);                                 // no tokens
  layers["dead"] = d;
  const std::string in = dir.file("in.safetensors"), model = dir.file("model.safetensors"),
                    y = dir.file("y.safetensors");
  write_layers(in, layers);
  for (const char* flags :
       {"--learn-steps 3 --alpha auto", "--method smoothquant --wbits 4 --abits 6",
        "--method rtn --rank 1000 --min-rank 0", "--learn-steps 2 --abits 16 --whiten eigen",
        "--learn-steps 2 --whiten none --quantized-compensation"}) {
    expect_success("calibrate " + in + " -o " + model + " --threads 2 " + flags);
    expect_all_finite(model);
    expect_success("forward " + model + " " + in + " -o " + y);
    expect_all_finite(y);
    const safetensors_file out(y);
    BOOST_TEST((out.info("one_out.outputs.vision").shape == tensor_shape{12, 1}));
    BOOST_TEST((out.info("dead.outputs.speech").shape == tensor_shape{0, 12}));
  }
  for (const auto& f : {in, model, y}) expect_success("inspect " + f);
}

// The same input gives byte-identical calibrate and forward outputs with 1 and 2 threads and on
// every run (learning minibatches and the randomized SVD are seeded); another seed differs.
BOOST_AUTO_TEST_CASE(outputs_are_identical_for_any_thread_count) {
  temp_dir dir;
  const std::string in = dir.file("in.safetensors");
  write_layers(in, {{"p", random_layer(64, 56, 96, 5)}});
  // Rank 2 + oversampling 10 = 12, 4·12 <= 56: the randomized SVD path.
  const std::string flags = " --rank 2 --min-rank 2 --learn-steps 4 --batch-tokens 32 --alpha auto";
  std::vector<std::string> models, outputs;
  for (const char* threads : {"1", "2", "2", "1"}) {
    const std::string m = dir.file("model" + std::to_string(models.size()) + ".safetensors");
    const std::string y = dir.file("y" + std::to_string(models.size()) + ".safetensors");
    expect_success("calibrate " + in + " -o " + m + " --threads " + threads + flags);
    expect_success("forward " + m + " " + in + " -o " + y + " --threads " + threads);
    models.push_back(slurp(m));
    outputs.push_back(slurp(y));
  }
  for (std::size_t i = 1; i < models.size(); ++i) {
    BOOST_TEST((models[i] == models[0]), "model " << i);
    BOOST_TEST((outputs[i] == outputs[0]), "output " << i);
  }
  const std::string other = dir.file("seed3.safetensors");
  expect_success("calibrate " + in + " -o " + other + " --seed 3" + flags);
  BOOST_TEST((slurp(other) != models[0]), "the seed changes nothing");
}

// A failure at any point — a bad tensor in the last layer, an unwritable or missing output
// directory, an output path that is a directory, a report that cannot be written — leaves no
// output and no temporary file, and an existing output untouched.
BOOST_AUTO_TEST_CASE(failures_leave_nothing_behind) {
  temp_dir dir, work;
  auto last_bad = random_layer(8, 6, 24, 7);
  last_bad.inputs["vision"](23, 7) = std::numeric_limits<float>::infinity();
  const std::string in = dir.file("in.safetensors"), good = dir.file("good.safetensors");
  write_layers(in, {{"a", random_layer(8, 6, 24, 3)}, {"z", last_bad}});
  write_layers(good, {{"a", random_layer(8, 6, 24, 3)}});
  const std::string out = work.file("out.safetensors");
  expect_failure("calibrate " + in + " -o " + out, 1, {"'z.inputs.vision'", "row 23", "column 7"},
                 work);
  // An existing output stays as it was.
  expect_success("calibrate " + good + " -o " + out + " --learn-steps 1");
  const std::string before = slurp(out);
  expect_failure("calibrate " + in + " -o " + out, 1, {"z.inputs.vision"}, work);
  BOOST_TEST((slurp(out) == before));
  // forward: the last layer's activations are bad.
  const std::string model = dir.file("model.safetensors");
  expect_success("calibrate " + good + " -o " + model + " --learn-steps 1");
  write_layers(dir.file("x.safetensors"),
               {{"a", random_layer(8, 6, 4, 8)}, {"b", random_layer(8, 6, 4, 9)}},
               /*inputs_only=*/true);
  expect_failure("forward " + model + " " + dir.file("x.safetensors") + " -o " + work.file("y"), 1,
                 {"'b.inputs.", "no calibrated layer 'b'"}, work);
  // Output paths that cannot be written.
  expect_failure("calibrate " + good + " -o " + work.file("missing/out.safetensors"), 1,
                 {"missing/out.safetensors"}, work);
  BOOST_TEST_REQUIRE(::mkdir(work.file("sub").c_str(), 0755) == 0);
  expect_failure("calibrate " + good + " -o " + work.file("sub"), 1, {"sub"}, work);
  expect_failure("forward " + model + " " + good + " -o " + work.file("sub"), 1, {"sub"}, work);
  expect_failure("calibrate " + good + " -o " + work.file("r.safetensors") + " --report " +
                     work.file("missing/r.json"),
                 1, {"missing/r.json"}, work);
  expect_failure(
      "demo --dim 8 --tokens 8 --learn-steps 0 --threads 1 --svg " + work.file("missing/d.svg"), 1,
      {"missing/d.svg"}, work);
}

// Files with 160k tensors (the header size at which the quadratic parser took over a minute)
// and models with 20k layers: every command stays linear (n log n) in the number of tensors.
BOOST_AUTO_TEST_CASE(every_command_is_fast_on_160k_tensors) {
  temp_dir dir;
  const std::string in = dir.file("in.safetensors"), model = dir.file("model.safetensors"),
                    many = dir.file("many.safetensors"), x = dir.file("x.safetensors"),
                    y = dir.file("y.safetensors");
  {
    safetensors_writer w;
    const auto l = random_layer(8, 6, 24, 1);
    w.add("p.weight", l.w.cview());
    for (const auto& [m, t] : l.inputs) w.add("p.inputs." + m, t.cview());
    const float one = 1.0f;
    for (int i = 0; i < 160000; ++i)
      w.add("extra." + std::to_string(i % 997) + ".t" + std::to_string(i), tensor_shape{1},
            vector_view<const float>(&one, 1));
    w.write(in);
  }
  const auto listed = expect_success_within(60, "inspect " + in);
  BOOST_TEST(listed.out.find("160004 tensors") != std::string::npos);
  expect_success_within(60, "calibrate " + in + " -o " + model + " --learn-steps 1 --threads 1");
  // 20k calibrated layers (100k tensors) and their activations.
  {
    quantized_linear_params p;
    p.d_in = 2;
    p.d_out = 1;
    p.qweight = {3, -5};
    p.wscale = {0.25f};
    p.smooth = {{1.0f, 2.0f}, {0.5f, 1.0f}};
    p.modality_names = {"text", "vision"};
    p.lowrank.resize(2);
    p.lowrank[1].L = row_matrix<float>::Constant(2, 1, 0.5f);
    p.lowrank[1].R = row_matrix<float>::Constant(1, 1, 0.25f);
    safetensors_writer mw, xw;
    const std::vector<float> tokens{1.0f, 2.0f, 3.0f, 4.0f};
    for (int i = 0; i < 20000; ++i) {
      const std::string prefix = "layers." + std::to_string(i) + ".proj";
      add_linear(mw, prefix, p);
      xw.add(prefix + ".inputs.vision", matrix_view<const float>(tokens.data(), 2, 2));
    }
    set_model_metadata(mw, "8");
    mw.write(many);
    xw.write(x);
  }
  expect_success_within(60, "forward " + many + " " + x + " -o " + y + " --threads 1");
  const safetensors_file out(y);
  BOOST_TEST(out.tensors().size() == 20000u);
  expect_success_within(60, "inspect " + many);
}

// An output that is an input or another output — the same path, another spelling of its
// directory, a symbolic or hard link — is a usage error before any work, for every command:
// `calibrate IN -o M --report M` used to leave the report in M and lose the model.
BOOST_AUTO_TEST_CASE(outputs_never_overwrite_inputs_or_each_other) {
  fixture fx;
  temp_dir work;
  const std::string in = fx.in, model = fx.model, m = work.file("m.safetensors");
  const std::string in_bytes = slurp(in), model_bytes = slurp(model);
  BOOST_TEST_REQUIRE(::symlink(in.c_str(), work.file("in_link").c_str()) == 0);
  BOOST_TEST_REQUIRE(::link(in.c_str(), work.file("in_hard").c_str()) == 0);
  BOOST_TEST_REQUIRE(::symlink(work.path().c_str(), fx.dir.file("work_link").c_str()) == 0);
  const auto same = [&](const std::string& args, std::initializer_list<std::string> parts) {
    expect_failure(args, 2, parts, work);
  };
  same("calibrate " + in + " -o " + m + " --report " + m, {"--report", "-o", "same file"});
  same("calibrate " + in + " -o " + in, {"the input IN", "same file"});
  same("calibrate " + in + " -o " + work.file("in_link"), {"in_link", "the input IN"});
  same("calibrate " + in + " -o " + work.file("in_hard"), {"in_hard", "the input IN"});
  same("calibrate " + in + " -o " + work.path() + "/./m.safetensors --report " + work.path() +
           "//m.safetensors",
       {"same file"});
  same("calibrate " + in + " -o " + m + " --report " + fx.dir.file("work_link") + "/m.safetensors",
       {"same file"});
  same("calibrate " + in + " -o " + m + " --report " + in, {"--report", "the input IN"});
  same("forward " + model + " " + in + " -o " + model, {"the input MODEL"});
  same("forward " + model + " " + in + " -o " + work.file("in_link"), {"the input IN"});
  same("demo --dim 8 --tokens 8 --svg " + m + " --report " + m, {"--report", "--svg"});
  BOOST_TEST((slurp(in) == in_bytes));
  BOOST_TEST((slurp(model) == model_bytes));
  BOOST_TEST(std::filesystem::is_symlink(work.file("in_link")));
  // Distinct outputs next to each other are fine.
  expect_success("calibrate " + in + " -o " + m + " --report " + work.file("r.json") +
                 " --learn-steps 1 --threads 1");
}

// A FIFO, a device (here through a link to /dev/null) or a directory as an output is refused
// (exit 1, before any work) and stays what it was; as root, `-o /dev/null` used to replace the
// device node with a regular file. Limited in time: a writer that opened the FIFO would block.
BOOST_AUTO_TEST_CASE(special_files_are_never_outputs) {
  fixture fx;
  temp_dir work;
  const std::string fifo = work.file("fifo"), null = work.file("null"), sub = work.file("sub");
  BOOST_TEST_REQUIRE(::mkfifo(fifo.c_str(), 0644) == 0);
  BOOST_TEST_REQUIRE(::symlink("/dev/null", null.c_str()) == 0);
  BOOST_TEST_REQUIRE(::mkdir(sub.c_str(), 0755) == 0);
  const auto refused = [&](const std::string& args, std::initializer_list<std::string> parts) {
    const auto before = work.entries();
    const auto r = run_limited(60, args);
    BOOST_TEST(r.code == 1, args << " -> " << r.code << ": " << r.err);
    for (const auto& p : parts)
      BOOST_TEST(r.err.find(p) != std::string::npos, args << ": '" << p << "' missing: " << r.err);
    BOOST_TEST(work.entries() == before, args << " left files behind");
  };
  const std::string cal = "calibrate " + fx.in + " --learn-steps 1 --threads 1 ";
  const std::string fwd = "forward " + fx.model + " " + fx.in + " ";
  refused(cal + "-o " + fifo, {"fifo", "it is a FIFO"});
  refused(cal + "-o " + null, {"null", "a character device"});
  refused(cal + "-o " + sub, {"sub", "a directory"});
  refused(cal + "-o " + work.file("m") + " --report " + fifo, {"--report", "a FIFO"});
  refused(fwd + "-o " + fifo, {"a FIFO"});
  refused(fwd + "-o " + null, {"a character device"});
  refused("demo --dim 8 --tokens 8 --learn-steps 0 --svg " + fifo, {"--svg", "a FIFO"});
  refused(
      "demo --dim 8 --tokens 8 --learn-steps 0 --svg " + work.file("d.svg") + " --report " + null,
      {"--report", "a character device"});
  BOOST_TEST(std::filesystem::is_fifo(fifo));
  BOOST_TEST(std::filesystem::read_symlink(null) == "/dev/null");
  BOOST_TEST(std::filesystem::is_character_file("/dev/null"));
}

// A FIFO (or a device) as an input is refused at once, naming what it is; it used to hang in
// open() until a writer came.
BOOST_AUTO_TEST_CASE(fifo_inputs_are_refused_at_once) {
  fixture fx;
  temp_dir work;
  const std::string fifo = work.file("in.fifo"), out = work.file("out.safetensors");
  BOOST_TEST_REQUIRE(::mkfifo(fifo.c_str(), 0644) == 0);
  for (const std::string& args : std::vector<std::string>{
           "calibrate " + fifo + " -o " + out, "forward " + fifo + " " + fx.in + " -o " + out,
           "forward " + fx.model + " " + fifo + " -o " + out, "inspect " + fifo,
           "inspect /dev/zero"}) {
    const auto r = run_limited(60, args);
    BOOST_TEST(r.code == 1,
               args << " -> " << r.code << (r.code == 137 ? " (hung)" : "") << ": " << r.err);
    BOOST_TEST(r.err.find("not a regular file") != std::string::npos, args << ": " << r.err);
  }
  BOOST_TEST(work.entries() == std::vector<std::string>{"in.fifo"});
}

// SIGINT or SIGTERM while the outputs are being written (raised by the preloaded shim at the
// first fsync, when the report's and the model's temporaries both exist): the process dies of
// the signal and leaves no temporary, and the previous output is untouched.
BOOST_AUTO_TEST_CASE(interrupted_runs_leave_no_temporaries) {
  fixture fx;
  temp_dir work;
  const std::string out = work.file("out.safetensors"), report = work.file("report.json");
  testing::write_bytes(out, bytes{1, 2, 3});
  for (const int sig : {SIGINT, SIGTERM}) {
    const auto r = run_limited(
        0,
        "calibrate " + fx.in + " -o " + out + " --report " + report +
            " --learn-steps 1 --threads 1",
        "LD_PRELOAD='" + raise_on_fsync() + "' MASQUANT_TEST_RAISE=" + std::to_string(sig));
    // The shell reports a child killed by a signal as 128 + the signal.
    BOOST_TEST((r.code == 128 + sig || r.code == -1), "signal " << sig << ": exit " << r.code);
    BOOST_TEST(work.entries() == std::vector<std::string>{"out.safetensors"}, "signal " << sig);
    BOOST_TEST((testing::read_bytes(out) == bytes{1, 2, 3}));
  }
}

// --threads above the available CPUs is capped at them, with a warning; the outputs are those
// of any other thread count (16 threads on 2 cores used to run 20 to 150 times slower).
BOOST_AUTO_TEST_CASE(threads_above_the_cpu_count_are_capped) {
  fixture fx;
  temp_dir work;
  const std::string a = work.file("a.safetensors"), b = work.file("b.safetensors");
  const auto r = expect_success_within(
      120, "calibrate " + fx.in + " -o " + a + " --learn-steps 2 --threads 4096");
  BOOST_TEST(r.err.find("masquant: warning: --threads 4096 is more than the ") != std::string::npos,
             r.err);
  expect_success("calibrate " + fx.in + " -o " + b + " --learn-steps 2 --threads 1");
  BOOST_TEST((slurp(a) == slurp(b)));
  const auto f = run_limited(120, "forward " + a + " " + fx.in + " -o " + b + " --threads 4096");
  BOOST_TEST(f.code == 0);
  BOOST_TEST(f.err.find("warning: --threads 4096") != std::string::npos, f.err);
}

// Layer names that contain the file contract's own words (m.smooth next to m, x.outputs.y,
// a.lowrank.b, q.inputs.r, w.weight) are layers like any other: calibrated, run and listed,
// none taking another's tensors. "m.smooth.weight" used to be read as the smoothing factor of a
// modality "weight" of layer m.
BOOST_AUTO_TEST_CASE(every_legal_layer_name_is_recognised) {
  temp_dir dir;
  const std::vector<std::string> prefixes = {"m",           "m.smooth",    "m.smooth.text",
                                             "x.outputs.y", "a.lowrank.b", "a.lowrank",
                                             "q.inputs.r",  "w.weight"};
  std::map<std::string, layer> layers;
  for (std::size_t i = 0; i < prefixes.size(); ++i)
    layers[prefixes[i]] = random_layer(8, 4 + index_t(i), 24, 100 + i);
  const std::string in = dir.file("in.safetensors"), model = dir.file("model.safetensors"),
                    y = dir.file("y.safetensors");
  write_layers(in, layers);
  expect_success("calibrate " + in + " -o " + model + " --learn-steps 1 --threads 1");
  expect_success("forward " + model + " " + in + " -o " + y + " --threads 1");
  const safetensors_file mf(model), yf(y);
  for (std::size_t i = 0; i < prefixes.size(); ++i) {
    const std::string& p = prefixes[i];
    BOOST_TEST((mf.info(p + ".qweight").shape == tensor_shape{4 + index_t(i), 8}), p);
    for (const char* m : {"text", "vision", "audio"}) {
      BOOST_TEST(mf.has(p + ".smooth." + m), p << " " << m);
      BOOST_TEST((yf.info(p + ".outputs." + m).shape[1] == 4 + index_t(i)), p << " " << m);
    }
  }
  const auto listed = run("inspect " + model);
  BOOST_TEST(listed.code == 0);
  BOOST_TEST(listed.out.find("layers (8):") != std::string::npos, listed.out);
  // A modality may not be called by one of the grammar's words.
  expect_failure("calibrate " + in + " -o " + dir.file("r.safetensors") + " --reference weight", 2,
                 {"--reference", "weight"}, dir);
}

// inspect lists every tensor and layer even past activations it cannot use (an I64 tensor used
// to end the listing), exits 1 with one line on stderr naming the first (NaN activations used
// to give exit 1 and an empty stderr), and escapes control characters in names and metadata
// (a name could clear the terminal).
BOOST_AUTO_TEST_CASE(inspect_lists_everything_and_names_what_it_refuses) {
  temp_dir dir;
  const std::string path = dir.file("x.safetensors");
  auto with_nan = testing::random_normal(4, 3, 1.0f, 3);
  with_nan(1, 2) = std::numeric_limits<float>::quiet_NaN();
  const std::vector<std::int64_t> ids(6, 7);
  auto write = [&](bool with_i64) {
    safetensors_writer w;
    if (with_i64) w.add_raw("p.inputs.audio", dtype::i64, tensor_shape{2, 3}, ids.data(), 48);
    w.add("p.inputs.text", with_nan.cview());
    w.add("q.inputs.text", testing::random_normal(4, 3, 1.0f, 4).cview());
    w.add("evil\x1b[2J\rname.weight", testing::random_normal(2, 3, 1.0f, 5).cview());
    w.set_metadata("note\x07", "line\nbreak\x1b[31m");
    w.write(path);
  };
  write(false);
  auto r = run("inspect " + path);
  BOOST_TEST(r.code == 1);
  BOOST_TEST(std::count(r.err.begin(), r.err.end(), '\n') == 1, r.err);
  BOOST_TEST(
      r.err.find("masquant: error: " + path + ": tensor 'p.inputs.text'") != std::string::npos,
      r.err);
  BOOST_TEST(r.err.find("token 1, channel 2") != std::string::npos, r.err);
  write(true);
  r = run("inspect " + path);
  BOOST_TEST(r.code == 1);
  BOOST_TEST(std::count(r.err.begin(), r.err.end(), '\n') == 1, r.err);
  BOOST_TEST(r.err.find("'p.inputs.audio' is I64") != std::string::npos, r.err);
  BOOST_TEST(r.err.find("and 1 more activation tensor that cannot be used") != std::string::npos,
             r.err);
  // Listed past both: q's statistics row is there.
  BOOST_TEST(r.out.find("  q (activations)\n") != std::string::npos, r.out);
  BOOST_TEST(r.out.find("NOT FLOAT") != std::string::npos, r.out);
  BOOST_TEST(r.out.find("NON-FINITE") != std::string::npos, r.out);
  // Escaped, never raw.
  for (const char c : {'\x1b', '\x07', '\r'})
    BOOST_TEST(r.out.find(c) == std::string::npos, "raw control byte " << int(c) << " in:\n"
                                                                       << r.out);
  BOOST_TEST(r.out.find("evil\\x1b[2J\\x0dname.weight") != std::string::npos, r.out);
  BOOST_TEST(r.out.find("note\\x07 = line\\x0abreak\\x1b[31m") != std::string::npos, r.out);
}

// Every layer's tensors are checked (shapes, NaN/Inf) before the first layer is calibrated: a
// NaN in the last layer used to be found only after every earlier layer was calibrated.
BOOST_AUTO_TEST_CASE(every_layer_is_checked_before_the_first_is_calibrated) {
  temp_dir dir, work;
  auto bad = random_layer(8, 6, 24, 7);
  bad.inputs["vision"](23, 7) = std::numeric_limits<float>::quiet_NaN();
  auto wrong = random_layer(8, 6, 24, 8);
  wrong.inputs["audio"] = testing::random_normal(5, 9, 1.0f, 9);  // d_in 9, not 8
  const std::string in = dir.file("in.safetensors"), in2 = dir.file("in2.safetensors");
  write_layers(in,
               {{"a", random_layer(8, 6, 24, 3)}, {"b", random_layer(8, 6, 24, 4)}, {"z", bad}});
  write_layers(in2, {{"a", random_layer(8, 6, 24, 3)}, {"z", wrong}});
  for (const auto& [file, part] : std::vector<std::pair<std::string, std::string>>{
           {in, "'z.inputs.vision'"}, {in2, "'z.inputs.audio' is [5, 9]"}}) {
    const auto r = run("calibrate " + file + " -o " + work.file("m.safetensors"));
    BOOST_TEST(r.code == 1);
    BOOST_TEST(r.err.find(part) != std::string::npos, r.err);
    BOOST_TEST(r.out.empty(), "layers were calibrated first:\n" << r.out);
  }
  BOOST_TEST(work.entries().empty());
}

// Under a memory limit (here `ulimit -v`, the address space): calibrate estimates every layer's
// peak before calibrating the first and refuses one the limit cannot hold, naming the layer,
// the size, its largest phase and the limit; forward names the allocation that failed, its
// size and the layer, instead of printing only std::bad_alloc.
BOOST_AUTO_TEST_CASE(memory_limits_are_named) {
  temp_dir dir, work;
  const std::string in = dir.file("wide.safetensors"), out = work.file("m.safetensors");
  {
    // A 4096 x 4096 layer: calibrate() holds about 0.6 GiB at its peak (the compensation).
    safetensors_writer w;
    w.add("p.weight", testing::random_normal(4096, 4096, 0.05f, 1).cview());
    w.add("p.inputs.text", testing::random_normal(64, 4096, 1.0f, 2).cview());
    w.add("p.inputs.vision", testing::random_normal(64, 4096, 3.0f, 3).cview());
    w.write(in);
  }
  const std::string limit = "ulimit -v 450000;";  // 440 MiB of address space in all
  auto r = run_limited(60, "calibrate " + in + " -o " + out + " --threads 1", "", limit);
  BOOST_TEST(r.code == 1, r.err);
  BOOST_TEST(std::count(r.err.begin(), r.err.end(), '\n') == 1, r.err);
  for (const char* part : {"wide.safetensors: layer 'p' needs about", "compensation phase",
                           "ulimit -v 439.5 MiB", "in use"})
    BOOST_TEST(r.err.find(part) != std::string::npos, part << " missing in: " << r.err);
  BOOST_TEST(work.entries().empty());

  // forward: 400000 tokens through a 1 -> 256 layer need 390.6 MiB of outputs, held twice.
  safetensors_writer mw;
  add_linear(mw, "h", plain_layer(1, 256, 1, 0.5f));
  set_model_metadata(mw, "8");
  const std::string model = dir.file("h.safetensors"), x = dir.file("x.safetensors");
  mw.write(model);
  safetensors_writer xw;
  xw.add("h.inputs.text", matrix<float>(400000, 1, 0.5f).cview());
  xw.write(x);
  r = run_limited(60, "forward " + model + " " + x + " -o " + out + " --threads 1", "", limit);
  BOOST_TEST(r.code == 1, r.err);
  BOOST_TEST(std::count(r.err.begin(), r.err.end(), '\n') == 1, r.err);
  for (const char* part :
       {"tensor 'h.inputs.text' through layer 'h'",
        "out of memory for its 400000 x 256 outputs (390.6 MiB", "ulimit -v 439.5 MiB"})
    BOOST_TEST(r.err.find(part) != std::string::npos, part << " missing in: " << r.err);
  BOOST_TEST(work.entries().empty());
  // Without the limit both run.
  expect_success("forward " + model + " " + x + " -o " + out + " --threads 1");
}

// Flags are checked before any file is read: a bad flag is exit 2 even when the files are bad.
BOOST_AUTO_TEST_CASE(usage_errors_come_first) {
  temp_dir work;
  const std::string none = work.file("none.safetensors"), out = work.file("o.safetensors");
  expect_failure("calibrate " + none + " -o " + out + " --threads -1", 2, {"--threads"}, work);
  expect_failure("calibrate " + none + " -o " + out + " --learning-rate nan", 2,
                 {"--learning-rate"}, work);
  expect_failure("calibrate " + none + " -o " + out + " --seed 99999999999999999999", 2, {"--seed"},
                 work);
  expect_failure("calibrate " + none + " -o " + out + " --reference a.b", 2, {"--reference"}, work);
  expect_failure("forward " + none + " " + none + " -o " + out + " --threads 5000", 2,
                 {"--threads"}, work);
  expect_failure("demo --dim 7", 2, {"--dim"}, work);
  expect_failure("demo --tokens 1e3", 2, {"--tokens"}, work);
  expect_failure("inspect " + none + " " + none, 2, {"takes 1 argument"}, work);
}

BOOST_AUTO_TEST_SUITE_END()

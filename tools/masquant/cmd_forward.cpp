// cmd_forward.cpp: `masquant forward MODEL IN -o OUT` — runs each calibrated layer of MODEL (the
// deployable quantized_linear: packed INT8/INT4 GEMM, per-token smoothing and dynamic
// quantization, low-rank correction) on P.inputs.<modality> of IN, writing P.outputs.<modality>.
#include <cstdio>
#include <masquant/io/linear_file.hpp>
#include <masquant/io/safetensors.hpp>
#include <masquant/layer/quantized_linear.hpp>
#include <string>
#include <vector>

#include "args.hpp"
#include "cli_common.hpp"
#include "command_specs.hpp"
#include "commands.hpp"
#include "layers.hpp"
#include "progress.hpp"

namespace masquant::cli {

int run_forward(const std::vector<std::string>& words) {
  if (wants_help(words)) {
    std::fputs(help_text(forward_spec).c_str(), stdout);
    return exit_ok;
  }
  const auto args = parse(forward_spec, words);
  if (!args.has("output")) throw usage_error("missing -o OUT.safetensors");
  const int threads = static_cast<int>(args.get_int("threads", default_threads, 0, 4096));
  thread_pool pool(threads);
  forward_options opt;
  opt.parallel = pool.as_function();

  const safetensors_file model(args.positional()[0]);
  const model_metadata meta = read_model_metadata(model);
  const auto model_layers = find_layers(model);

  const safetensors_file in(args.positional()[1]);
  const auto in_layers = find_layers(in);
  safetensors_writer out;
  progress_bar bar;
  std::size_t done = 0, layers = 0;
  for (const auto& [prefix, e] : in_layers) layers += e.inputs.empty() ? 0 : 1;
  MASQUANT_CHECK(layers > 0, errc::format_error, in.source(),
                 ": no activations to run (no tensor named P.inputs.<modality>)");
  for (const auto& [prefix, e] : in_layers) {
    if (e.inputs.empty()) continue;
    const auto m = model_layers.find(prefix);
    MASQUANT_CHECK(m != model_layers.end() && !m->second.qweight.empty(), errc::format_error,
                   in.source(), ": tensor '", e.inputs.begin()->second,
                   "' has no calibrated layer '", prefix, "' in ", model.source());
    const quantized_linear linear(
        load_linear(model, prefix, meta.reference, meta.wbits, meta.abits));
    const auto& names = linear.params().modality_names;
    for (const auto& [modality, name] : e.inputs) {
      bar.update(prefix, double(done) / double(layers), modality);
      const auto it = std::find(names.begin(), names.end(), modality);
      if (it == names.end()) {
        std::string known;
        for (const auto& n : names) known += (known.empty() ? "" : ", ") + n;
        raise(errc::out_of_range, detail::cat(in.source(), ": modality '", modality, "' (tensor '",
                                              name, "') was not calibrated for layer '", prefix,
                                              "' (calibrated: ", known, ")"));
      }
      const auto& info = in.info(name);
      MASQUANT_CHECK(info.shape.rank() == 2 && info.shape[1] == linear.d_in(), errc::format_error,
                     in.source(), ": tensor '", name, "' is ", info.shape, ", expected [tokens, ",
                     linear.d_in(), "]");
      const auto x = in.view_f32(name);
      std::vector<float> y(static_cast<std::size_t>(x.rows() * linear.d_out()));
      const std::vector<modality_id> ids(static_cast<std::size_t>(x.rows()),
                                         static_cast<modality_id>(it - names.begin()));
      detail::with_context(detail::cat("tensor '", name, "'"), [&] {
        linear.forward(x.matrix(), ids, matrix_view<float>(y.data(), x.rows(), linear.d_out()),
                       opt);
      });
      out.add(detail::cat(prefix, ".outputs.", modality),
              matrix_view<const float>(y.data(), x.rows(), linear.d_out()));
    }
    ++done;
  }
  bar.finish();
  out.set_metadata("format", "masquant-outputs");
  out.write(args.get("output"));
  std::printf("wrote %s (%zu layers)\n", args.get("output").c_str(), layers);
  return exit_ok;
}

}  // namespace masquant::cli

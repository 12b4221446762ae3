// cmd_forward.cpp: `masquant forward MODEL IN -o OUT` — runs each calibrated layer of MODEL (the
// deployable quantized_linear: packed INT8/INT4 GEMM, per-token smoothing and dynamic
// quantization, low-rank correction) on P.inputs.<modality> of IN, writing P.outputs.<modality>.
#include <cstdint>
#include <cstdio>
#include <masquant/io/linear_file.hpp>
#include <masquant/io/safetensors.hpp>
#include <masquant/layer/quantized_linear.hpp>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "args.hpp"
#include "cli_common.hpp"
#include "command_specs.hpp"
#include "commands.hpp"
#include "file_args.hpp"
#include "layers.hpp"
#include "memory_limit.hpp"
#include "progress.hpp"
#include "threads.hpp"

namespace masquant::cli {

namespace {

/// "; this process may use 1.2 GiB more (ulimit -v ...)", or nothing without a limit.
std::string memory_note() {
  const auto headroom = memory_available();
  if (!headroom) return {};
  return detail::cat("; this process may use ", format_bytes(headroom->available), " more (",
                     headroom->limit, ")");
}

}  // namespace

int run_forward(const std::vector<std::string>& words) {
  if (wants_help(words)) {
    std::fputs(help_text(forward_spec).c_str(), stdout);
    return exit_ok;
  }
  const auto args = parse(forward_spec, words);
  if (!args.has("output")) throw usage_error("missing -o OUT.safetensors");
  (void)args.get_int("threads", 0, 0, 4096);  // a usage error before the files are checked
  check_file_args({{"MODEL", args.positional()[0], false},
                   {"IN", args.positional()[1], false},
                   {"-o", args.get("output"), true}});
  thread_pool pool(thread_count(args));
  forward_options opt;
  opt.parallel = pool.as_function();

  const safetensors_file model(args.positional()[0]);
  const linear_file_metadata meta = read_model_metadata(model);
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
    std::optional<quantized_linear> loaded;
    try {
      loaded.emplace(
          load_linear(model, prefix, meta.reference, meta.weight_bits, meta.activation_bits));
    } catch (const std::bad_alloc&) {
      throw std::runtime_error(detail::cat(model.source(), ": out of memory loading layer '",
                                           prefix, "'", memory_note()));
    }
    const quantized_linear& linear = *loaded;
    const auto& names = linear.modality_names();
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
      const std::string where = detail::cat(in.source(), ": tensor '", name, "' through layer '",
                                            prefix, "' of ", model.source());
      const index_t rows = info.shape[0];
      try {
        const auto x = in.view_f32(name);
        std::vector<float> y(static_cast<std::size_t>(rows * linear.d_out()));
        const std::vector<modality_id> ids(static_cast<std::size_t>(rows),
                                           static_cast<modality_id>(it - names.begin()));
        detail::with_context(where, [&] {
          linear.forward(x.matrix(), ids, matrix_view<float>(y.data(), rows, linear.d_out()), opt);
        });
        out.add(detail::cat(prefix, ".outputs.", modality),
                matrix_view<const float>(y.data(), rows, linear.d_out()));
      } catch (const std::bad_alloc&) {
        // The outputs (rows x d_out floats), their copy in the writer until OUT is written, and
        // a float copy of x when it is not stored as F32.
        const std::uint64_t bytes =
            static_cast<std::uint64_t>(rows) * static_cast<std::uint64_t>(linear.d_out()) * 4;
        throw std::runtime_error(detail::cat(where, ": out of memory for its ", rows, " x ",
                                             linear.d_out(), " outputs (", format_bytes(bytes),
                                             ", held twice until OUT is written)", memory_note()));
      }
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

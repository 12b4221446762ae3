// calibrate.cpp: masquant.calibrate (from tokens or statistics) and masquant.QuantizedLinear,
// the deployable layer.
#include <masquant/calibrate/calibrate.hpp>
#include <masquant/layer/quantized_linear.hpp>
#include <masquant/model/settings.hpp>
#include <masquant/stats/statistics_set.hpp>

#include "common.hpp"

namespace masquant::python {

namespace {

// A deployable layer and the threads its forward runs on.
struct linear {
  std::shared_ptr<const quantized_linear> layer;
  int threads = 1;
  std::shared_ptr<thread_holder> pool;

  const parallel_for_fn& parallel() {
    if (!pool) pool = std::make_shared<thread_holder>(make_threads(threads));
    return pool->fn;
  }
};

py::array_t<float> copy_matrix(const float* data, index_t rows, index_t cols) {
  py::array_t<float> out({rows, cols});
  std::copy(data, data + rows * cols, out.mutable_data());
  return out;
}

py::array_t<float> forward(linear& self, py::handle x, py::handle ids, bool skip_lowrank) {
  const quantized_linear& l = *self.layer;
  const float_matrix xm = as_float_matrix(x, "x", l.d_in());
  const modality_ids id = as_modality_ids(ids, "ids", xm.view.rows(), l.modalities(), true);
  py::array_t<float> y({xm.view.rows(), l.d_out()});
  forward_options opt;
  opt.parallel = self.parallel();
  opt.skip_lowrank = skip_lowrank;
  {
    py::gil_scoped_release unlocked;
    l.forward(xm.view, id.view, matrix_view<float>(y.mutable_data(), xm.view.rows(), l.d_out()),
              opt);
  }
  return y;
}

// Sample tokens with their ids, gathered per modality (calibrate's modality_inputs).
struct gathered {
  std::vector<row_matrix<float>> blocks;
  modality_inputs inputs;
};

gathered gather(const float_matrix& x, const modality_ids& ids, index_t modalities) {
  gathered g;
  g.blocks.resize(static_cast<std::size_t>(modalities));
  std::vector<index_t> counts(static_cast<std::size_t>(modalities), 0);
  for (index_t i = 0; i < ids.view.size(); ++i) ++counts[ids.view[i]];
  for (index_t m = 0; m < modalities; ++m)
    g.blocks[std::size_t(m)].resize(counts[std::size_t(m)], x.view.cols());
  std::vector<index_t> filled(static_cast<std::size_t>(modalities), 0);
  for (index_t i = 0; i < x.view.rows(); ++i) {
    const auto m = ids.view[i];
    std::copy(x.view.row_data(i), x.view.row_data(i) + x.view.cols(),
              g.blocks[m].row(filled[m]++).data());
  }
  for (auto& b : g.blocks)
    g.inputs.push_back(matrix_view<const float>(b.data(), b.rows(), x.view.cols()));
  return g;
}

}  // namespace

linear_settings settings_from_kwargs(const py::dict& kwargs, const char* op) {
  linear_settings s;
  for (const auto& [k, v] : kwargs) {
    const auto key = k.cast<std::string>();
    const auto as_int = [&] { return v.cast<std::int64_t>(); };
    if (key == "wbits") {
      s.wbits = static_cast<int>(as_int());
    } else if (key == "abits") {
      s.abits = static_cast<int>(as_int());
    } else if (key == "method") {
      s.method = v.cast<std::string>();
    } else if (key == "alpha") {
      s.alpha = py::isinstance<py::str>(v) ? v.cast<std::string>()
                                           : detail::exact_number_text(v.cast<double>());
    } else if (key == "learn_steps") {
      s.learn_steps = as_int();
    } else if (key == "learning_rate") {
      s.learning_rate = v.cast<double>();
    } else if (key == "batch_tokens") {
      s.batch_tokens = as_int();
    } else if (key == "rank") {
      s.rank = v.cast<double>();
    } else if (key == "min_rank") {
      s.min_rank = as_int();
    } else if (key == "whiten") {
      s.whiten = v.cast<std::string>();
    } else if (key == "damping") {
      s.damping = v.cast<double>();
    } else if (key == "quantized_compensation") {
      s.quantized_compensation = v.cast<bool>();
    } else if (key == "seed") {
      s.seed = as_int();
    } else {
      throw py::type_error(std::string(op) + "() got an unexpected keyword argument '" + key +
                           "' (settings: wbits, abits, method, alpha, learn_steps, "
                           "learning_rate, batch_tokens, rank, min_rank, whiten, damping, "
                           "quantized_compensation, seed)");
    }
  }
  s.validate(op, false);
  return s;
}

py::dict report_dict(const calibration_report& r) {
  py::dict out;
  out["rank"] = r.rank;
  py::list mods;
  for (const auto& m : r.modalities) {
    py::dict d;
    d["name"] = m.name;
    d["tokens"] = m.tokens;
    d["scores"] = to_string(m.scores);
    py::dict sqnr;
    for (int s = 0; s < report_stage_count; ++s)
      sqnr[to_string(static_cast<report_stage>(s))] = m.sqnr_db[std::size_t(s)];
    d["sqnr_db"] = sqnr;
    d["alpha"] = m.alpha;
    d["rank"] = m.rank;
    d["effective_rank"] = m.effective_rank;
    d["damping"] = m.damping;
    mods.append(d);
  }
  out["modalities"] = mods;
  py::dict learning;
  learning["steps"] = r.learning.steps;
  learning["initial_loss"] = r.learning.initial_loss;
  learning["final_loss"] = r.learning.final_loss;
  out["learning"] = learning;
  py::list skipped;
  for (const auto& s : r.skipped) skipped.append(py::make_tuple(to_string(s.phase), s.reason));
  out["skipped"] = skipped;
  out["seconds"] = r.seconds.total;
  return out;
}

py::object make_linear(quantized_linear_params params) {
  linear l;
  l.layer = std::make_shared<const quantized_linear>(std::move(params));
  return py::cast(std::move(l));
}

void register_calibrate(py::module_& m) {
  py::class_<linear>(m, "QuantizedLinear", R"(
The deployable MASQuant linear: per-token modality smoothing fused into dynamic activation
quantization, one INT8/INT4 GEMM with the shared weight, and the low-rank correction on
non-reference tokens. Made by calibrate() or QuantizedCheckpoint.linear().)")
      .def_property_readonly("d_in", [](const linear& l) { return l.layer->d_in(); })
      .def_property_readonly("d_out", [](const linear& l) { return l.layer->d_out(); })
      .def_property_readonly("modalities",
                             [](const linear& l) { return l.layer->modality_names(); })
      .def_property_readonly("weight_bits", [](const linear& l) { return l.layer->weight_bits(); })
      .def_property_readonly("activation_bits",
                             [](const linear& l) { return l.layer->activation_bits(); })
      .def_property(
          "threads", [](const linear& l) { return l.threads; },
          [](linear& l, int t) {
            if (t < 0) throw py::value_error("threads must be >= 0");
            l.threads = t;
            l.pool.reset();
          },
          "Threads forward() runs on (1: the calling thread; 0: every CPU).")
      .def(
          "rank", [](const linear& l, index_t m) { return l.layer->rank(m); }, py::arg("modality"))
      .def_property_readonly("qweight",
                             [](const linear& l) {
                               const auto& q = *l.layer;
                               py::array_t<std::int8_t> out({q.d_out(), q.d_in()});
                               std::int8_t* dst = out.mutable_data();
                               for (index_t n = 0; n < q.d_out(); ++n)
                                 for (index_t k = 0; k < q.d_in(); ++k)
                                   *dst++ = q.weight_level(n, k);
                               return out;
                             })
      .def_property_readonly("wscale",
                             [](const linear& l) {
                               const auto w = l.layer->wscale();
                               return py::array_t<float>(static_cast<py::ssize_t>(w.size()),
                                                         w.data());
                             })
      .def_property_readonly("bias",
                             [](const linear& l) -> py::object {
                               const auto b = l.layer->bias();
                               if (b.empty()) return py::none();
                               return py::array_t<float>(static_cast<py::ssize_t>(b.size()),
                                                         b.data());
                             })
      .def_property_readonly("smooth",
                             [](const linear& l) {
                               const auto& q = *l.layer;
                               py::array_t<float> out({q.modalities(), q.d_in()});
                               for (index_t m = 0; m < q.modalities(); ++m) {
                                 const auto s = q.smooth(m);
                                 std::copy(s.data(), s.data() + s.size(), out.mutable_data(m, 0));
                               }
                               return out;
                             })
      .def(
          "lowrank",
          [](const linear& l, index_t m) -> py::object {
            if (!l.layer->has_lowrank(m)) return py::none();
            const lowrank_factors f = l.layer->lowrank(m);
            return py::make_tuple(copy_matrix(f.L.data(), f.L.rows(), f.L.cols()),
                                  copy_matrix(f.R.data(), f.R.rows(), f.R.cols()));
          },
          py::arg("modality"), "(L [d_in, r], R [r, d_out]) of a modality, or None.")
      .def_property_readonly(
          "lowrank_uses_bf16", [](const linear& l) { return l.layer->lowrank_uses_bf16(); },
          "Whether forward computes the low-rank branch with bf16 dot products (AVX512_BF16 CPUs, "
          "factors stored as bf16): x / s and x / s @ L are then rounded to bf16, a relative "
          "error of about 2^-8 of the correction.")
      .def("forward", &forward, py::arg("x"), py::arg("ids") = py::none(),
           py::arg("skip_lowrank") = false,
           "y = layer(x): x float32 [n, d_in] (viewed in place when C-contiguous), ids the "
           "modality of each token (integers [n]; None: every token takes the reference path). "
           "Returns float32 [n, d_out]. Runs without the GIL.")
      .def(
          "reference_forward",
          [](const linear& self, py::handle x, py::handle ids) {
            const quantized_linear& l = *self.layer;
            const float_matrix xm = as_float_matrix(x, "x", l.d_in());
            const modality_ids id =
                as_modality_ids(ids, "ids", xm.view.rows(), l.modalities(), true);
            py::array_t<double> y({xm.view.rows(), l.d_out()});
            py::gil_scoped_release unlocked;
            l.reference_forward(xm.view, id.view,
                                matrix_view<double>(y.mutable_data(), xm.view.rows(), l.d_out()));
            return y;
          },
          py::arg("x"), py::arg("ids") = py::none(), "The same math in float64 (validation).");

  py::class_<calibration_result>(m, "Calibration", "What calibrate() returns.")
      .def_property_readonly("linear",
                             [](const calibration_result& r) { return make_linear(r.params); })
      .def_property_readonly("report",
                             [](const calibration_result& r) { return report_dict(r.report); })
      .def_property_readonly("merged_factor", [](const calibration_result& r) {
        return py::array_t<float>(static_cast<py::ssize_t>(r.merged_factor.size()),
                                  r.merged_factor.data());
      });

  m.def(
      "_calibrate",
      [](py::handle weight, py::handle bias, py::handle tokens, py::handle ids,
         py::handle statistics, const std::string& input, std::vector<std::string> modalities,
         int threads, bool report, const py::dict& settings) {
        const linear_settings s = settings_from_kwargs(settings, "calibrate");
        calibration_config config = s.partial_config();
        config.report = report;
        const thread_holder pool = make_threads(threads);
        config.parallel = pool.fn;
        const float_matrix w = as_float_matrix(weight, "weight");
        const float_vector b = as_float_vector(bias, "bias", true);
        if (statistics.is_none()) {
          if (tokens.is_none()) throw py::type_error("calibrate: give tokens= or statistics=");
          const float_matrix x = as_float_matrix(tokens, "tokens", w.view.cols());
          index_t nm = static_cast<index_t>(modalities.size());
          if (nm == 0) nm = 256;
          const modality_ids id = as_modality_ids(ids, "ids", x.view.rows(), nm);
          py::gil_scoped_release unlocked;
          return calibrate(w.view, b.view, x.view, id.view, config, std::move(modalities));
        }
        std::vector<std::string> names;
        const modality_stats& stats = statistics_record(statistics, input, names);
        if (!modalities.empty() && modalities != names)
          throw py::value_error("calibrate: modalities differ from the statistics' (" +
                                statistics_set::join(names) + ")");
        gathered sample;
        if (!tokens.is_none()) {
          const float_matrix x = as_float_matrix(tokens, "tokens", w.view.cols());
          const modality_ids id =
              as_modality_ids(ids, "ids", x.view.rows(), static_cast<index_t>(names.size()));
          sample = gather(x, id, static_cast<index_t>(names.size()));
        }
        py::gil_scoped_release unlocked;
        return calibrate(w.view, b.view, stats, config, std::move(names), sample.inputs);
      },
      py::arg("weight"), py::arg("bias"), py::arg("tokens"), py::arg("ids"), py::arg("statistics"),
      py::arg("input"), py::arg("modalities"), py::arg("threads"), py::arg("report"),
      py::arg("settings"));
}

}  // namespace masquant::python

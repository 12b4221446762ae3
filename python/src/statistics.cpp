// statistics.cpp: masquant.Statistics (a statistics_set: per-input, per-modality accumulators)
// and the statistics files.
#include <masquant/io/safetensors_writer.hpp>
#include <masquant/io/statistics_file.hpp>
#include <masquant/stats/statistics_set.hpp>

#include "common.hpp"

namespace masquant::python {

namespace {

gram_mode parse_gram(py::handle g) {
  if (py::isinstance<py::bool_>(g))
    return g.cast<bool>() ? gram_mode::non_reference : gram_mode::none;
  const auto s = g.cast<std::string>();
  if (s == "none") return gram_mode::none;
  if (s == "non_reference") return gram_mode::non_reference;
  if (s == "all") return gram_mode::all;
  throw py::value_error("gram: '" + s + "' is not none, non_reference or all (or a bool)");
}

// The statistics of a set, with the threads its accumulation runs on.
struct statistics {
  statistics_set set;
  int threads = 1;
  std::shared_ptr<thread_holder> pool;

  const parallel_for_fn& parallel() {
    if (!pool) pool = std::make_shared<thread_holder>(make_threads(threads));
    return pool->fn;
  }

  void add(const std::string& input, py::handle x, py::handle ids, py::handle gram) {
    const gram_mode mode = parse_gram(gram);
    const float_matrix xm = as_float_matrix(x, "x");
    const modality_ids id =
        as_modality_ids(ids, "ids", xm.view.rows(), static_cast<index_t>(set.modalities().size()));
    if (input.empty()) throw py::value_error("Statistics.add: empty input name");
    const parallel_for_fn& par = parallel();
    const modality_stats* existing = set.find(input);
    if (existing != nullptr && existing->channels() != xm.view.cols())
      throw py::value_error("Statistics.add: input '" + input + "' has " +
                            std::to_string(existing->channels()) + " channels, x has " +
                            std::to_string(xm.view.cols()));
    py::gil_scoped_release unlocked;
    if (existing != nullptr) {
      set.record(input, xm.view.cols(), mode).add(xm.view, id.view, par);
    } else {
      // A new record enters the set only once its first block is in: a failed add leaves
      // nothing behind.
      modality_stats fresh(xm.view.cols(), static_cast<index_t>(set.modalities().size()), mode);
      fresh.add(xm.view, id.view, par);
      set.insert(input, std::move(fresh));
    }
  }
};

const modality_stats& record_of(const statistics& s, const std::string& input) {
  return s.set.at(input);
}

}  // namespace

void register_statistics(py::module_& m) {
  py::class_<statistics, std::shared_ptr<statistics>>(m, "Statistics", R"(
Per-modality statistics of the inputs of a model's linears (a statistics_set): for each input
name and modality, the token count, per-channel min/max/mean/variance and, where asked, the Gram
matrix XᵀX. Accumulate with add(), combine with merge(), store with save(); a statistics file is
what `masquant stats merge` and quantize_checkpoint() read.)")
      .def(py::init([](std::vector<std::string> modalities, int threads) {
             if (threads < 0) throw py::value_error("threads must be >= 0");
             auto s = std::make_shared<statistics>();
             s->set = statistics_set(std::move(modalities));
             s->threads = threads;
             return s;
           }),
           py::arg("modalities"), py::arg("threads") = 1,
           "modalities: names in id order, the reference (text) first. threads: for add() (0: "
           "every CPU).")
      .def_property_readonly("modalities", [](const statistics& s) { return s.set.modalities(); })
      .def("inputs",
           [](const statistics& s) {
             std::vector<std::string> out;
             for (const auto& kv : s.set.records()) out.push_back(kv.first);
             return out;
           })
      .def("__len__", [](const statistics& s) { return s.set.size(); })
      .def("__contains__", [](const statistics& s,
                              const std::string& input) { return s.set.find(input) != nullptr; })
      .def("add", &statistics::add, py::arg("input"), py::arg("x"), py::arg("ids"),
           py::arg("gram") = "non_reference",
           "Adds tokens x (float32 [n, d], viewed in place when C-contiguous) with their modality "
           "ids (integers [n]) to the record `input`. gram (for a new record): 'non_reference' "
           "(default; what compensation needs), 'all' or 'none'. Runs without the GIL.")
      .def(
          "merge",
          [](statistics& s, const statistics& other) {
            py::gil_scoped_release unlocked;
            s.set.merge(other.set);
          },
          py::arg("other"), "Adds every record of `other` (same modalities) to this set, exactly.")
      .def(
          "channels",
          [](const statistics& s, const std::string& input) {
            return record_of(s, input).channels();
          },
          py::arg("input"))
      .def(
          "tokens",
          [](const statistics& s, const std::string& input) {
            const modality_stats& r = record_of(s, input);
            py::dict out;
            for (index_t m = 0; m < r.modalities(); ++m)
              out[py::str(s.set.modalities()[std::size_t(m)])] =
                  r[static_cast<modality_id>(m)].count();
            return out;
          },
          py::arg("input"), "Token count of each modality, by name.")
      .def(
          "absmax",
          [](const statistics& s, const std::string& input) {
            const modality_stats& r = record_of(s, input);
            py::array_t<double> out({r.modalities(), r.channels()});
            auto w = out.mutable_unchecked<2>();
            for (index_t m = 0; m < r.modalities(); ++m) {
              const Eigen::VectorXd a = r[static_cast<modality_id>(m)].absmax();
              for (index_t j = 0; j < r.channels(); ++j) w(m, j) = a[j];
            }
            return out;
          },
          py::arg("input"), "Per-channel absmax, float64 [modalities, channels].")
      .def(
          "save",
          [](const statistics& s, const std::string& path) {
            py::gil_scoped_release unlocked;
            save_statistics(s.set, path);
          },
          py::arg("path"), "Writes a statistics file (atomically: all or nothing).")
      .def_static(
          "load",
          [](const std::string& path, int threads) {
            auto s = std::make_shared<statistics>();
            s->threads = threads;
            py::gil_scoped_release unlocked;
            s->set = statistics_file(path).load_all();
            return s;
          },
          py::arg("path"), py::arg("threads") = 1, "Reads a whole statistics file.");

  m.def(
      "merge_statistics_files",
      [](const std::vector<std::string>& inputs, const std::string& output) {
        py::gil_scoped_release unlocked;
        merge_statistics_files(inputs, output);
      },
      py::arg("inputs"), py::arg("output"),
      "Merges statistics files into one, one record in memory at a time (as `masquant stats "
      "merge`).");

  m.def(
      "save_tensors",
      [](const std::string& path, const py::dict& tensors, const py::dict& metadata) {
        // Every array is read (and checked) before the file is written.
        std::vector<std::pair<std::string, float_matrix>> matrices;
        std::vector<std::pair<std::string, float_vector>> vectors;
        for (const auto& [k, v] : tensors) {
          const auto name = k.cast<std::string>();
          if (py::isinstance<py::array>(v) && py::reinterpret_borrow<py::array>(v).ndim() == 1)
            vectors.emplace_back(name, as_float_vector(v, name.c_str()));
          else
            matrices.emplace_back(name, as_float_matrix(v, name.c_str()));
        }
        safetensors_writer out;
        for (const auto& [k, v] : metadata)
          out.set_metadata(k.cast<std::string>(), v.cast<std::string>());
        py::gil_scoped_release unlocked;
        for (const auto& [name, a] : matrices) out.add(name, a.view);
        for (const auto& [name, a] : vectors) out.add(name, a.view);
        out.write(path);
      },
      py::arg("path"), py::arg("tensors"), py::arg("metadata") = py::dict(),
      "Writes float32 1-D and 2-D arrays to a safetensors file (atomically), e.g. a token sample "
      "(K.inputs.<modality> [tokens, d_in]) for quantize_checkpoint(tokens=...).");
}

// For calibrate.cpp: the record of a Statistics object.
const modality_stats& statistics_record(py::handle obj, const std::string& input,
                                        std::vector<std::string>& modalities) {
  const auto& s = obj.cast<const statistics&>();
  modalities = s.set.modalities();
  if (input.empty()) {
    if (s.set.size() != 1)
      throw py::value_error("calibrate: the statistics hold " + std::to_string(s.set.size()) +
                            " inputs; name one with input=");
    return s.set.records().begin()->second;
  }
  return s.set.at(input);
}

}  // namespace masquant::python

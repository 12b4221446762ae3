// common.hpp: what every part of the extension masquant._masquant shares — numpy arrays as
// library views (zero-copy where the layout allows), modality ids, thread pools, and the
// registration functions of the parts (module.cpp, statistics.cpp, calibrate.cpp,
// checkpoint.cpp).
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <masquant/modality/modality.hpp>
#include <masquant/parallel.hpp>
#include <masquant/tensor/view.hpp>
#include <memory>
#include <string>
#include <vector>

namespace masquant {
class modality_stats;
struct calibration_report;
struct quantized_linear_params;
struct linear_settings;
}  // namespace masquant

namespace masquant::python {

namespace py = pybind11;

/// A float32 [rows, cols] matrix read from a numpy array. `keep` owns (or references) the data
/// that `view` points into; it must outlive every use of `view`.
struct float_matrix {
  py::array keep;
  matrix_view<const float> view;
};

/// Reads `obj` as a 2-D float32 array named `what` in messages. A C-contiguous float32 array is
/// used in place; a non-contiguous one is copied, with a masquant.CopyWarning; any other dtype
/// is a TypeError (converting silently would hide a copy and a rounding), any other rank a
/// ValueError. `cols` >= 0 also requires that width (ValueError naming both).
float_matrix as_float_matrix(py::handle obj, const char* what, index_t cols = -1);

/// The same for a 1-D float32 vector (an empty vector for None when `optional`).
struct float_vector {
  py::array keep;
  vector_view<const float> view;
};
float_vector as_float_vector(py::handle obj, const char* what, bool optional = false);

/// Modality ids of `rows` tokens from a 1-D integer array (any integer dtype; uint8 C-contiguous
/// is used in place), or, when `obj` is None and `allow_none`, no ids. Values must lie in
/// [0, modalities): ValueError naming the first that does not (nothing is computed then).
struct modality_ids {
  py::array keep;
  std::vector<modality_id> copy;
  vector_view<const modality_id> view;
};
modality_ids as_modality_ids(py::handle obj, const char* what, index_t rows, index_t modalities,
                             bool allow_none = false);

/// A parallel_for_fn over `threads` threads (0: every CPU this process may run on; 1: serial,
/// the empty function). The pool lives as long as the returned holder.
struct thread_holder {
  std::unique_ptr<thread_pool> pool;
  parallel_for_fn fn;
};
thread_holder make_threads(int threads);

/// The record `input` of a masquant.Statistics object (its only record when `input` is empty),
/// and the set's modality names. Throws ValueError / masquant errors naming what is missing.
const modality_stats& statistics_record(py::handle statistics, const std::string& input,
                                        std::vector<std::string>& modalities);

/// A calibration report as a dict (docs/python.md, "Reports").
py::dict report_dict(const calibration_report& report);

/// A masquant.QuantizedLinear owning `params`.
py::object make_linear(quantized_linear_params params);

/// Recipe settings from keyword arguments (wbits=8, method="mas", alpha="auto", ...): the
/// fields of linear_settings by their recipe names; TypeError for an unknown one.
linear_settings settings_from_kwargs(const py::dict& kwargs, const char* op);

/// The masquant.CopyWarning category (a UserWarning).
py::handle copy_warning();

void register_errors(py::module_& m);
void register_statistics(py::module_& m);
void register_calibrate(py::module_& m);
void register_checkpoint(py::module_& m);

}  // namespace masquant::python

// module.cpp: the extension masquant._masquant — errors, numpy arrays as views, threads; the
// parts register the rest (common.hpp).
#include <sched.h>

#include <algorithm>
#include <array>
#include <masquant/error.hpp>
#include <masquant/isa.hpp>
#include <masquant/version.hpp>
#include <thread>

#include "common.hpp"

namespace masquant::python {

namespace {

// The Python class of each errc, by its value; index 0 is masquant.Error, the base of all.
std::array<PyObject*, 10> error_classes{};
PyObject* copy_warning_class = nullptr;

struct error_class {
  errc code;
  const char* name;
  PyObject* builtin;  // the built-in exception it also is, so plain `except ValueError` works
};

const error_class error_table[] = {
    {errc::invalid_argument, "InvalidArgument", PyExc_ValueError},
    {errc::shape_mismatch, "ShapeMismatch", PyExc_ValueError},
    {errc::non_finite, "NonFinite", PyExc_ValueError},
    {errc::out_of_range, "OutOfRange", PyExc_ValueError},
    {errc::overflow, "Overflow", PyExc_OverflowError},
    {errc::numerical_issue, "NumericalIssue", PyExc_ArithmeticError},
    {errc::io_error, "FileError", PyExc_OSError},
    {errc::format_error, "FormatError", PyExc_ValueError},
    {errc::not_supported, "NotSupported", PyExc_NotImplementedError},
};

PyObject* new_class(py::module_& m, const char* name, PyObject* bases, const char* doc) {
  const std::string full = std::string("masquant.") + name;
  PyObject* cls = PyErr_NewExceptionWithDoc(full.c_str(), doc, bases, nullptr);
  if (cls == nullptr) throw py::error_already_set();
  m.attr(name) = py::handle(cls);
  return cls;
}

// Views need data aligned for their type: numpy's allocations are, a slice may not be.
template <class T>
bool aligned(const py::array& a) {
  return reinterpret_cast<std::uintptr_t>(a.data()) % alignof(T) == 0;
}

// `obj` as an array of T; anything else is a TypeError.
template <class T>
py::array array_of(py::handle obj, const char* what, const char* dtype_name) {
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(std::string(what) + ": expected a numpy.ndarray of " + dtype_name +
                         ", got " + std::string(py::str(py::type::of(obj).attr("__name__"))) +
                         " (use numpy.asarray, or tensor.numpy() for a torch tensor)");
  auto a = py::reinterpret_borrow<py::array>(obj);
  if (!a.dtype().is(py::dtype::of<T>()))
    throw py::type_error(std::string(what) + ": dtype " + std::string(py::str(a.dtype())) +
                         ", expected " + dtype_name + " (convert with .astype(numpy." + dtype_name +
                         "))");
  return a;
}

// `a` itself when it is C-contiguous and aligned, else a copy with a CopyWarning (the caller
// asked for a zero-copy call).
template <class T>
py::array contiguous(const py::array& a, const char* what) {
  if ((a.flags() & py::array::c_style) && aligned<T>(a)) return a;
  const std::string msg = std::string("masquant: ") + what +
                          " is not C-contiguous; copied (pass numpy.ascontiguousarray(" + what +
                          ") to avoid the copy)";
  if (PyErr_WarnEx(copy_warning_class, msg.c_str(), 1) != 0) throw py::error_already_set();
  return py::array_t<T, py::array::c_style | py::array::forcecast>::ensure(a);
}

}  // namespace

py::handle copy_warning() {
  return copy_warning_class;
}

float_matrix as_float_matrix(py::handle obj, const char* what, index_t cols) {
  py::array a = array_of<float>(obj, what, "float32");
  if (a.ndim() != 2)
    throw py::value_error(std::string(what) + ": expected a 2-D array [tokens, channels], got " +
                          std::to_string(a.ndim()) + " dimensions");
  const auto rows = static_cast<index_t>(a.shape(0)), width = static_cast<index_t>(a.shape(1));
  if (cols >= 0 && width != cols)
    throw py::value_error(std::string(what) + ": " + std::to_string(rows) + "x" +
                          std::to_string(width) + " but " + std::to_string(cols) +
                          " columns are expected");
  a = contiguous<float>(a, what);
  const auto* data = static_cast<const float*>(a.data());
  return {a, matrix_view<const float>(data, rows, width)};
}

float_vector as_float_vector(py::handle obj, const char* what, bool optional) {
  if (obj.is_none() && optional) return {};
  py::array a = array_of<float>(obj, what, "float32");
  if (a.ndim() != 1)
    throw py::value_error(std::string(what) + ": expected a 1-D array, got " +
                          std::to_string(a.ndim()) + " dimensions");
  a = contiguous<float>(a, what);
  return {a, vector_view<const float>(static_cast<const float*>(a.data()),
                                      static_cast<index_t>(a.shape(0)))};
}

modality_ids as_modality_ids(py::handle obj, const char* what, index_t rows, index_t modalities,
                             bool allow_none) {
  modality_ids out;
  if (obj.is_none()) {
    if (allow_none) return out;
    throw py::type_error(std::string(what) + ": modality ids are required");
  }
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(std::string(what) + ": expected a numpy.ndarray of integer modality ids" +
                         ", got " + std::string(py::str(py::type::of(obj).attr("__name__"))));
  auto a = py::reinterpret_borrow<py::array>(obj);
  const char kind = a.dtype().kind();
  if (kind != 'i' && kind != 'u' && kind != 'b')
    throw py::type_error(std::string(what) + ": dtype " + std::string(py::str(a.dtype())) +
                         ", expected an integer dtype (modality ids)");
  if (a.ndim() != 1)
    throw py::value_error(std::string(what) + ": expected a 1-D array of modality ids, got " +
                          std::to_string(a.ndim()) + " dimensions");
  if (static_cast<index_t>(a.shape(0)) != rows)
    throw py::value_error(std::string(what) + ": " + std::to_string(a.shape(0)) +
                          " modality ids for " + std::to_string(rows) + " tokens");
  // Any integer dtype, read as int64 (a copy unless it is uint8 already), checked before use.
  if (a.dtype().is(py::dtype::of<std::uint8_t>()) && (a.flags() & py::array::c_style)) {
    out.keep = a;
    out.view = vector_view<const modality_id>(static_cast<const modality_id*>(a.data()), rows);
  } else {
    auto wide = py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>::ensure(a);
    if (!wide) throw py::error_already_set();
    const std::int64_t* v = wide.data();
    out.copy.resize(static_cast<std::size_t>(rows));
    for (index_t i = 0; i < rows; ++i) {
      if (v[i] < 0 || v[i] >= modalities)
        throw py::value_error(std::string(what) + ": token " + std::to_string(i) +
                              " has modality id " + std::to_string(v[i]) + " but only " +
                              std::to_string(modalities) + " modalities are known");
      out.copy[std::size_t(i)] = static_cast<modality_id>(v[i]);
    }
    out.view = vector_view<const modality_id>(out.copy.data(), rows);
    return out;
  }
  for (index_t i = 0; i < rows; ++i)
    if (out.view[i] >= modalities)
      throw py::value_error(std::string(what) + ": token " + std::to_string(i) +
                            " has modality id " + std::to_string(int(out.view[i])) + " but only " +
                            std::to_string(modalities) + " modalities are known");
  return out;
}

thread_holder make_threads(int threads) {
  if (threads < 0) throw py::value_error("threads must be >= 0, got " + std::to_string(threads));
  if (threads == 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    threads = ::sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0
                  ? CPU_COUNT(&set)
                  : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  }
  thread_holder h;
  if (threads > 1) {
    h.pool = std::make_unique<thread_pool>(threads);
    h.fn = h.pool->as_function();
  }
  return h;
}

void register_errors(py::module_& m) {
  error_classes[0] = new_class(m, "Error", PyExc_Exception,
                               "Every error of the masquant C++ library (its message unchanged).");
  for (const auto& e : error_table) {
    py::tuple bases = py::make_tuple(py::handle(error_classes[0]), py::handle(e.builtin));
    error_classes[static_cast<std::size_t>(e.code)] =
        new_class(m, e.name, bases.ptr(), (std::string("errc::") + to_string(e.code)).c_str());
  }
  copy_warning_class = new_class(m, "CopyWarning", PyExc_UserWarning,
                                 "An array was copied because its layout could not be viewed.");
  // pybind11's translator type takes the exception_ptr by value.
  // NOLINTNEXTLINE(performance-unnecessary-value-param)
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const masquant::error& e) {
      const auto i = static_cast<std::size_t>(e.code());
      PyErr_SetString(
          i < error_classes.size() && error_classes[i] ? error_classes[i] : error_classes[0],
          e.what());
    }
  });
}

}  // namespace masquant::python

PYBIND11_MODULE(_masquant, m) {
  namespace mp = masquant::python;
  m.doc() = "masquant's C++ library (import masquant instead)";
  m.attr("__version__") = masquant::version_string;
  m.def(
      "cpu_isa", [] { return std::string(masquant::to_string(masquant::best_isa())); },
      "The instruction-set family the library's hot paths run here.");
  mp::register_errors(m);
  mp::register_statistics(m);
  mp::register_calibrate(m);
  mp::register_checkpoint(m);
}

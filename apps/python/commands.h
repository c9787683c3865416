// train() and evaluate() of the Python module: keyword arguments -> the apps' own flags, the run
// with the GIL released, and the progress callback.
//
// A keyword is the flag's name with '-' as '_' (max_steps=5 is --max-steps 5); the values go
// through the app's own parser (apps/cli/train_command.h, eval_command.h), so the options, their
// defaults and their checks are fer_train's and fer_eval's exactly. True / False are --flag /
// --no-flag, None leaves the default, a list or tuple is a comma-separated list.
#pragma once
#include <optional>
#include <string>

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

namespace fer::python {

namespace py = pybind11;

// Calls a Python function from a C++ loop running with the GIL released: takes the GIL, lets
// Python handle a pending Ctrl-C (raising KeyboardInterrupt), calls the function. The first
// exception is kept, to be raised once the C++ side has stopped (rethrow()).
class PythonCallback {
 public:
  explicit PythonCallback(py::object function) : function_(std::move(function)) {}
  // With the GIL released. `make_argument` runs with the GIL held. False once an exception is pending.
  template <class MakeArgument>
  bool call(const MakeArgument& make_argument) {
    py::gil_scoped_acquire gil;
    if (error_) return false;
    try {
      if (PyErr_CheckSignals() != 0) throw py::error_already_set();
      if (function_ && !function_.is_none()) function_(make_argument());
      return true;
    } catch (py::error_already_set& e) {
      error_.emplace(std::move(e));
      return false;
    }
  }
  void rethrow();  // with the GIL held: raises the kept exception, if any

 private:
  py::object function_;
  std::optional<py::error_already_set> error_;
};

py::dict train(py::object progress, const py::kwargs& options);
py::dict evaluate(py::object progress, const py::kwargs& options);

// Every option of train() / evaluate() by keyword name, with its default as the app shows it.
py::dict train_options();
py::dict evaluate_options();

}  // namespace fer::python

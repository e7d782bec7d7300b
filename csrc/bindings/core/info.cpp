#include <pybind11/pybind11.h>

#include <pybind11/stl.h>

#include <string>
#include <thread>

#include "core/isa.hpp"

// pyproject.toml's version, passed by CMakeLists.txt.
#ifndef MODELGIT_VERSION
#error "MODELGIT_VERSION is not defined: build with CMakeLists.txt (pip install .)"
#endif

namespace py = pybind11;

namespace modelgit::bindings {
void register_info(py::module_& m) {
  m.attr("__version__") = MODELGIT_VERSION;
  m.def("hardware_threads", [] { return std::thread::hardware_concurrency(); },
        "Number of hardware threads the core may use.");
  m.def(
      "kernels",
      [](py::object which) {
        return set_kernels(which.is_none() ? std::string() : py::cast<std::string>(which));
      },
      py::arg("which") = py::none(),
      "The copies of the vectorized kernels in use ('baseline' or 'avx2'); which= 'auto', "
      "'baseline' or 'avx2' sets them for the process.");
}
}  // namespace modelgit::bindings

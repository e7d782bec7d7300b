#include <pybind11/pybind11.h>

#include <thread>

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
}
}  // namespace modelgit::bindings

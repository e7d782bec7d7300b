#include <pybind11/pybind11.h>

#include <thread>

namespace py = pybind11;

namespace modelgit::bindings {
void register_info(py::module_& m) {
  m.attr("__version__") = "0.1.0";
  m.def("hardware_threads", [] { return std::thread::hardware_concurrency(); },
        "Number of hardware threads the core may use.");
}
}  // namespace modelgit::bindings

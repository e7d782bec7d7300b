// Entry point of modelgit._core: each concept registers its functions from its own file.
#include <pybind11/pybind11.h>

namespace py = pybind11;

namespace modelgit::bindings {
void register_info(py::module_& m);
void register_planes(py::module_& m);
void register_qdelta(py::module_& m);
void register_lowbit(py::module_& m);
void register_sketch(py::module_& m);
void register_rans(py::module_& m);
void register_runs(py::module_& m);
void register_huff(py::module_& m);
void register_cast(py::module_& m);
void register_price(py::module_& m);
}

PYBIND11_MODULE(_core, m) {
  m.doc() = "modelgit native core: byte-level transforms over contiguous buffers";
  modelgit::bindings::register_info(m);
  modelgit::bindings::register_planes(m);
  modelgit::bindings::register_qdelta(m);
  modelgit::bindings::register_lowbit(m);
  modelgit::bindings::register_sketch(m);
  modelgit::bindings::register_rans(m);
  modelgit::bindings::register_runs(m);
  modelgit::bindings::register_huff(m);
  modelgit::bindings::register_cast(m);
  modelgit::bindings::register_price(m);
}

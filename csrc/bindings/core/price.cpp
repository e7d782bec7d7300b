// Bindings of the pricing kernels (core/price.hpp).
#include "core/price.hpp"

#include "bindings/core/pybuffer.hpp"

namespace modelgit::bindings {
namespace {

py::tuple residual(py::object y_o, py::object p_o, py::object e_o) {
  const size_t E = size_t(elem_size_arg(e_o));
  Buf y(y_o, "y"), p(p_o, "pred");
  check_whole_elems(y.size(), (long long)E, "y");
  check_same_length(p.size(), y.size(), "pred", "y");
  ResidualBits r;
  {
    py::gil_scoped_release nogil;
    r = residual_bits(y.data(), p.data(), y.size() / E, E);
  }
  return py::make_tuple(r.plain, r.masked);
}

double entropy(py::object w_o, py::object e_o, bool rotate) {
  const size_t E = size_t(elem_size_arg(e_o));
  Buf w(w_o, "words");
  check_whole_elems(w.size(), (long long)E, "words");
  py::gil_scoped_release nogil;
  return plane_entropy(w.data(), w.size() / E, E, rotate);
}

py::tuple log_ratio(py::object y_o, py::object b_o, const std::string& dtype, py::object step_o) {
  const DType dt = check_dtype(dtype);
  const long long step = int_arg(step_o, "step");
  if (step < 1) throw py::value_error("step must be >= 1, got " + std::to_string(step));
  Buf y(y_o, "y"), b(b_o, "base");
  const size_t E = dtype_size(dt);
  check_whole_elems(y.size(), (long long)E, "y");
  check_same_length(b.size(), y.size(), "base", "y");
  LogScale s;
  {
    py::gil_scoped_release nogil;
    s = log_ratio_median(y.data(), b.data(), y.size() / E, dt, size_t(step));
  }
  return py::make_tuple(s.count, s.median);
}

}  // namespace

void register_price(py::module_& m) {
  m.def("residual_bits", &residual, py::arg("y"), py::arg("pred"), py::arg("elem_size"),
        "Mean bits of a residual (plain, with a zero mask) over words of elem_size bytes.");
  m.def("plane_entropy", &entropy, py::arg("words"), py::arg("elem_size"),
        py::arg("rotate") = false, "Summed order-0 entropy of the byte planes, bits per word.");
  m.def("log_ratio_median", &log_ratio, py::arg("y"), py::arg("base"), py::arg("dtype"),
        py::arg("step") = 1, "(count, median of log(|y|/|base|)) where both qualify.");
}

}  // namespace modelgit::bindings

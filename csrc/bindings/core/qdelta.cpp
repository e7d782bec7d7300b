// Bindings of the error-bounded quantized delta (core/qdelta.hpp).
#include "core/qdelta.hpp"

#include <pybind11/stl.h>

#include "bindings/core/pybuffer.hpp"

namespace modelgit::bindings {
namespace {

py::tuple encode(py::object x_o, py::object base_o, const std::string& dtype, double eps,
                 py::object threads_o) {
  const DType dt = check_dtype(dtype);
  check_eps(eps, dt);
  const int threads = threads_arg(threads_o);
  Buf x(x_o, "x"), base(base_o, "base");
  const size_t E = dtype_size(dt);
  if (x.size() % E)
    throw py::value_error("x: length " + std::to_string(x.size()) +
                          " is not a multiple of the element size " + std::to_string(E));
  check_base_size(base.size(), "x has", x.size());
  const size_t n = x.size() / E;
  uint8_t* codes_p = nullptr;
  py::bytearray codes = empty_bytearray(n * 4, &codes_p);
  const int nt = resolve_threads(threads, x.size());
  QDeltaExceptions exc;
  {
    py::gil_scoped_release nogil;
    exc = qdelta_encode(x.data(), base.data(), codes_p, n, dt, eps, nt);
  }
  py::bytearray idx = new_bytearray(exc.index.data(), exc.index.size() * 8);
  py::bytearray vals = new_bytearray(exc.values.data(), exc.values.size());
  return py::make_tuple(codes, idx, vals);
}

py::object decode(py::object codes_o, py::object base_o, py::object idx_o, py::object vals_o,
                  const std::string& dtype, double eps, py::object out_o, py::object threads_o) {
  const DType dt = check_dtype(dtype);
  check_eps(eps, dt);
  const int threads = threads_arg(threads_o);
  Buf codes(codes_o, "codes"), base(base_o, "base"), idx(idx_o, "exc_index"),
      vals(vals_o, "exc_values");
  const size_t E = dtype_size(dt);
  if (base.size() % E)
    throw py::value_error("base: length " + std::to_string(base.size()) +
                          " is not a multiple of the element size " + std::to_string(E));
  const size_t n = base.size() / E;
  if (codes.size() != n * 4)
    throw py::value_error("codes has " + std::to_string(codes.size()) + " bytes, expected " +
                          std::to_string(n * 4) + " (4 per element of base)");
  if (idx.size() % 8)
    throw py::value_error("exc_index: length " + std::to_string(idx.size()) +
                          " is not a multiple of 8 (uint64 indices)");
  const size_t count = idx.size() / 8;
  if (vals.size() != count * E)
    throw py::value_error("exc_values has " + std::to_string(vals.size()) + " bytes, expected " +
                          std::to_string(count * E) + " (" + std::to_string(count) +
                          " exceptions of " + std::to_string(E) + " bytes)");
  OutBuf out(out_o, n * E);
  out.check_no_overlap(codes);
  out.check_no_overlap(base);
  out.check_no_overlap(idx);
  out.check_no_overlap(vals);
  const int nt = resolve_threads(threads, n * E);
  const char* err = "";
  {
    py::gil_scoped_release nogil;
    err = qdelta_check_exceptions(idx.data(), count, n);
    if (!*err)
      qdelta_decode(codes.data(), base.data(), idx.data(), vals.data(), count, out.data(), n, dt,
                    eps, nt);
  }
  if (*err) throw py::value_error(err);
  return out.result();
}

}  // namespace

void register_qdelta(py::module_& m) {
  m.def("qdelta_encode", &encode, py::arg("x"), py::arg("base"), py::arg("dtype"), py::arg("eps"),
        py::arg("threads") = 0,
        "Quantize x - base with step 2*eps so that every decoded element is within eps.");
  m.def("qdelta_decode", &decode, py::arg("codes"), py::arg("base"), py::arg("exc_index"),
        py::arg("exc_values"), py::arg("dtype"), py::arg("eps"), py::arg("out") = py::none(),
        py::arg("threads") = 0, "Inverse of qdelta_encode.");
}

}  // namespace modelgit::bindings

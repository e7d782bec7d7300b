// Bindings of the float casts and the mean and linear predictors (core/cast.hpp).
#include "core/cast.hpp"

#include <pybind11/stl.h>

#include "bindings/core/pybuffer.hpp"

namespace modelgit::bindings {
namespace {

size_t elements(const Buf& b, size_t e, const char* name) {
  if (b.size() % e)
    throw py::value_error(std::string(name) + ": length " + std::to_string(b.size()) +
                          " is not a multiple of the element size " + std::to_string(e));
  return b.size() / e;
}

py::object cast_py(py::object src_o, const std::string& src_dtype, const std::string& dst_dtype,
                   py::object out_o, py::object threads_o) {
  const DType s = check_dtype(src_dtype), d = check_dtype(dst_dtype);
  const int threads = threads_arg(threads_o);
  Buf src(src_o, "src");
  const size_t n = elements(src, dtype_size(s), "src");
  OutBuf out(out_o, n * dtype_size(d));
  if (!(s == d && src.data() == out.data())) out.check_no_overlap(src);
  const int nt = resolve_threads(threads, src.size());
  {
    py::gil_scoped_release nogil;
    cast(src.data(), s, out.data(), d, n, nt);
  }
  return out.result();
}

// Runs run(ptrs, k, out, n, threads) without the GIL over 1 to 255 source buffers of
// one length (n elements of s), into out (n elements of d).
template <typename Run>
py::object combine(const py::list& srcs_o, DType s, DType d, py::object out_o, int threads,
                   Run&& run) {
  const size_t k = srcs_o.size();
  if (k < 1 || k > 255) throw py::value_error("srcs: expected 1 to 255 buffers");
  std::vector<Buf> srcs(k);
  std::vector<const uint8_t*> ptrs(k);
  for (size_t j = 0; j < k; ++j) {
    srcs[j].acquire(srcs_o[j], "srcs", false);
    if (srcs[j].size() != srcs[0].size())
      throw py::value_error("srcs: every buffer must have the same length");
    ptrs[j] = srcs[j].data();
  }
  const size_t n = elements(srcs[0], dtype_size(s), "srcs");
  OutBuf out(out_o, n * dtype_size(d));
  for (const Buf& b : srcs) out.check_no_overlap(b);
  const int nt = resolve_threads(threads, srcs[0].size());
  {
    py::gil_scoped_release nogil;
    run(ptrs.data(), int(k), out.data(), n, nt);
  }
  return out.result();
}

py::object mean_py(py::list srcs_o, const std::string& src_dtype, const std::string& dst_dtype,
                   py::object out_o, py::object threads_o) {
  const DType s = check_dtype(src_dtype), d = check_dtype(dst_dtype);
  return combine(srcs_o, s, d, out_o, threads_arg(threads_o),
                 [&](const uint8_t* const* p, int k, uint8_t* o, size_t n, int nt) {
                   mean_cast(p, k, s, o, d, n, nt);
                 });
}

py::object linear_py(py::list srcs_o, std::vector<double> coeffs, const std::string& src_dtype,
                     const std::string& dst_dtype, int mode, py::object out_o,
                     py::object threads_o) {
  const DType s = check_dtype(src_dtype), d = check_dtype(dst_dtype);
  if (!srcs_o.empty() && coeffs.size() != srcs_o.size())
    throw py::value_error("coeffs: expected one coefficient per buffer");
  if (mode < 0 || mode > 2)
    throw py::value_error("mode: expected 0 (exact), 1 (seq) or 2 (anchored)");
  if (mode != 0 && s != d)
    throw py::value_error("the seq and anchored modes take src_dtype == dst_dtype");
  return combine(srcs_o, s, d, out_o, threads_arg(threads_o),
                 [&](const uint8_t* const* p, int k, uint8_t* o, size_t n, int nt) {
                   linear_cast(p, coeffs.data(), k, s, o, d, n, Combine(mode), nt);
                 });
}

}  // namespace

void register_cast(py::module_& m) {
  m.def("cast", &cast_py, py::arg("src"), py::arg("src_dtype"), py::arg("dst_dtype"),
        py::arg("out") = py::none(), py::arg("threads") = 0,
        "Convert float elements as torch.Tensor.to does on the CPU (see _core.pyi).");
  m.def("mean_cast", &mean_py, py::arg("srcs"), py::arg("src_dtype"), py::arg("dst_dtype"),
        py::arg("out") = py::none(), py::arg("threads") = 0,
        "float32 mean of equal-length float buffers, converted to dst_dtype (see _core.pyi).");
  m.attr("LINEAR_EXACT") = int(Combine::Exact);
  m.attr("LINEAR_SEQ") = int(Combine::Seq);
  m.attr("LINEAR_ANCHORED") = int(Combine::Anchored);
  m.def("linear_cast", &linear_py, py::arg("srcs"), py::arg("coeffs"), py::arg("src_dtype"),
        py::arg("dst_dtype"), py::arg("mode") = 0, py::arg("out") = py::none(),
        py::arg("threads") = 0,
        "A linear combination of equal-length float buffers (see _core.pyi).");
}

}  // namespace modelgit::bindings

// Bindings of the byte-plane transform (planes.hpp).
#include "planes.hpp"

#include "pybuffer.hpp"

namespace modelgit::bindings {
namespace {

struct PlaneArgs {
  int elem_size;
  int delta;
  int threads;
};

PlaneArgs check_args(const Buf& data, const Buf* base, py::handle elem_size, py::handle delta,
                     py::handle threads, const char* dname) {
  long long e = int_arg(elem_size, "elem_size");
  check_elem_size(e);
  long long d = int_arg(delta, "delta");
  if (d != DELTA_NONE && d != DELTA_XOR && d != DELTA_SUB && d != DELTA_OSUB)
    throw py::value_error(
        "delta must be DELTA_NONE (0), DELTA_XOR (1), DELTA_SUB (2) or DELTA_OSUB (3), got " +
                          std::to_string(d));
  if (data.size() % size_t(e) != 0)
    throw py::value_error(std::string(dname) + ": length " + std::to_string(data.size()) +
                          " is not a multiple of elem_size " + std::to_string(e));
  if (d == DELTA_NONE && base)
    throw py::value_error("base given but delta is DELTA_NONE; pass delta=DELTA_XOR or DELTA_SUB");
  if (d != DELTA_NONE && !base) throw py::value_error("delta != DELTA_NONE requires base");
  if (base && base->size() != data.size())
    throw py::value_error("base has " + std::to_string(base->size()) + " bytes but " + dname +
                          " has " + std::to_string(data.size()) + "; they must be equal");
  return {int(e), int(d), threads_arg(threads)};
}

template <bool ENC>
py::object run(py::object data_o, py::object elem_size, py::object base_o, py::object delta,
               bool rotate, py::object out_o, py::object threads) {
  const char* dname = ENC ? "data" : "planes";
  Buf data(data_o, dname);
  Buf base;
  if (!base_o.is_none()) base.acquire(base_o, "base", false);
  PlaneArgs a = check_args(data, base.held() ? &base : nullptr, elem_size, delta, threads, dname);
  OutBuf out(out_o, data.size());
  out.check_no_overlap(data);
  out.check_no_overlap(base);
  const size_t m = data.size() / size_t(a.elem_size);
  const int nt = resolve_threads(a.threads, data.size());
  {
    py::gil_scoped_release nogil;
    if (ENC)
      planes_encode(data.data(), base.held() ? base.data() : nullptr, out.data(), m, a.elem_size,
                    a.delta, rotate, nt);
    else
      planes_decode(data.data(), base.held() ? base.data() : nullptr, out.data(), m, a.elem_size,
                    a.delta, rotate, nt);
  }
  return out.result();
}

}  // namespace

void register_planes(py::module_& m) {
  m.attr("DELTA_NONE") = int(DELTA_NONE);
  m.attr("DELTA_XOR") = int(DELTA_XOR);
  m.attr("DELTA_SUB") = int(DELTA_SUB);
  m.attr("DELTA_OSUB") = int(DELTA_OSUB);
  m.def("planes_encode", &run<true>, py::arg("data"), py::arg("elem_size"),
        py::arg("base") = py::none(), py::arg("delta") = 0, py::arg("rotate") = false,
        py::arg("out") = py::none(), py::arg("threads") = 0,
        "Delta against base fused with a split into byte planes (see _core.pyi).");
  m.def("planes_decode", &run<false>, py::arg("planes"), py::arg("elem_size"),
        py::arg("base") = py::none(), py::arg("delta") = 0, py::arg("rotate") = false,
        py::arg("out") = py::none(), py::arg("threads") = 0,
        "Exact inverse of planes_encode with the same parameters.");
}

}  // namespace modelgit::bindings

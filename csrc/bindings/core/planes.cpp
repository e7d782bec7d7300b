// Bindings of the byte-plane transform (core/planes.hpp).
#include "core/planes.hpp"

#include "bindings/core/pybuffer.hpp"

namespace modelgit::bindings {
namespace {

struct PlaneArgs {
  int elem_size;
  int delta;
  int threads;
};

PlaneArgs check_args(const Buf& data, const Buf* base, py::handle elem_size, py::handle delta,
                     py::handle threads, const char* dname) {
  long long e = elem_size_arg(elem_size);
  long long d = int_arg(delta, "delta");
  check_delta(d);
  check_whole_elems(data.size(), e, dname);
  check_delta_base(d, base != nullptr);
  if (base) check_base_size(base->size(), std::string(dname) + " has", data.size());
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

// elem_size buffers of the same length m, one per plane: held in bufs, their data in
// ptrs. Returns m.
size_t acquire_parts(py::sequence parts_o, long long e, const char* name, Buf* bufs,
                     const uint8_t** ptrs) {
  if (py::len(parts_o) != size_t(e))
    throw py::value_error(std::string(name) + ": expected elem_size (" + std::to_string(e) +
                          ") buffers, got " + std::to_string(py::len(parts_o)));
  for (long long p = 0; p < e; ++p) {
    bufs[p].acquire(parts_o[size_t(p)], name, false);
    if (bufs[p].size() != bufs[0].size())
      throw py::value_error(std::string(name) + ": every plane must have the same length");
    ptrs[p] = bufs[p].data();
  }
  return bufs[0].size();
}

void check_parts_apart(const OutBuf& out, const Buf* bufs, long long e, const char* name) {
  for (long long p = 0; p < e; ++p) out.check_no_overlap(bufs[p], name);
}

// planes_decode with the E planes in E separate buffers (no staging copy).
py::object decode_parts(py::sequence parts_o, py::object elem_size, py::object base_o,
                        py::object delta_o, bool rotate, py::object out_o, py::object threads) {
  long long e = elem_size_arg(elem_size);
  Buf parts[8];
  const uint8_t* ptrs[8] = {};
  const size_t m = acquire_parts(parts_o, e, "parts", parts, ptrs);
  Buf base;
  if (!base_o.is_none()) base.acquire(base_o, "base", false);
  long long d = int_arg(delta_o, "delta");
  check_delta(d);
  check_delta_base(d, base.held());
  const size_t n = m * size_t(e);
  if (base.held()) check_base_size(base.size(), "the planes hold", n);
  const int t = threads_arg(threads);
  OutBuf out(out_o, n);
  check_parts_apart(out, parts, e, "out");
  out.check_no_overlap(base);
  const int nt = resolve_threads(t, n);
  {
    py::gil_scoped_release nogil;
    planes_decode_split(ptrs, base.held() ? base.data() : nullptr, out.data(), m, int(e), int(d),
                        rotate, nt);
  }
  return out.result();
}

// planes_decode_parts in place: out holds the delta base and receives the result.
py::object apply_parts(py::sequence parts_o, py::object elem_size, py::object delta_o,
                       bool rotate, py::object out_o, py::object threads) {
  long long e = elem_size_arg(elem_size);
  Buf parts[8];
  const uint8_t* ptrs[8] = {};
  const size_t m = acquire_parts(parts_o, e, "parts", parts, ptrs);
  long long d = int_arg(delta_o, "delta");
  check_delta(d);
  if (d == DELTA_NONE) throw py::value_error("planes_apply_parts needs a delta (not DELTA_NONE)");
  if (out_o.is_none()) throw py::value_error("out: the buffer holding the base is required");
  const int t = threads_arg(threads);
  OutBuf out(out_o, m * size_t(e));
  check_parts_apart(out, parts, e, "out");
  const int nt = resolve_threads(t, m * size_t(e));
  {
    py::gil_scoped_release nogil;
    planes_apply_split(ptrs, out.data(), m, int(e), int(d), rotate, nt);
  }
  return out.result();
}

// A delta and its standalone base, both as planes, decoded in one pass.
py::object decode_pair(py::sequence base_o, bool base_rotate, py::sequence parts_o,
                       py::object elem_size, py::object delta_o, bool rotate, py::object out_o,
                       py::object threads) {
  long long e = elem_size_arg(elem_size);
  Buf parts[8], base[8];
  const uint8_t* ptrs[8] = {};
  const uint8_t* bptrs[8] = {};
  const size_t m = acquire_parts(parts_o, e, "parts", parts, ptrs);
  if (acquire_parts(base_o, e, "base_parts", base, bptrs) != m)
    throw py::value_error("base_parts: planes of another length than parts");
  long long d = int_arg(delta_o, "delta");
  check_delta(d);
  if (d == DELTA_NONE) throw py::value_error("planes_decode_pair needs a delta (not DELTA_NONE)");
  const int t = threads_arg(threads);
  OutBuf out(out_o, m * size_t(e));
  check_parts_apart(out, parts, e, "out");
  check_parts_apart(out, base, e, "out");
  const int nt = resolve_threads(t, m * size_t(e));
  {
    py::gil_scoped_release nogil;
    planes_decode_pair(bptrs, base_rotate, ptrs, out.data(), m, int(e), int(d), rotate, nt);
  }
  return out.result();
}

py::tuple run_zero_mask(py::object data_o, py::object pred_o, py::object elem_size) {
  const long long e = elem_size_arg(elem_size);
  Buf data(data_o, "data"), pred(pred_o, "pred");
  check_whole_elems(data.size(), e, "data");
  check_same_length(pred.size(), data.size(), "pred", "data");
  const size_t m = data.size() / size_t(e);
  uint8_t *mp = nullptr, *op = nullptr;
  py::bytearray mask = empty_bytearray((m + 7) / 8, &mp);
  py::bytearray out = empty_bytearray(data.size(), &op);
  {
    py::gil_scoped_release nogil;
    zero_mask(data.data(), pred.data(), op, mp, m, int(e));
  }
  return py::make_tuple(mask, out);
}

}  // namespace

void register_planes(py::module_& m) {
  m.attr("DELTA_NONE") = int(DELTA_NONE);
  m.attr("DELTA_XOR") = int(DELTA_XOR);
  m.attr("DELTA_SUB") = int(DELTA_SUB);
  m.attr("DELTA_OSUB") = int(DELTA_OSUB);
  m.def("zero_mask", &run_zero_mask, py::arg("data"), py::arg("pred"), py::arg("elem_size"),
        "(packed zero mask of data's words, pred with those words zeroed).");
  m.def("planes_encode", &run<true>, py::arg("data"), py::arg("elem_size"),
        py::arg("base") = py::none(), py::arg("delta") = 0, py::arg("rotate") = false,
        py::arg("out") = py::none(), py::arg("threads") = 0,
        "Delta against base fused with a split into byte planes (see _core.pyi).");
  m.def("planes_decode", &run<false>, py::arg("planes"), py::arg("elem_size"),
        py::arg("base") = py::none(), py::arg("delta") = 0, py::arg("rotate") = false,
        py::arg("out") = py::none(), py::arg("threads") = 0,
        "Exact inverse of planes_encode with the same parameters.");
  m.def("planes_decode_parts", &decode_parts, py::arg("parts"), py::arg("elem_size"),
        py::arg("base") = py::none(), py::arg("delta") = 0, py::arg("rotate") = false,
        py::arg("out") = py::none(), py::arg("threads") = 0,
        "planes_decode with plane p in parts[p] (elem_size separate buffers of m bytes).");
  m.def("planes_apply_parts", &apply_parts, py::arg("parts"), py::arg("elem_size"),
        py::arg("delta"), py::arg("rotate") = false, py::arg("out") = py::none(),
        py::arg("threads") = 0,
        "planes_decode_parts with out as the base: out holds it and receives the result.");
  m.def("planes_decode_pair", &decode_pair, py::arg("base_parts"), py::arg("base_rotate"),
        py::arg("parts"), py::arg("elem_size"), py::arg("delta"), py::arg("rotate") = false,
        py::arg("out") = py::none(), py::arg("threads") = 0,
        "planes_decode_parts of a delta whose base is given as its planes: one pass.");
}

}  // namespace modelgit::bindings

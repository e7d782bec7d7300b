// Bindings of the order-0 rANS entropy coder (core/rans.hpp).
#include "core/rans.hpp"

#include "bindings/core/pybuffer.hpp"

namespace modelgit::bindings {
namespace {

py::object encode(py::object data_o, py::object max_size_o, bool simd) {
  Buf data(data_o, "data");
  const long long max_size = int_arg(max_size_o, "max_size");
  const size_t n = data.size();
  if (n == 0) throw py::value_error("data: nothing to encode (empty buffer)");
  std::vector<uint8_t> out;
  {
    py::gil_scoped_release nogil;
    RansModel model = rans_model(data.data(), n);
    // The estimate is within 2 bytes per state (what the final states hold) and a few
    // bytes of rounding of the coded size: code only what may fit.
    if (max_size < 0 || model.encoded_size <= size_t(max_size) + 2 * kRansStates + 16)
      out = rans_encode(data.data(), n, model, simd);
  }
  if (out.empty() || (max_size >= 0 && out.size() > size_t(max_size))) return py::none();
  return py::bytes(reinterpret_cast<const char*>(out.data()), out.size());
}

size_t estimate(py::object data_o) {
  Buf data(data_o, "data");
  if (data.size() == 0) return 0;
  py::gil_scoped_release nogil;
  return rans_model(data.data(), data.size()).encoded_size;
}

py::object decode(py::object stream_o, py::object size_o, py::object out_o, bool simd) {
  Buf stream(stream_o, "stream");
  const long long size = int_arg(size_o, "size");
  if (size < 0) throw py::value_error("size must be >= 0");
  OutBuf out(out_o, size_t(size));
  out.check_no_overlap(stream);
  std::string err;
  {
    py::gil_scoped_release nogil;
    err = rans_decode(stream.data(), stream.size(), out.data(), size_t(size), simd);
  }
  if (!err.empty()) throw py::value_error("rans stream: " + err);
  return out.result();
}

}  // namespace

void register_rans(py::module_& m) {
  m.attr("RANS_SCALE_BITS") = kRansScaleBits;
  m.def("rans_encode", &encode, py::arg("data"), py::arg("max_size") = -1,
        py::arg("simd") = true,
        "Order-0 rANS stream of data (non-empty), or None when it would be longer than "
        "max_size bytes (max_size < 0: no limit). simd=False forces the portable loop "
        "(for tests: the streams are identical).");
  m.def("rans_estimate", &estimate, py::arg("data"),
        "The size rans_encode(data) would have, to within a few bytes (0 for no data).");
  m.def("rans_decode", &decode, py::arg("stream"), py::arg("size"), py::arg("out") = py::none(),
        py::arg("simd") = true,
        "Decode a rans_encode stream into exactly size bytes (a new bytearray, or out=). "
        "ValueError names what is wrong with an invalid stream. simd=False forces the "
        "portable loop (for tests: the results are identical).");
}

}  // namespace modelgit::bindings

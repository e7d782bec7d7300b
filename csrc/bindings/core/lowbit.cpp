// Bindings of low-bit quantization and bit packing (core/lowbit.hpp).
#include "core/lowbit.hpp"

#include "bindings/core/pybuffer.hpp"

namespace modelgit::bindings {
namespace {

int bits_arg(py::object o) { return check_bits(int_arg(o, "bits")); }

size_t group_arg(py::object o) { return size_t(check_group(int_arg(o, "group"))); }

size_t n_arg(py::object o) {
  const uint64_t n = check_count(int_arg(o, "n"), "n");
  if (n > (uint64_t(1) << 60)) throw py::value_error("n is too large");
  return size_t(n);
}

py::tuple quantize(py::object x_o, py::object bits_o, py::object group_o, py::object threads_o) {
  const int bits = bits_arg(bits_o);
  const size_t group = group_arg(group_o);
  const int threads = threads_arg(threads_o);
  Buf x(x_o, "x");
  if (x.size() % 4)
    throw py::value_error("x: length " + std::to_string(x.size()) +
                          " is not a multiple of 4 (float32 elements)");
  const size_t n = x.size() / 4;
  const size_t ngroups = n ? (n - 1) / group + 1 : 0;
  uint8_t *pp = nullptr, *sp = nullptr, *op = nullptr;
  py::bytearray packed = empty_bytearray(packed_size(n, bits), &pp);
  py::bytearray scales = empty_bytearray(ngroups * 4, &sp);
  py::bytearray offsets = empty_bytearray(ngroups * 4, &op);
  const int nt = resolve_threads(threads, x.size());
  {
    py::gil_scoped_release nogil;
    lowbit_quantize(x.data(), n, bits, group, pp, sp, op, nt);
  }
  return py::make_tuple(packed, scales, offsets);
}

py::object dequantize(py::object packed_o, py::object scales_o, py::object offsets_o,
                      py::object bits_o, py::object group_o, py::object n_o, py::object out_o,
                      py::object threads_o) {
  const int bits = bits_arg(bits_o);
  const size_t group = group_arg(group_o);
  const size_t n = n_arg(n_o);
  const int threads = threads_arg(threads_o);
  Buf packed(packed_o, "packed"), scales(scales_o, "scales"), offsets(offsets_o, "offsets");
  const size_t ngroups = n ? (n - 1) / group + 1 : 0;
  if (packed.size() != packed_size(n, bits))
    throw py::value_error("packed has " + std::to_string(packed.size()) + " bytes, expected " +
                          std::to_string(packed_size(n, bits)) + " for n=" + std::to_string(n) +
                          " and bits=" + std::to_string(bits));
  if (scales.size() != ngroups * 4)
    throw py::value_error("scales has " + std::to_string(scales.size()) + " bytes, expected " +
                          std::to_string(ngroups * 4) + " (" + std::to_string(ngroups) +
                          " float32 group scales)");
  if (offsets.size() != ngroups * 4)
    throw py::value_error("offsets has " + std::to_string(offsets.size()) + " bytes, expected " +
                          std::to_string(ngroups * 4) + " (" + std::to_string(ngroups) +
                          " float32 group offsets)");
  OutBuf out(out_o, n * 4);
  out.check_no_overlap(packed);
  out.check_no_overlap(scales);
  out.check_no_overlap(offsets);
  const int nt = resolve_threads(threads, n * 4);
  {
    py::gil_scoped_release nogil;
    lowbit_dequantize(packed.data(), scales.data(), offsets.data(), bits, group, n, out.data(), nt);
  }
  return out.result();
}

py::bytearray pack(py::object codes_o, py::object bits_o) {
  const int bits = bits_arg(bits_o);
  Buf codes(codes_o, "codes");
  const size_t n = codes.size();
  uint8_t* op = nullptr;
  py::bytearray out = empty_bytearray(packed_size(n, bits), &op);
  const int nt = resolve_threads(0, n);
  bool ok;
  {
    py::gil_scoped_release nogil;
    ok = pack_bits(codes.data(), n, bits, op, nt);
  }
  if (!ok)
    throw py::value_error("codes: a code is >= 2**bits (bits=" + std::to_string(bits) + ")");
  return out;
}

py::bytearray unpack(py::object packed_o, py::object bits_o, py::object n_o) {
  const int bits = bits_arg(bits_o);
  const size_t n = n_arg(n_o);
  Buf packed(packed_o, "packed");
  if (packed.size() != packed_size(n, bits))
    throw py::value_error("packed has " + std::to_string(packed.size()) + " bytes, expected " +
                          std::to_string(packed_size(n, bits)) + " for n=" + std::to_string(n) +
                          " and bits=" + std::to_string(bits));
  uint8_t* op = nullptr;
  py::bytearray out = empty_bytearray(n, &op);
  const int nt = resolve_threads(0, n);
  {
    py::gil_scoped_release nogil;
    unpack_bits(packed.data(), n, bits, op, nt);
  }
  return out;
}

}  // namespace

void register_lowbit(py::module_& m) {
  m.def("lowbit_quantize", &quantize, py::arg("x"), py::arg("bits"), py::arg("group"),
        py::arg("threads") = 0, "Quantize float32 x to bits per group (see _core.pyi).");
  m.def("lowbit_dequantize", &dequantize, py::arg("packed"), py::arg("scales"), py::arg("offsets"),
        py::arg("bits"), py::arg("group"), py::arg("n"), py::arg("out") = py::none(),
        py::arg("threads") = 0, "Decoded float32 values (n elements).");
  m.def("pack_bits", &pack, py::arg("codes"), py::arg("bits"),
        "Pack uint8 codes (each < 2**bits), LSB first.");
  m.def("unpack_bits", &unpack, py::arg("packed"), py::arg("bits"), py::arg("n"),
        "Inverse of pack_bits: n uint8 codes.");
}

}  // namespace modelgit::bindings

// Bindings of the order-0 rANS entropy coder (core/rans.hpp).
#include "core/rans.hpp"

#include <cstdlib>
#include <string>

#include "bindings/core/sections.hpp"

namespace modelgit::bindings {
namespace {

constexpr const char* kDecoderEnv = "MODELGIT_RANS_DECODER";
// Every decode loop, fastest first.
constexpr RansDecoder kDecoders[] = {RansDecoder::kSse41, RansDecoder::kPortable};

// The loop a plain rans_decode uses: $MODELGIT_RANS_DECODER when it names a supported
// one (read once, at import), else the fastest.
RansDecoder default_decoder = RansDecoder::kAuto;

bool parse_decoder(const std::string& name, RansDecoder* d) {
  if (name == "auto") {
    *d = RansDecoder::kAuto;
    return true;
  }
  for (RansDecoder c : kDecoders) {
    if (name == rans_decoder_name(c)) {
      *d = c;
      return true;
    }
  }
  return false;
}

std::string supported_names() {
  std::string s;
  for (RansDecoder c : kDecoders) {
    if (!rans_decoder_supported(c)) continue;
    if (!s.empty()) s += ", ";
    s += rans_decoder_name(c);
  }
  return s;
}

RansDecoder decoder_arg(py::object o, bool simd) {
  if (o.is_none()) return simd ? default_decoder : RansDecoder::kPortable;
  if (!py::isinstance<py::str>(o)) throw py::type_error("decoder: expected a str or None");
  const std::string name = o.cast<std::string>();
  RansDecoder d;
  if (!parse_decoder(name, &d))
    throw py::value_error("decoder: unknown rANS decoder '" + name + "' (known: auto, " +
                          supported_names() + ")");
  if (!rans_decoder_supported(d))
    throw py::value_error("decoder: '" + name + "' is not supported by this CPU or build " +
                          "(supported: " + supported_names() + ")");
  return d;
}

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

py::object decode(py::object stream_o, py::object size_o, py::object out_o, bool simd,
                  py::object decoder_o) {
  const RansDecoder decoder = decoder_arg(decoder_o, simd);
  return decode_section(stream_o, size_o, out_o, "rans stream",
                        [decoder](const uint8_t* src, size_t len, uint8_t* out, size_t n) {
                          return rans_decode(src, len, out, n, decoder);
                        });
}

py::list decoders() {
  py::list names;
  const RansDecoder first = default_decoder == RansDecoder::kAuto ? rans_best_decoder()
                                                                  : default_decoder;
  names.append(rans_decoder_name(first));
  for (RansDecoder c : kDecoders)
    if (c != first && rans_decoder_supported(c)) names.append(rans_decoder_name(c));
  return names;
}

}  // namespace

void register_rans(py::module_& m) {
  if (const char* env = std::getenv(kDecoderEnv); env && *env) {
    RansDecoder d;
    if (parse_decoder(env, &d) && rans_decoder_supported(d)) {
      default_decoder = d;
    } else {
      const std::string msg = std::string(kDecoderEnv) + "='" + env +
                              "' is not a supported rANS decoder (supported: " +
                              supported_names() + "); using the fastest";
      if (PyErr_WarnEx(PyExc_RuntimeWarning, msg.c_str(), 1) != 0) throw py::error_already_set();
    }
  }
  m.attr("RANS_SCALE_BITS") = kRansScaleBits;
  m.def("rans_encode", &encode, py::arg("data"), py::arg("max_size") = -1,
        py::arg("simd") = true,
        "Order-0 rANS stream of data (non-empty), or None when it would be longer than "
        "max_size bytes (max_size < 0: no limit). simd=False forces the portable loop "
        "(for tests: the streams are identical).");
  m.def("rans_estimate", &estimate, py::arg("data"),
        "The size rans_encode(data) would have, to within a few bytes (0 for no data).");
  m.def("rans_decode", &decode, py::arg("stream"), py::arg("size"), py::arg("out") = py::none(),
        py::arg("simd") = true, py::arg("decoder") = py::none(),
        "Decode a rans_encode stream into exactly size bytes (a new bytearray, or out=). "
        "ValueError names what is wrong with an invalid stream. decoder= picks the loop "
        "(one of rans_decoders(), or 'auto'); simd=False is decoder='portable'. Every loop "
        "gives identical results.");
  m.def("rans_decoders", &decoders,
        "The rANS decode loops this CPU and build run: the one rans_decode uses by default "
        "first ($MODELGIT_RANS_DECODER, read at import, else the fastest), then the others.");
}

}  // namespace modelgit::bindings

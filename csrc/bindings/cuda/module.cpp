// modelgit._cuda: the byte transforms of modelgit._core on the GPU, bit for bit.
//
// Every function takes raw device addresses as Python ints (a torch tensor's
// data_ptr()), a byte or element count, and a CUDA stream handle as an int
// (torch.cuda.current_stream().cuda_stream; 0 = the legacy default stream). Kernels are
// launched asynchronously on that stream; nothing is synchronised. Parameters are
// checked here, with the checks modelgit._core makes (core/params.hpp; ValueError);
// pointers are checked to be CUDA device memory of one device (ValueError); CUDA errors
// raise RuntimeError with CUDA's message. Importing the module does not initialise CUDA.
// Buffer sizes cannot be checked from a raw pointer: the caller (modelgit.cuda, on torch
// tensors) guarantees them.
#include <pybind11/pybind11.h>

#include <cstdint>
#include <limits>
#include <string>

#include "cuda/api.cuh"

// pyproject.toml's version, passed by CMakeLists.txt.
#ifndef MODELGIT_VERSION
#error "MODELGIT_VERSION is not defined: build with CMakeLists.txt (pip install .)"
#endif

namespace py = pybind11;
namespace mc = modelgit::cuda;
namespace mg = modelgit;

namespace {

void raise_if(const mc::Status& st) {
  if (st.ok()) return;
  if (st.kind == mc::Err::Value) throw py::value_error(st.msg);
  throw std::runtime_error(st.msg);
}

// Runs a launcher without the GIL and raises its error, if any.
template <typename F>
void run(F&& f) {
  mc::Status st;
  {
    py::gil_scoped_release nogil;
    st = f();
  }
  raise_if(st);
}

// [p, p + n) and [q, q + k) overlap (empty ranges never do).
bool overlaps(uint64_t p, uint64_t n, uint64_t q, uint64_t k) {
  if (n == 0 || k == 0 || p == 0 || q == 0) return false;
  return p < q + k && q < p + n;
}

void check_no_overlap(uint64_t out, uint64_t n_out, uint64_t in, uint64_t n_in, const char* in_name) {
  if (overlaps(out, n_out, in, n_in))
    throw py::value_error(std::string("out must not overlap ") + in_name);
}

uint64_t mul_checked(uint64_t a, uint64_t b, const char* what) {
  if (a != 0 && b > std::numeric_limits<uint64_t>::max() / a)
    throw py::value_error(std::string(what) + ": size overflows");
  return a * b;
}

// Grids are at most 2^31 - 1 blocks of 256 threads of at least 4 elements each.
void check_size(uint64_t elems, const char* what) {
  if (elems > (uint64_t(1) << 40))
    throw py::value_error(std::string(what) + ": too many elements for one call (at most 2**40)");
}

void planes_impl(bool encode, uint64_t src, uint64_t out, long long nbytes_arg, long long elem_size,
                 uint64_t base, long long delta, bool rotate, uint64_t stream) {
  const char* sname = encode ? "data" : "planes";
  const uint64_t nbytes = mg::check_count(nbytes_arg, "nbytes");
  mg::check_elem_size(elem_size);
  mg::check_delta(delta);
  mg::check_whole_elems(nbytes, elem_size, sname);
  // (an empty tensor's data_ptr() is 0: a null base is fine when there is nothing to read)
  mg::check_delta_base(delta, base != 0, /*need_base=*/nbytes > 0);
  check_size(nbytes, sname);
  check_no_overlap(out, nbytes, src, nbytes, sname);
  check_no_overlap(out, nbytes, base, nbytes, "base");
  run([&] {
    return mc::planes(encode, uintptr_t(src), uintptr_t(base), uintptr_t(out), nbytes, int(elem_size),
                      int(delta), rotate, uintptr_t(stream));
  });
}

void qdelta_decode_impl(uint64_t codes, uint64_t base, uint64_t exc_index, uint64_t exc_values,
                        long long n_exc_arg, uint64_t out, long long n_arg, const std::string& dtype,
                        double eps, uint64_t stream) {
  const mg::DType qt = mg::check_dtype(dtype);
  const int es = int(mg::dtype_size(qt));
  const uint64_t n = mg::check_count(n_arg, "n");
  const uint64_t n_exc = mg::check_count(n_exc_arg, "n_exc");
  mg::check_eps(eps, qt);
  const double step = 2.0 * eps;
  const float stepf = static_cast<float>(step);
  if (n_exc > n)
    throw py::value_error("n_exc (" + std::to_string(n_exc) + ") exceeds n (" + std::to_string(n) +
                          "): exception indices must be distinct and < n");
  check_size(n, "qdelta_decode");
  const uint64_t nout = mul_checked(n, uint64_t(es), "out");
  check_no_overlap(out, nout, codes, mul_checked(n, 4, "codes"), "codes");
  check_no_overlap(out, nout, base, nout, "base");
  check_no_overlap(out, nout, exc_index, mul_checked(n_exc, 8, "exc_index"), "exc_index");
  check_no_overlap(out, nout, exc_values, mul_checked(n_exc, uint64_t(es), "exc_values"), "exc_values");
  run([&] {
    return mc::qdelta_decode(uintptr_t(codes), uintptr_t(base), uintptr_t(exc_index), uintptr_t(exc_values),
                             n_exc, uintptr_t(out), n, qt, step, stepf, uintptr_t(stream));
  });
}

void lowbit_dequantize_impl(uint64_t packed, uint64_t scales, uint64_t offsets, uint64_t out, long long bits,
                            long long group, long long n_arg, uint64_t stream) {
  mg::check_bits(bits);
  mg::check_group(group);
  const uint64_t n = mg::check_count(n_arg, "n");
  check_size(n, "lowbit_dequantize");
  const uint64_t ngroups = (n + uint64_t(group) - 1) / uint64_t(group);
  const uint64_t nout = n * 4;
  check_no_overlap(out, nout, packed, (n * uint64_t(bits) + 7) / 8, "packed");
  check_no_overlap(out, nout, scales, ngroups * 4, "scales");
  check_no_overlap(out, nout, offsets, ngroups * 4, "offsets");
  run([&] {
    return mc::lowbit_dequantize(uintptr_t(packed), uintptr_t(scales), uintptr_t(offsets), uintptr_t(out),
                                 int(bits), uint64_t(group), n, uintptr_t(stream));
  });
}

}  // namespace

PYBIND11_MODULE(_cuda, m) {
  m.doc() =
      "modelgit CUDA kernels: the byte transforms of modelgit._core on device memory, bit for bit "
      "(raw device pointers as ints, asynchronous on the given stream). Use modelgit.cuda for "
      "torch tensors.";
  m.attr("__version__") = MODELGIT_VERSION;
  m.attr("DELTA_NONE") = int(mg::DELTA_NONE);
  m.attr("DELTA_XOR") = int(mg::DELTA_XOR);
  m.attr("DELTA_SUB") = int(mg::DELTA_SUB);
  m.attr("CUDA_RUNTIME_VERSION") = mc::runtime_version_built();

  m.def(
      "planes_decode",
      [](uint64_t planes, uint64_t out, long long nbytes, long long elem_size, uint64_t base, long long delta,
         bool rotate, uint64_t stream) {
        planes_impl(false, planes, out, nbytes, elem_size, base, delta, rotate, stream);
      },
      py::arg("planes_ptr"), py::arg("out_ptr"), py::arg("nbytes"), py::arg("elem_size"),
      py::arg("base_ptr") = 0, py::arg("delta") = 0, py::arg("rotate") = false, py::arg("stream") = 0,
      "Inverse byte-plane transform (see _core.planes_decode): nbytes bytes of planes -> out.");
  m.def(
      "planes_encode",
      [](uint64_t data, uint64_t out, long long nbytes, long long elem_size, uint64_t base, long long delta,
         bool rotate, uint64_t stream) {
        planes_impl(true, data, out, nbytes, elem_size, base, delta, rotate, stream);
      },
      py::arg("data_ptr"), py::arg("out_ptr"), py::arg("nbytes"), py::arg("elem_size"),
      py::arg("base_ptr") = 0, py::arg("delta") = 0, py::arg("rotate") = false, py::arg("stream") = 0,
      "Byte-plane transform (see _core.planes_encode): nbytes bytes of data -> out planes.");
  m.def("qdelta_decode", &qdelta_decode_impl, py::arg("codes_ptr"), py::arg("base_ptr"),
        py::arg("exc_index_ptr"), py::arg("exc_values_ptr"), py::arg("n_exc"), py::arg("out_ptr"), py::arg("n"),
        py::arg("dtype"), py::arg("eps"), py::arg("stream") = 0,
        "Error-bounded delta decode (see _core.qdelta_decode) of n elements. Exception indices must "
        "be validated by the caller (ascending, < n); any >= n is ignored, never written.");
  m.def("lowbit_dequantize", &lowbit_dequantize_impl, py::arg("packed_ptr"), py::arg("scales_ptr"),
        py::arg("offsets_ptr"), py::arg("out_ptr"), py::arg("bits"), py::arg("group"), py::arg("n"),
        py::arg("stream") = 0, "Low-bit dequantization (see _core.lowbit_dequantize) to n float32.");
  m.def(
      "device_count",
      [] {
        int c = 0;
        mc::Status st;
        {
          py::gil_scoped_release nogil;
          st = mc::device_count(&c);
        }
        raise_if(st);
        return c;
      },
      "Number of CUDA devices (initialises the CUDA runtime of this module).");
}

// Bindings of the tensor sketch (core/sketch.hpp).
#include "core/sketch.hpp"

#include "bindings/core/pybuffer.hpp"

namespace modelgit::bindings {
namespace {

py::bytearray run(py::object x_o, const std::string& dtype, py::object k_o, py::object seed_o,
                  py::object threads_o) {
  const DType dt = check_dtype(dtype);
  const long long k = int_arg(k_o, "k");
  if (k < 1 || uint64_t(k) > kMaxSketchK)
    throw py::value_error("k must be in [1, 2**24], got " + std::to_string(k));
  if (!PyLong_Check(seed_o.ptr())) throw py::type_error("seed: expected an int");
  const uint64_t seed = PyLong_AsUnsignedLongLongMask(seed_o.ptr());  // mod 2**64
  if (PyErr_Occurred()) throw py::error_already_set();
  const int threads = threads_arg(threads_o);
  Buf x(x_o, "x");
  const size_t E = dtype_size(dt);
  if (x.size() % E)
    throw py::value_error("x: length " + std::to_string(x.size()) +
                          " is not a multiple of the element size " + std::to_string(E));
  uint8_t* op = nullptr;
  py::bytearray out = empty_bytearray(size_t(k) * 8, &op);
  const int nt = resolve_threads(threads, x.size());
  std::vector<double> s(static_cast<size_t>(k));
  {
    py::gil_scoped_release nogil;
    sketch(x.data(), x.size() / E, dt, uint64_t(k), seed, s.data(), nt);
    std::memcpy(op, s.data(), size_t(k) * 8);
  }
  return out;
}

py::tuple run_parts(py::object x_o, const std::string& dtype, py::object k_o, py::object parts_o) {
  const DType dt = check_dtype(dtype);
  const long long k = int_arg(k_o, "k");
  if (k < 1 || uint64_t(k) > kMaxSketchK)
    throw py::value_error("k must be in [1, 2**24], got " + std::to_string(k));
  Buf x(x_o, "x");
  const size_t E = dtype_size(dt);
  if (x.size() % E)
    throw py::value_error("x: length " + std::to_string(x.size()) +
                          " is not a multiple of the element size " + std::to_string(E));
  const uint64_t n = x.size() / E;
  std::vector<uint64_t> starts, counts, seeds;
  for (py::handle part : py::iter(parts_o)) {
    py::tuple t = py::reinterpret_borrow<py::object>(part).cast<py::tuple>();
    if (t.size() != 3) throw py::value_error("parts: each part is (start, count, seed)");
    const long long start = int_arg(t[0], "start"), count = int_arg(t[1], "count");
    // any integer (numpy's too, through __index__), taken mod 2**64
    py::object seed_int = py::reinterpret_steal<py::object>(PyNumber_Index(t[2].ptr()));
    if (!seed_int) {
      PyErr_Clear();
      throw py::type_error("seed: expected an integer");
    }
    const uint64_t seed = PyLong_AsUnsignedLongLongMask(seed_int.ptr());
    if (PyErr_Occurred()) throw py::error_already_set();
    if (start < 0 || count < 0 || uint64_t(start) > n || uint64_t(count) > n - uint64_t(start))
      throw py::value_error("parts: elements [" + std::to_string(start) + ", " +
                            std::to_string(start) + " + " + std::to_string(count) +
                            ") are not within the " + std::to_string(n) + " of x");
    starts.push_back(uint64_t(start));
    counts.push_back(uint64_t(count));
    seeds.push_back(seed);
  }
  uint8_t* op = nullptr;
  py::bytearray out = empty_bytearray(size_t(k) * 8, &op);
  std::vector<double> s(static_cast<size_t>(k));
  double norm2 = 0.0;
  uint64_t zeros = 0;
  {
    py::gil_scoped_release nogil;
    norm2 = sketch_parts(x.data(), dt, uint64_t(k), starts.data(), counts.data(), seeds.data(),
                         starts.size(), s.data(), &zeros);
    std::memcpy(op, s.data(), size_t(k) * 8);
  }
  return py::make_tuple(out, norm2, zeros);
}

}  // namespace

void register_sketch(py::module_& m) {
  m.def("sketch", &run, py::arg("x"), py::arg("dtype"), py::arg("k") = 64, py::arg("seed") = 0,
        py::arg("threads") = 0, "CountSketch of a float buffer: k float64 LE sums.");
  m.def("sketch_parts", &run_parts, py::arg("x"), py::arg("dtype"), py::arg("k"), py::arg("parts"),
        "Summed sketches of parts (start, count, seed) of x, their sum of squares, zeros.");
}

}  // namespace modelgit::bindings

"""The byte transforms of :mod:`modelgit._core` on the GPU, on torch CUDA tensors.

Optional: it needs the ``modelgit._cuda`` extension (built when CMake finds nvcc) and a
CUDA device. Importing this module imports neither torch nor the extension and never
initialises CUDA; :func:`is_available` says whether the functions can run.

Every function takes contiguous CUDA tensors of any dtype (sizes are counted in bytes,
as in ``_core``), all on one device, launches its kernel on that device's *current*
torch stream and returns without synchronising (like any torch operation). Results are
bit-identical to the CPU functions of the same name. Parameters and sizes are checked
before anything runs: a bad one raises ValueError (TypeError for a non-tensor).
``out=`` (a contiguous CUDA tensor of exactly the right number of bytes, any dtype) is
written in place and returned; without it a new tensor is allocated.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._native import cuda_module

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "DELTA_NONE",
    "DELTA_XOR",
    "DELTA_SUB",
    "DELTA_OSUB",
    "is_available",
    "unavailable_reason",
    "planes_encode",
    "planes_decode",
    "qdelta_decode",
    "lowbit_dequantize",
    "upload",
]

DELTA_NONE, DELTA_XOR, DELTA_SUB, DELTA_OSUB = 0, 1, 2, 3
_ITEMSIZE = {"float64": 8, "float32": 4, "float16": 2, "bfloat16": 2}


def unavailable_reason() -> str | None:
    """None when the GPU functions can run, else why not (initialises CUDA via torch)."""
    if cuda_module() is None:
        from . import _native

        err = getattr(_native, "_cuda_error", None)
        return "modelgit._cuda is not built (no nvcc at build time)" + (
            f": {err}" if err and "No module named" not in err else ""
        )
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return "torch is not installed"
    if not torch.cuda.is_available():
        return "torch sees no CUDA device"
    return None


def is_available() -> bool:
    """Whether ``modelgit._cuda`` is built and torch sees a CUDA device."""
    return unavailable_reason() is None


def _module() -> Any:
    mod = cuda_module()
    if mod is None:
        raise RuntimeError(unavailable_reason() or "modelgit._cuda is not available")
    return mod


def _nbytes(t: Any, name: str) -> int:
    import torch

    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
    if t.device.type != "cuda":
        raise ValueError(f"{name}: must be a CUDA tensor, got one on {t.device}")
    if not t.is_contiguous():
        raise ValueError(f"{name}: must be contiguous; pass .contiguous()")
    return t.numel() * t.element_size()


def _same_device(named: dict[str, Any]) -> Any:
    device = None
    for name, t in named.items():
        if t is None:
            continue
        if device is None:
            device = t.device
        elif t.device != device:
            raise ValueError(f"{name} is on {t.device} but the other tensors are on {device}")
    return device


def _stream(device: Any) -> int:
    import torch

    return int(torch.cuda.current_stream(device).cuda_stream)


def _out(out: Any, nbytes: int, device: Any, dtype: Any, numel: int) -> Any:
    import torch

    if out is None:
        return torch.empty(numel, dtype=dtype, device=device)
    got = _nbytes(out, "out")
    if got != nbytes:
        raise ValueError(f"out: tensor has {got} bytes, expected exactly {nbytes}")
    if out.device != device:
        raise ValueError(f"out is on {out.device} but the inputs are on {device}")
    return out


def upload(buf: Any, device: Any = "cuda") -> torch.Tensor:
    """Copy a host buffer (bytes-like, numpy array or CPU tensor) to a new CUDA uint8
    tensor on ``device`` (e.g. decompressed chunk bytes before a GPU transform)."""
    import warnings

    import torch

    a = _host_bytes(buf, "buf")
    t = torch.empty(a.size, dtype=torch.uint8, device=device)
    if a.size:
        with warnings.catch_warnings():  # read-only buffers: torch warns, but only reads
            warnings.simplefilter("ignore")
            src = torch.from_numpy(a)
        t.copy_(src)
    return t


# --- byte planes ------------------------------------------------------------------------


def _planes(encode: bool, src, elem_size, base, delta, rotate, out):
    import torch

    mod = _module()
    sname = "data" if encode else "planes"
    nbytes = _nbytes(src, sname)
    if elem_size not in (1, 2, 4, 8):
        raise ValueError(f"elem_size must be 1, 2, 4 or 8, got {elem_size!r}")
    if delta not in (DELTA_NONE, DELTA_XOR, DELTA_SUB, DELTA_OSUB):
        raise ValueError(
            "delta must be DELTA_NONE (0), DELTA_XOR (1), DELTA_SUB (2) or DELTA_OSUB (3), "
            f"got {delta!r}"
        )
    if nbytes % elem_size:
        raise ValueError(f"{sname}: length {nbytes} is not a multiple of elem_size {elem_size}")
    if delta == DELTA_NONE and base is not None:
        raise ValueError("base given but delta is DELTA_NONE; pass delta=DELTA_XOR or DELTA_SUB")
    if delta != DELTA_NONE and base is None:
        raise ValueError("delta != DELTA_NONE requires base")
    if base is not None:
        nb = _nbytes(base, "base")
        if nb != nbytes:
            raise ValueError(f"base has {nb} bytes but {sname} has {nbytes}; they must be equal")
    device = _same_device({sname: src, "base": base})
    out = _out(out, nbytes, device, torch.uint8, nbytes)
    fn = mod.planes_encode if encode else mod.planes_decode
    fn(
        src.data_ptr(),
        out.data_ptr(),
        nbytes,
        elem_size,
        base.data_ptr() if base is not None else 0,
        delta,
        bool(rotate),
        _stream(device),
    )
    return out


def planes_encode(
    data: torch.Tensor,
    elem_size: int,
    base: torch.Tensor | None = None,
    delta: int = DELTA_NONE,
    rotate: bool = False,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """GPU ``_core.planes_encode``: byte planes of ``data`` (a uint8 tensor unless ``out``)."""
    return _planes(True, data, elem_size, base, delta, rotate, out)


def planes_decode(
    planes: torch.Tensor,
    elem_size: int,
    base: torch.Tensor | None = None,
    delta: int = DELTA_NONE,
    rotate: bool = False,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """GPU ``_core.planes_decode``: the words back (a uint8 tensor unless ``out``; decode
    straight into the destination tensor with ``out=``, e.g. a bfloat16 parameter)."""
    return _planes(False, planes, elem_size, base, delta, rotate, out)


# --- error-bounded quantized delta ---------------------------------------------------------


def _host_bytes(obj: Any, name: str):
    """A host buffer (bytes-like, numpy array, CPU tensor) as a flat uint8 numpy array."""
    import numpy as np
    import torch

    if isinstance(obj, torch.Tensor):
        if not obj.is_contiguous():
            raise ValueError(f"{name}: must be contiguous")
        return obj.detach().reshape(-1).view(torch.uint8).numpy()
    if isinstance(obj, np.ndarray):
        if not obj.flags.c_contiguous:
            raise ValueError(f"{name}: must be C-contiguous")
        return obj.reshape(-1).view(np.uint8)
    try:
        return np.frombuffer(memoryview(obj).cast("B"), dtype=np.uint8)
    except TypeError as exc:
        raise TypeError(f"{name}: expected a tensor or a bytes-like object") from exc


def _exceptions_to_device(exc_index, exc_values, es: int, n: int, device: Any, check: bool):
    import numpy as np
    import torch

    idx_dev = isinstance(exc_index, torch.Tensor) and exc_index.device.type == "cuda"
    val_dev = isinstance(exc_values, torch.Tensor) and exc_values.device.type == "cuda"
    if idx_dev:
        nidx = _nbytes(exc_index, "exc_index")
    else:
        idx_host = _host_bytes(exc_index, "exc_index")
        nidx = idx_host.size
    if nidx % 8:
        raise ValueError(f"exc_index: length {nidx} is not a multiple of 8 (uint64 indices)")
    count = nidx // 8
    if val_dev:
        nval = _nbytes(exc_values, "exc_values")
    else:
        val_host = _host_bytes(exc_values, "exc_values")
        nval = val_host.size
    if nval != count * es:
        raise ValueError(
            f"exc_values has {nval} bytes, expected {count * es} ({count} exceptions of {es} bytes)"
        )
    if idx_dev:
        if exc_index.device != device:
            raise ValueError(f"exc_index is on {exc_index.device} but the inputs are on {device}")
        idx_t = exc_index
        if check and count:
            u8 = exc_index.reshape(-1).view(torch.uint8)
            try:
                i64 = u8.view(torch.int64)
            except RuntimeError:  # storage offset not a multiple of 8
                i64 = u8.clone().view(torch.int64)
            # uint64 indices >= 2**63 read as negative int64: out of range as well
            bad_range = ((i64 < 0) | (i64 >= n)).any()
            bad_order = (i64[1:] <= i64[:-1]).any() if count > 1 else torch.zeros_like(bad_range)
            r, o = torch.stack([bad_range, bad_order]).tolist()
            if r:
                raise ValueError("exc_index: an exception index is out of range (>= n)")
            if o:
                raise ValueError("exc_index: indices must be strictly ascending")
    else:
        idx = idx_host.view(np.dtype("<u8"))
        if check and count:
            if int(idx.max()) >= n:
                raise ValueError("exc_index: an exception index is out of range (>= n)")
            if count > 1 and not bool(np.all(idx[1:] > idx[:-1])):
                raise ValueError("exc_index: indices must be strictly ascending")
        idx_t = torch.from_numpy(idx_host.copy()).to(device)
    if val_dev:
        if exc_values.device != device:
            raise ValueError(f"exc_values is on {exc_values.device} but the inputs are on {device}")
        val_t = exc_values
    else:
        val_t = torch.from_numpy(val_host.copy()).to(device)
    return idx_t, val_t, count


def qdelta_decode(
    codes: torch.Tensor,
    base: torch.Tensor,
    exc_index: Any,
    exc_values: Any,
    dtype: str,
    eps: float,
    out: torch.Tensor | None = None,
    check: bool = True,
) -> torch.Tensor:
    """GPU ``_core.qdelta_decode``.

    ``codes`` (int32 LE) and ``base`` are CUDA tensors; ``exc_index`` (uint64 LE) and
    ``exc_values`` may be CUDA tensors or host buffers (bytes, numpy, CPU tensors; they
    are validated on the host and copied to the device). Exception indices are checked
    (strictly ascending, < n) like on the CPU; for indices already on the GPU that check
    synchronises with the stream; ``check=False`` skips it (the kernel still never
    writes out of bounds). Returns a tensor of ``dtype`` unless ``out`` is given.
    """
    import torch

    mod = _module()
    if dtype not in _ITEMSIZE:
        raise ValueError(
            f"dtype must be 'float64', 'float32', 'float16' or 'bfloat16', got {dtype!r}"
        )
    es = _ITEMSIZE[dtype]
    nbase = _nbytes(base, "base")
    if nbase % es:
        raise ValueError(f"base: length {nbase} is not a multiple of the element size {es}")
    n = nbase // es
    ncodes = _nbytes(codes, "codes")
    if ncodes != 4 * n:
        raise ValueError(f"codes has {ncodes} bytes, expected {4 * n} (4 per element of base)")
    device = _same_device({"codes": codes, "base": base})
    eps = float(eps)
    idx_t, val_t, count = _exceptions_to_device(exc_index, exc_values, es, n, device, check)
    out = _out(out, n * es, device, getattr(torch, dtype), n)
    mod.qdelta_decode(
        codes.data_ptr(),
        base.data_ptr(),
        idx_t.data_ptr() if count else 0,
        val_t.data_ptr() if count else 0,
        count,
        out.data_ptr(),
        n,
        dtype,
        eps,
        _stream(device),
    )
    return out


# --- low-bit dequantization ----------------------------------------------------------------


def lowbit_dequantize(
    packed: torch.Tensor,
    scales: torch.Tensor,
    offsets: torch.Tensor,
    bits: int,
    group: int,
    n: int,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """GPU ``_core.lowbit_dequantize``: ``n`` float32 values (a float32 tensor unless ``out``)."""
    import torch

    mod = _module()
    if bits not in (1, 2, 4, 8):
        raise ValueError(f"bits must be 1, 2, 4 or 8, got {bits!r}")
    if not isinstance(group, int) or group < 1:
        raise ValueError(f"group must be an int >= 1, got {group!r}")
    if not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be an int >= 0, got {n!r}")
    np_ = _nbytes(packed, "packed")
    if np_ != (n * bits + 7) // 8:
        raise ValueError(f"packed has {np_} bytes, expected {(n * bits + 7) // 8}")
    ngroups = (n + group - 1) // group
    for name, t in (("scales", scales), ("offsets", offsets)):
        nb = _nbytes(t, name)
        if nb != 4 * ngroups:
            raise ValueError(
                f"{name} has {nb} bytes, expected {4 * ngroups} (one float32 per group)"
            )
    device = _same_device({"packed": packed, "scales": scales, "offsets": offsets})
    out = _out(out, 4 * n, device, torch.float32, n)
    mod.lowbit_dequantize(
        packed.data_ptr(),
        scales.data_ptr(),
        offsets.data_ptr(),
        out.data_ptr(),
        bits,
        group,
        n,
        _stream(device),
    )
    return out

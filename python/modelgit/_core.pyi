"""Type stub and specification of modelgit._core (C++17, pybind11).

This file is the contract of the native core. Every function:

* takes any C-contiguous buffer (bytes, bytearray, memoryview, numpy array);
  a non-contiguous buffer raises ValueError;
* returns a new ``bytearray`` (or writes into ``out=`` and returns it, when given;
  ``out`` must be writable, C-contiguous and exactly the right size);
* releases the GIL for its work and splits inputs of 4 MiB or more across
  ``threads`` threads (0 = as many as the hardware has; results never depend on it);
* validates every length and parameter and raises ValueError with a readable message,
  never reads or writes out of bounds.

Clarifications (native core):

* an object that does not support the buffer protocol, or a non-int where an int is
  expected, raises TypeError; every wrong *value* (length, size, range, mode, dtype,
  non-contiguous or read-only buffer) raises ValueError;
* ``out`` must not overlap any input buffer (ValueError);
* ``threads`` must be >= 0; values above 256 are capped at 256;
* zero-length inputs are valid everywhere and give empty outputs.

Words are little-endian. ``dtype`` names: "float64", "float32", "float16", "bfloat16"
(a bfloat16 or float16 buffer is passed as its raw 2-byte words).

Float arithmetic is IEEE-754, round-to-nearest-even, no FMA contraction
(compiled with -ffp-contract=off; the CUDA kernels use __fmul_rn/__fadd_rn), so
that numpy references and the CUDA module reproduce results bit for bit.
"""

from collections.abc import Sequence

from typing_extensions import Buffer

__version__: str

# --- delta modes of the byte-plane transform ------------------------------------
DELTA_NONE: int  # 0
DELTA_XOR: int  # 1: w = t ^ tb
DELTA_SUB: int  # 2: w = (t - tb) mod 2**(8*elem_size)
DELTA_OSUB: int  # 3: w = zigzag(ordered(t) - ordered(tb)) mod 2**(8*elem_size)

def kernels(which: str | None = None) -> str:
    """The copies of the vectorized kernels in use (the byte planes and ``cast``):
    ``"avx2"`` (built on x86-64 with GCC, picked where the CPU has AVX2, unless
    ``$MODELGIT_KERNELS`` is ``"baseline"``; other values change nothing) or
    ``"baseline"``. ``which`` (``"auto"``: that first choice, ``"baseline"`` or
    ``"avx2"``) sets them for the whole process (ValueError where there are no AVX2
    copies). Both copies yield the same bytes: tests compare them."""

def hardware_threads() -> int: ...
def planes_encode(
    data: Buffer,
    elem_size: int,
    base: Buffer | None = None,
    delta: int = 0,
    rotate: bool = False,
    out: Buffer | None = None,
    threads: int = 0,
) -> bytearray:
    """Delta against ``base`` fused with a split into byte planes.

    ``elem_size`` in {1, 2, 4, 8}; ``len(data) % elem_size == 0``; m = number of words.
    For word i (x = data word, b = base word, both read little-endian):
      t  = rotl(x, 1) if rotate else x        (rotate within elem_size*8 bits: the
      tb = rotl(b, 1) if rotate else b         sign bit moves to bit 0, so the exponent of
                                               float32/bfloat16 fills the top byte)
      w  = t                    if delta == DELTA_NONE (base must be None)
           t ^ tb               if delta == DELTA_XOR
           (t - tb) mod 2**bits if delta == DELTA_SUB
           zigzag((ordered(t) - ordered(tb)) mod 2**bits) if delta == DELTA_OSUB
    where ordered(v) = v ^ (2**(bits-1) - 1) if the top bit of v is set, else v (maps an
    IEEE sign-magnitude pattern to an integer that orders like the value; an
    involution) and zigzag(d) = (d << 1) ^ (all ones if d's top bit is set else 0),
    so a small difference of either sign becomes a small unsigned word.
    Output (same length as data): plane p = 0..elem_size-1 holds byte (elem_size-1-p) of
    every w, i.e. out[p*m + i] = (w >> (8*(elem_size-1-p))) & 0xFF. Plane 0 is the most
    significant byte (sign/exponent), the last plane the least significant.
    ``base`` must have the same length as ``data``; ``delta`` != NONE requires it.
    Clarification: a ``base`` given with ``delta == DELTA_NONE`` raises ValueError
    (rather than being silently ignored).
    """

def planes_decode(
    planes: Buffer,
    elem_size: int,
    base: Buffer | None = None,
    delta: int = 0,
    rotate: bool = False,
    out: Buffer | None = None,
    threads: int = 0,
) -> bytearray:
    """Exact inverse of planes_encode with the same parameters."""

def planes_decode_parts(
    parts: Sequence[Buffer],
    elem_size: int,
    base: Buffer | None = None,
    delta: int = 0,
    rotate: bool = False,
    out: Buffer | None = None,
    threads: int = 0,
) -> bytearray:
    """planes_decode with plane p in its own buffer ``parts[p]``: exactly ``elem_size``
    buffers of the same length m (the output has m * elem_size bytes). Equal to
    ``planes_decode(b"".join(parts), ...)``; lets a decoder transform planes from where
    they lie (a record's raw sections, decoded zstd frames) without a staging copy.
    ``out`` must overlap none of the parts nor ``base``.
    """

def planes_apply_parts(
    parts: Sequence[Buffer],
    elem_size: int,
    delta: int,
    rotate: bool = False,
    out: Buffer | None = None,
    threads: int = 0,
) -> bytearray:
    """planes_decode_parts in place: ``out`` (required, m * elem_size bytes) holds the
    delta base and receives the decoded words, exactly what
    ``planes_decode_parts(parts, elem_size, base=bytes(out), delta=delta, rotate=rotate)``
    returns. ``delta`` must not be DELTA_NONE; ``out`` must overlap none of the parts.
    Lets a decoder write a base straight into its output and apply the residual there
    (no second buffer for the base)."""

def planes_decode_pair(
    base_parts: Sequence[Buffer],
    base_rotate: bool,
    parts: Sequence[Buffer],
    elem_size: int,
    delta: int,
    rotate: bool = False,
    out: Buffer | None = None,
    threads: int = 0,
) -> bytearray:
    """A delta and its standalone base decoded in one pass: exactly what
    ``planes_decode_parts(parts, elem_size, base=planes_decode_parts(base_parts,
    elem_size, rotate=base_rotate), delta=delta, rotate=rotate)`` returns, without
    writing the base anywhere. ``base_parts`` and ``parts``: ``elem_size`` planes of m
    bytes each; ``delta`` must not be DELTA_NONE; ``out`` must overlap no plane."""

def zero_mask(data: Buffer, pred: Buffer, elem_size: int) -> tuple[bytearray, bytearray]:
    """The zero mask of the predicted codec (docs/FORMAT.md 3.3): ``(bits, masked)``.

    Over the m little-endian words of ``data`` and ``pred`` (elem_size in {1, 2, 4, 8},
    equal lengths): bit i of ``bits`` (ceil(m / 8) bytes, least significant bit first,
    as ``np.packbits(words == 0, bitorder="little")``) is set iff word i of ``data`` is
    zero; ``masked`` is ``pred`` with those words set to zero.
    """

# --- float casts (the cast and mean predictors, docs/FORMAT.md 3.3) --------------
def cast(
    src: Buffer, src_dtype: str, dst_dtype: str, out: Buffer | None = None, threads: int = 0
) -> bytearray:
    """The elements of ``src`` converted from ``src_dtype`` to ``dst_dtype`` exactly as
    ``torch.Tensor.to`` does on an x86-64 CPU, and on every host:

    * every conversion goes through float32: float64 -> float32 rounds to nearest even;
      float16 -> float32 and bfloat16 -> float32 are exact; float32 -> float16 and
      float32 -> bfloat16 round to nearest even (overflow to infinity, subnormals kept);
      float32 -> float64 is exact;
    * NaN: to float32 from float64 keeps the sign, sets the quiet bit and keeps the top
      22 payload bits; from float16 keeps the sign, quiets and shifts the payload left
      by 13; from bfloat16 is a plain shift (a signalling NaN stays one); float32 ->
      float64 quiets and shifts the payload left by 29; float32 -> float16 gives
      sign | 0x7E00 | payload >> 13; float32 -> bfloat16 gives 0xFFFF; float16 ->
      bfloat16 gives 0x7FC0.

    ``src`` holds whole elements. The same dtype on both sides copies; then ``out`` may
    be ``src`` itself."""

def mean_cast(
    srcs: Sequence[Buffer],
    src_dtype: str,
    dst_dtype: str,
    out: Buffer | None = None,
    threads: int = 0,
) -> bytearray:
    """The element-wise mean of 1 to 255 buffers of the same length: each element
    converted to float32 (as ``cast``), summed in order in float32, divided by the count
    in float32, converted to ``dst_dtype`` (as ``cast``). NaN rules of the float32
    steps: a NaN operand gives that NaN with the quiet bit set (the later operand's when
    both are NaN), inf + -inf gives 0xFFC00000."""

LINEAR_EXACT: int  # 0
LINEAR_SEQ: int  # 1
LINEAR_ANCHORED: int  # 2

def linear_cast(
    srcs: Sequence[Buffer],
    coeffs: Sequence[float],
    src_dtype: str,
    dst_dtype: str,
    mode: int = 0,
    out: Buffer | None = None,
    threads: int = 0,
) -> bytearray:
    """A linear combination of 1 to 255 float buffers of the same length, one
    coefficient each (docs/FORMAT.md 3.3, predictors 4-6). ``mode`` 0: the sum of
    ``c_j * x_j`` in float64, in order, rounded once to ``dst_dtype`` (through float32
    for the 16-bit dtypes); 1: torch's ``c_0*x_0 + c_1*x_1 + ...``, each product and sum
    rounded to the dtype; 2: torch's ``x_0 + c_1*(x_1 - x_0) + ...`` (task arithmetic).
    Modes 1 and 2 need ``src_dtype == dst_dtype`` and compute float16/bfloat16/float32
    in float32 with the coefficients rounded to float32, float64 in float64. Every NaN
    result is the canonical quiet NaN (float32 0x7FC00000 cast to ``dst_dtype``)."""

# --- error-bounded quantized delta (lossy, every element within eps) -------------
def qdelta_encode(
    x: Buffer, base: Buffer, dtype: str, eps: float, threads: int = 0
) -> tuple[bytearray, bytearray, bytearray]:
    """Quantize x - base with step 2*eps so that every decoded element is within eps.

    Returns (codes, exc_index, exc_values): codes is int32 LE, one per element;
    exc_index is uint64 LE (ascending element indices); exc_values holds the exact raw
    words of x at those indices (elem_size bytes each).

    Let step = 2*eps. For float64 arithmetic is in double with s = step.
    For float32/float16/bfloat16 arithmetic is in float32 with s = float32(step), and
    values are widened exactly to float32 (bfloat16: bits << 16).
      q   = rint_half_even( (double(x) - double(base)) / double(s) )      (in double)
      dec = T( fadd(base_f, fmul(float(q), s)) )   (float32 ops, then T rounding RNE:
            float32 -> float16 as IEEE, float32 -> bfloat16 as (u + 0x7FFF + ((u>>16)&1))>>16
            for non-NaN u; float64: dec = base + q*s in double)
    Element i is an exception (code 0, listed in exc_index/exc_values) when x or base is
    not finite, |q| > 2**31 - 1, dec is not finite, or |double(dec) - double(x)| > eps.
    eps must be finite and > 0 (and float32(step) > 0 for the 32/16-bit types).

    Clarifications:
    * float(q) and dec are computed from the int32 code (so q == -0.0 behaves as +0);
      the decoder recomputes exactly the same dec from the code, so encode's check is
      the decoder's result. Exceptions get code 0.
    * "x - base" is the double difference of the exactly widened values.
    * float32 -> bfloat16 of a NaN is (u >> 16) | 0x40; float32 -> float16 of a NaN is
      0x7C00 | (mantissa >> 13) (made non-zero). Neither is observable: such elements
      are always exceptions.
    * if step or float32(step) overflows to inf, every element is an exception.
    * the decoder accepts any int32 code (garbage codes decode to garbage values, never
      out of bounds); only lengths and the exception list are validated.
    """

def qdelta_decode(
    codes: Buffer,
    base: Buffer,
    exc_index: Buffer,
    exc_values: Buffer,
    dtype: str,
    eps: float,
    out: Buffer | None = None,
    threads: int = 0,
) -> bytearray:
    """Inverse of qdelta_encode: dec as above for every element, then the exceptions
    are written back exactly. Out-of-range or unsorted exception indices, and buffers of
    the wrong lengths, raise ValueError."""

# --- low-bit quantization with per-group scales ----------------------------------
def lowbit_quantize(
    x: Buffer, bits: int, group: int, threads: int = 0
) -> tuple[bytearray, bytearray, bytearray]:
    """Quantize float32 ``x`` to ``bits`` in {1, 2, 4, 8} per group of ``group`` elements.

    Returns (packed, scales, offsets): packed codes (see pack_bits), and one float32
    scale and one float32 offset per group (the last group may be short).
    bits == 1 (BitDelta-like): scale = float32(mean(|x|) in double over the group's
      finite elements), offset = 0; code = 1 if x >= 0 else 0 (NaN -> 1);
      decoded = scale if code else -scale.
    bits >= 2: lo = min, hi = max over the group's finite elements (0, 0 if none),
      L = 2**bits - 1, scale = float32((double(hi) - double(lo)) / L), offset = lo;
      code = clamp(rint_half_even((double(x) - double(lo)) / double(scale)), 0, L)
      (0 when scale == 0 or x is not finite);
      decoded = fadd(fmul(float(code), scale), offset) in float32.

    Clarifications:
    * x must be float32 (len(x) % 4 == 0); n = len(x) // 4, ceil(n / group) groups.
    * bits == 1: the sum of |x| runs sequentially in element order in double (not a
      pairwise sum), then is divided by the count of finite elements (scale 0 if none).
    * bits >= 2: for min / max, -0.0 orders below +0.0, so lo and hi do not depend on
      the order in which elements are visited.
    """

def lowbit_dequantize(
    packed: Buffer,
    scales: Buffer,
    offsets: Buffer,
    bits: int,
    group: int,
    n: int,
    out: Buffer | None = None,
    threads: int = 0,
) -> bytearray:
    """Decoded float32 values (n elements) as defined in lowbit_quantize.

    n >= 0; len(packed) must be ceil(n*bits/8), len(scales) == len(offsets) ==
    4*ceil(n/group). Unused high bits of the last packed byte are ignored. With
    bits == 1 the offsets are ignored (but must have the right length)."""

def pack_bits(codes: Buffer, bits: int) -> bytearray:
    """Pack uint8 codes (each < 2**bits), LSB first: code i occupies bits
    [(i*bits) % 8, (i*bits) % 8 + bits) of byte (i*bits) // 8. Output length
    ceil(n*bits/8); unused high bits of the last byte are 0. A code >= 2**bits raises."""

def unpack_bits(packed: Buffer, bits: int, n: int) -> bytearray:
    """Inverse of pack_bits: n uint8 codes. len(packed) must be ceil(n*bits/8).
    Unused high bits of the last byte are ignored (not validated)."""

# --- tensor sketch ---------------------------------------------------------------
def sketch(x: Buffer, dtype: str, k: int = 64, seed: int = 0, threads: int = 0) -> bytearray:
    """CountSketch of a float buffer: k float64 LE sums.

    For element i (widened exactly to double; non-finite elements are skipped):
      h = splitmix64(i + seed * 0x9E3779B97F4A7C15)   (mod 2**64)
      bucket = ((h >> 32) * k) >> 32,  sign = +1 if h & 1 else -1
      s[bucket] += sign * x_i
    Sums run sequentially within fixed blocks of 65536 elements; block partial sums are
    added in block order, so the result does not depend on the thread count.
    ||sketch(a) - sketch(b)|| estimates ||a - b|| (same shape), in O(k) per comparison.
    splitmix64(z): z += 0x9E3779B97F4A7C15; z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EB; return z ^ (z >> 31).

    Clarifications: 1 <= k <= 2**24; ``seed`` may be any int, taken mod 2**64.
    Each block's partial sums start at +0.0 and accumulate ``+x_i`` or ``-x_i`` (exact
    negation) in element order; the result starts at +0.0 and adds each block's partial
    vector in block order (s = s + p_b), so np.bincount per block reproduces it bit for bit.
    """

def sketch_parts(
    x: Buffer, dtype: str, k: int, parts: Sequence[tuple[int, int, int]]
) -> tuple[bytearray, float, int]:
    """Sketches of several parts of one float buffer, single-threaded (one call per
    tensor for the similarity index): ``(sketch, norm2, zeros)``.

    Part j = (start, count, seed): the ``count`` elements from element ``start``,
    sketched as ``sketch(x[start:start+count], dtype, k, seed)``; the result (k float64
    LE) starts at +0.0 and adds each part's sketch in part order (so it equals summing
    the per-part ``sketch`` results in that order, bit for bit). ``norm2``: the sum of
    squares of the parts' finite elements (each part summed in element order, the part
    sums added in part order); ``zeros``: how many of their elements equal zero (+0.0
    or -0.0; NaN is not zero).

    Clarifications: 1 <= k <= 2**24; every part must lie within x (ValueError);
    ``seed`` may be any int, taken mod 2**64; no parts: k zeros, 0.0, 0.
    """

# --- pricing a chunk's codings on a sample (storage/policy.py) --------------------
def residual_bits(y: Buffer, pred: Buffer, elem_size: int) -> tuple[float, float]:
    """What a residual costs, roughly: ``(plain, masked)`` over the little-endian
    unsigned words (elem_size in {1, 2, 4, 8}) of ``y`` and ``pred`` (equal lengths).

    plain  = mean over i of log2(1 + |double(y_i) - double(p_i)|)
    masked = mean over i of (0 if y_i == 0 else log2(1 + |...|)) + H(share of zero y_i)
    where H(s) = -(s log2 s + (1 - s) log2(1 - s)), 0 for s in {0, 1}: the cost with a
    zero mask. Sums run in element order. Empty inputs: (0.0, 0.0).
    """

def plane_entropy(words: Buffer, elem_size: int, rotate: bool = False) -> float:
    """The order-0 entropy of each byte plane of the words (little-endian, elem_size
    in {1, 2, 4, 8}), in bits per word, summed over the planes: about what
    standalone byte-plane coding reaches. ``rotate``: each word is first rotated left
    by one bit within its elem_size*8 bits (as ``planes_encode`` does for floats).
    Per plane: -sum over byte values b with count c_b > 0 of (c_b/n) log2(c_b/n),
    in byte-value order; planes added in order. Empty input: 0.0.
    """

def log_ratio_median(y: Buffer, base: Buffer, dtype: str, step: int = 1) -> tuple[int, float]:
    """``(count, median)`` of log(|y_i| / |base_i|) over the elements i = 0, step,
    2 step, ... (``dtype`` floats, equal lengths) where y_i and base_i are both finite
    and y_i * base_i > 0 (computed in float64: nonzero, one sign). The median of an
    even count is the mean of the two middle values (as numpy's); NaN when count is 0.
    The ratios are selected first and only the middle ones' logs taken (log is
    monotonic: the same values). step >= 1.
    """

# --- order-0 rANS entropy coder (FORMAT.md section 3, section method 2) -------------
RANS_SCALE_BITS: int  # 12: frequencies are normalized to sum 2**12

def rans_encode(data: Buffer, max_size: int = -1, simd: bool = True) -> bytes | None:
    """An order-0 rANS stream of ``data`` (at least one byte): u8 scale bits (12), the
    frequency table, 16 little-endian u32 final states, then 16-bit little-endian words.

    Returns None when the stream would be longer than ``max_size`` bytes (checked on an
    estimate first, so that a stream that will not be kept is never coded; max_size < 0:
    no limit). The exact layout is in docs/FORMAT.md. x86 CPUs with SSE4.1 code 4
    states per instruction; ``simd=False`` forces the portable loop, which writes the
    identical stream (tests check both).
    """

def rans_estimate(data: Buffer) -> int:
    """The length rans_encode(data) would have, to within a few bytes (0 for no data):
    one histogram pass, no coding."""

def rans_decode(
    stream: Buffer,
    size: int,
    out: Buffer | None = None,
    simd: bool = True,
    decoder: str | None = None,
) -> bytearray:
    """Decode a rans_encode stream into exactly ``size`` bytes: a new bytearray, or the
    caller's writable ``out`` of exactly ``size`` bytes (returned). Raises ValueError
    naming the defect for a stream that is truncated, has trailing bytes, a malformed
    frequency table or final states that are not the encoder's initial ones.

    ``decoder`` picks the decode loop: one of :func:`rans_decoders` or ``"auto"`` (the
    fastest); None (the default) is the first of :func:`rans_decoders` (the fastest, or
    ``$MODELGIT_RANS_DECODER``), and ``simd=False`` with None is ``"portable"``. A name
    this CPU cannot run raises ValueError. Every loop gives identical bytes and refuses
    the same streams with the same message (tests check each against the others):

    - ``"sse4.1"`` (x86 CPUs with SSE4.1): the 16 states in four 4 x u32 vectors, table
      lookups through general registers, and a block of words looked up in the table
      ahead, so that a state that takes a word finds its next table entry ready;
    - ``"portable"``: plain C++, rounds of 16 steps with a branch-free renormalization.
    """

def rans_decoders() -> list[str]:
    """The rANS decode loops this CPU and build run, the one :func:`rans_decode` uses by
    default first: ``$MODELGIT_RANS_DECODER`` when it names one of them (read once, at
    import; any other value warns with RuntimeWarning and is ignored), else the fastest.
    E.g. ``["sse4.1", "portable"]``."""

# --- runs sections (FORMAT.md section 3.5, section method 3) -------------------------
RUNS_MIN_SHARE: float  # 0.75: the share of the bytes the dominant value must hold

def runs_encode(data: Buffer, max_size: int = -1) -> bytes | None:
    """The runs section of ``data`` (at least one byte, under 4 GiB): u8 the most
    frequent byte value v, u8 the escape of the run bytes (255, 127 or 63: whichever
    codes smallest), u32 L (the other bytes, the literals), u32 R (the run bytes), then
    the literals and the run bytes as two parts, each rANS coded or raw.

    Returns None when v holds less than RUNS_MIN_SHARE of the bytes, or when the section
    would be longer than ``max_size`` bytes (max_size < 0: no limit). The exact layout is
    in docs/FORMAT.md.
    """

def runs_decode(stream: Buffer, size: int, out: Buffer | None = None) -> bytearray:
    """Decode a runs_encode section into exactly ``size`` bytes: a new bytearray, or the
    caller's writable ``out`` of exactly ``size`` bytes (returned). Raises ValueError
    naming the defect for a section that is truncated, has trailing bytes, a bad part or
    runs that do not add up to ``size``."""

# --- Huffman sections (FORMAT.md section 3.6, section method 4) ----------------------
HUFF_MAX_BITS: int  # 11: the longest code, and the bits a decoder's table lookup reads

def huff_encode(data: Buffer, max_size: int = -1) -> bytes | None:
    """The Huffman section of ``data`` (at least one byte, under 4 GiB): u8 the first
    value with a code, u8 the number of values less one, their 4-bit code lengths, three
    u32 stream lengths, then four streams of canonical codes of at most 11 bits, each
    coding a quarter of the values.

    Returns None when the section would be longer than ``max_size`` bytes (checked on
    the exact size from histograms first, so that a section that will not be kept is
    never coded; max_size < 0: no limit). The exact layout is in docs/FORMAT.md.
    """

def huff_estimate(data: Buffer) -> int:
    """The exact length huff_encode(data) would have (0 for no data): histograms and
    code lengths, no coding."""

def huff_decode(stream: Buffer, size: int, out: Buffer | None = None) -> bytearray:
    """Decode a huff_encode section into exactly ``size`` bytes: a new bytearray, or the
    caller's writable ``out`` of exactly ``size`` bytes (returned). Raises ValueError
    naming the defect for a section that is truncated, has bad code lengths, a bit
    string that starts no code, streams that end too soon or too late, or padding bits
    that are not zero. The four streams are decoded side by side, up to six values per
    lookup of the next 11 bits."""

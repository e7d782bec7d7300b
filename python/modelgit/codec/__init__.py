"""The codec layer: how the bytes of one chunk become a record payload and back.

Every codec has an id (``ids``; the record header's codec byte) and binary parameters
(in the record); docs/FORMAT.md section 3 specifies them. :data:`CODECS` is the one
table from an id to what the rest of modelgit needs to know of a codec: its name,
whether it is lossy, how it decodes, which base chunks it needs, whether the GPU read
path has a kernel for its transform. Python chooses (``storage.policy``), the native
core transforms, zstandard and the core's rANS, runs and Huffman coders are the entropy
stage (``entropy``).

Modules: ``lossless`` (raw, zstd, planes, predicted), ``lossy`` (qdelta, lowbit),
``predict`` (the predictions of delta codecs), ``entropy`` (sections). This layer
imports nothing from the storage layer or any layer above it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..errors import CorruptObject
from . import lossy
from .ids import FIRST_LOSSY, LOWBIT, PLANES, PREDICTED, QDELTA, RAW, ZSTD
from .lossless import (
    ZERO_ID,
    BasePlanes,
    Bases,
    Encoded,
    FromCallable,
    GetBase,
    PlanesParts,
    decode_planes,
    decode_predicted,
    decode_raw,
    decode_zstd,
    encode_planes,
    encode_predicted,
    encode_standalone,
    planes_bases,
    planes_parts,
    predicted_bases,
    standalone_planes,
)
from .predict import (
    CAST,
    IDENT,
    LINEAR,
    LINEAR_ANCHORED,
    LINEAR_PREDICTORS,
    LINEAR_SEQ,
    MEAN,
    PREDICTOR_NAMES,
    ZERO,
)

__all__ = [
    "RAW",
    "ZSTD",
    "PLANES",
    "PREDICTED",
    "QDELTA",
    "LOWBIT",
    "IDENT",
    "CAST",
    "MEAN",
    "ZERO",
    "LINEAR",
    "LINEAR_SEQ",
    "LINEAR_ANCHORED",
    "LINEAR_PREDICTORS",
    "ZERO_ID",
    "PREDICTOR_NAMES",
    "Codec",
    "CODECS",
    "Encoded",
    "Bases",
    "FromCallable",
    "GetBase",
    "encode_standalone",
    "encode_planes",
    "encode_predicted",
    "decode_into",
    "PlanesParts",
    "BasePlanes",
    "standalone_planes",
    "planes_parts",
    "codec_name",
    "bases_of",
    "is_lossy",
    "has_gpu_transform",
]

Decode = Callable[[bytes, memoryview, memoryview, Bases, str], None]


def _no_bases(params: bytes) -> list[bytes]:
    return []


@dataclass(frozen=True)
class Codec:
    """One row of the codec table."""

    id: int
    name: str
    decode: Decode  # (params, payload, out, bases, where): fills out or raises
    bases: Callable[[bytes], list[bytes]]  # params -> the chunk ids it decodes against
    gpu: bool = False  # the GPU read path has a kernel for its transform

    @property
    def lossy(self) -> bool:
        return self.id >= FIRST_LOSSY


CODECS: dict[int, Codec] = {
    c.id: c
    for c in (
        Codec(RAW, "raw", decode_raw, _no_bases),
        Codec(ZSTD, "zstd", decode_zstd, _no_bases),
        Codec(PLANES, "planes", decode_planes, planes_bases, gpu=True),
        Codec(PREDICTED, "predicted", decode_predicted, predicted_bases),
        Codec(QDELTA, "qdelta", lossy.decode_qdelta, lossy.qdelta_bases),
        Codec(LOWBIT, "lowbit", lossy.decode_lowbit, lossy.lowbit_bases),
    )
}


def codec_name(codec: int) -> str:
    c = CODECS.get(codec)
    return c.name if c is not None else f"codec-{codec}"


def is_lossy(codec: int) -> bool:
    return codec >= FIRST_LOSSY


def has_gpu_transform(codec: int) -> bool:
    c = CODECS.get(codec)
    return c is not None and c.gpu


def bases_of(codec: int, params: bytes) -> list[bytes]:
    """The chunk ids a record depends on (its delta bases); none for an unknown codec or
    unreadable parameters."""
    c = CODECS.get(codec)
    return c.bases(params) if c is not None else []


def decode_into(
    codec: int,
    params: bytes,
    payload: memoryview,
    out: memoryview,
    bases: Bases | GetBase,
    where: str = "chunk",
) -> None:
    """Decode a payload into ``out`` (exactly the chunk's decoded length); ``bases``
    gives the decoded base chunks (a :class:`Bases`, or a ``get_base(cid)`` function).

    Byte planes are transformed from where they lie (raw sections in ``payload``, zstd
    sections in their decoded frames) straight into ``out``: no staging copy. A delta
    on a standalone planes base that ``bases.planes`` hands over is decoded with the
    base's planes in one pass; any other delta is applied in place: the base (or the
    prediction) is written into ``out`` first."""
    c = CODECS.get(codec)
    if c is None:
        raise CorruptObject(f"{where}: unknown codec id {codec}")
    if not hasattr(bases, "into"):
        bases = FromCallable(bases)  # type: ignore[arg-type]
    c.decode(params, payload, out, bases, where)  # type: ignore[arg-type]

"""The formats layer: what comes from outside and goes back out.

``sources`` turns what users hand to ``add`` (a state_dict, an ``nn.Module``, a
``.safetensors`` file, a Hugging Face folder, sharded or not) into a stream of tensor
records with zero-copy views; ``safetensors_io`` reads and writes the safetensors format
itself, streaming, without the safetensors library's need to hold a whole file; ``hf``
builds a ``transformers`` model from a stored ``config.json`` (optional dependency). This
layer imports nothing from the storage layer or any layer above it.
"""

from __future__ import annotations

from .safetensors_io import SafetensorsFile, SafetensorsWriter, iter_shards
from .sources import ModelSource, TensorSource, open_model, tensor_bytes, tensor_from_buffer

__all__ = [
    "ModelSource",
    "TensorSource",
    "open_model",
    "tensor_bytes",
    "tensor_from_buffer",
    "SafetensorsFile",
    "SafetensorsWriter",
    "iter_shards",
]

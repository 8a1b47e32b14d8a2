"""Reading and writing Hugging Face checkpoints without torch.

An explicit table maps every checkpoint name to its expected shape (after nanoGPT's `from_pretrained`): each key is
checked, missing keys and shape mismatches are refused by name, unexpected keys are reported. Weights come from
`model.safetensors` (or its shards) through `safetensors.numpy`: nothing is unpickled. A `pytorch_model.bin` is
read only when torch is importable, and then with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import os
import warnings

import numpy as np

from refimpl.config import LongformerConfig
from refimpl.io.jsonfile import read_json

SAFETENSORS = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
PYTORCH_BIN = "pytorch_model.bin"

# buffers that some checkpoints carry and that hold nothing to learn
IGNORED_SUFFIXES = ("embeddings.position_ids",)


def encoder_shapes(config: LongformerConfig, pooler: bool) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every weight of LongformerModel, names as transformers' LongformerModel saves them."""
    C, F = config.hidden_size, config.intermediate_size
    shapes = {
        "embeddings.word_embeddings.weight": (config.vocab_size, C),
        "embeddings.position_embeddings.weight": (config.max_position_embeddings, C),
        "embeddings.token_type_embeddings.weight": (config.type_vocab_size, C),
        "embeddings.LayerNorm.weight": (C,),
        "embeddings.LayerNorm.bias": (C,),
    }
    for i in range(config.num_hidden_layers):
        p = f"encoder.layer.{i}."
        for name in ("query", "key", "value", "query_global", "key_global", "value_global"):
            shapes[p + f"attention.self.{name}.weight"] = (C, C)
            shapes[p + f"attention.self.{name}.bias"] = (C,)
        shapes.update({
            p + "attention.output.dense.weight": (C, C),
            p + "attention.output.dense.bias": (C,),
            p + "attention.output.LayerNorm.weight": (C,),
            p + "attention.output.LayerNorm.bias": (C,),
            p + "intermediate.dense.weight": (F, C),
            p + "intermediate.dense.bias": (F,),
            p + "output.dense.weight": (C, F),
            p + "output.dense.bias": (C,),
            p + "output.LayerNorm.weight": (C,),
            p + "output.LayerNorm.bias": (C,),
        })
    if pooler:
        shapes["pooler.dense.weight"] = (C, C)
        shapes["pooler.dense.bias"] = (C,)
    return shapes


def read_tensors(directory: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every tensor of the checkpoint in `directory`, as float32 NumPy arrays keyed by their saved names."""
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise ValueError(f"{directory!r} is not a directory; a checkpoint is a folder with config.json and "
                         f"{SAFETENSORS} (or {SAFETENSORS_INDEX} with shards, or {PYTORCH_BIN})")
    single = os.path.join(directory, SAFETENSORS)
    index = os.path.join(directory, SAFETENSORS_INDEX)
    if os.path.isfile(single):
        tensors = _read_safetensors(single)
    elif os.path.isfile(index):
        weight_map = read_json(index).get("weight_map")
        if not isinstance(weight_map, dict) or not all(isinstance(s, str) for s in weight_map.values()):
            raise ValueError(f"{index} is not a safetensors index: its 'weight_map' must be an object mapping "
                             "weight names to shard file names")
        tensors = {}
        for shard in sorted(set(weight_map.values())):
            path = os.path.join(directory, shard)
            if os.path.dirname(os.path.normpath(shard)) or not os.path.isfile(path):
                raise ValueError(f"{index} names shard {shard!r}, which is not a file in {directory}")
            tensors.update(_read_safetensors(path))
    elif os.path.isfile(os.path.join(directory, PYTORCH_BIN)):
        tensors = _read_pytorch_bin(os.path.join(directory, PYTORCH_BIN))
    else:
        raise ValueError(f"no weights in {directory}: looked for {SAFETENSORS}, {SAFETENSORS_INDEX} and {PYTORCH_BIN}")
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()}


def _read_safetensors(path: str) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    try:
        return load_file(path)
    except Exception as e:  # SafetensorError, or a dtype NumPy has no name for (bfloat16)
        raise ValueError(f"cannot read {path}: it is truncated, corrupt or holds an unsupported dtype ({e})") from None


def _read_pytorch_bin(path: str) -> dict[str, np.ndarray]:
    try:
        import torch
    except ImportError:
        raise ValueError(
            f"{path} is a PyTorch pickle, which is read only where torch is installed (and then without running "
            "pickled code); convert it to model.safetensors or install torch") from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"cannot read {path} with torch.load(weights_only=True): {e}") from None
    return {k: v.detach().float().numpy() for k, v in state.items()}


def match_keys(tensors: dict, expected: dict[str, tuple[int, ...]], optional=(), base_prefix="longformer."):
    """Pick every expected key from `tensors`, checking shapes.

    Encoder keys may be saved with or without `base_prefix` (a head model saves `longformer.embeddings...`,
    LongformerModel saves `embeddings...`). Keys in `optional` may be absent. Returns (params, unexpected).
    """
    found, unexpected = {}, []
    for saved, array in tensors.items():
        name = saved
        if name not in expected and name.startswith(base_prefix) and name[len(base_prefix):] in expected:
            name = name[len(base_prefix):]
        if name in expected:
            found[name] = array
        elif not saved.endswith(IGNORED_SUFFIXES):
            unexpected.append(saved)
    missing = [k for k in expected if k not in found and k not in optional]
    if missing:
        shown = ", ".join(missing[:8]) + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
        raise ValueError(f"the checkpoint is missing {len(missing)} weight(s) this model needs: {shown}")
    for name, shape in expected.items():  # the first mismatch in the model's order
        if name in found and tuple(found[name].shape) != tuple(shape):
            raise ValueError(f"weight {name!r} has shape {tuple(found[name].shape)} in the checkpoint but the "
                             f"config asks for {tuple(shape)}")
    if unexpected:
        warnings.warn(f"{len(unexpected)} checkpoint weight(s) unused by this model: {', '.join(unexpected[:8])}",
                      stacklevel=3)
    return found, unexpected


def save_safetensors(params: dict[str, np.ndarray], directory: str | os.PathLike, prefix: str = "") -> None:
    from safetensors.numpy import save_file

    os.makedirs(directory, exist_ok=True)
    save_file({prefix + k: np.ascontiguousarray(v, dtype=np.float32) for k, v in params.items()},
              os.path.join(directory, SAFETENSORS), metadata={"format": "pt"})

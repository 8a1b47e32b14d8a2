"""Reading and writing Hugging Face checkpoints without torch.

An explicit table maps every checkpoint name to its expected shape (after nanoGPT's `from_pretrained`): each key is
checked, missing keys and shape mismatches are refused by name, unexpected keys are reported. Weights come from
`model.safetensors` (or its shards): nothing is unpickled. A `pytorch_model.bin` is read only when torch is
importable, and then with `torch.load(weights_only=True)`.

Dtypes, as transformers loads them into a float32 model: float32, float16, bfloat16 and float64 tensors become
float32. float16 -> float32 is exact (NumPy); bfloat16 is the top half of a float32, so its 16 bits shifted left by
16 and read as float32 are the exact value (NaN and inf included), with no extra dependency. float64 is rounded to
nearest, as torch's `.float()`. Integer and bool tensors keep their dtype (an old checkpoint's int64
`position_ids` buffer is one); `match_keys` refuses one by name where a weight is expected. Other dtypes (float8,
complex) are refused by name when read. A NaN or inf in any float tensor is refused by name unless the caller passes
`allow_non_finite=True` (for studying broken checkpoints).

`weights_folder` finds the weights of a folder or a Hub repository name (through refimpl.io.hub), fetching only the
files `read_tensors` reads. Work and memory stay bounded by the files: the layer count a config asks for is compared with the layers the
checkpoint names (`check_layers`) before anything is built per layer.
"""

from __future__ import annotations

import importlib.util
import os
import re
import reprlib
import warnings
from pathlib import Path

import numpy as np
from safetensors import deserialize

from refimpl.config import LongformerConfig
from refimpl.io import hub
from refimpl.io.jsonfile import read_json

SAFETENSORS = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
PYTORCH_BIN = "pytorch_model.bin"

# buffers that some checkpoints carry and that hold nothing to learn
IGNORED_SUFFIXES = ("embeddings.position_ids",)

# safetensors dtype -> the little-endian NumPy dtype its bytes are read as
FLOAT_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2"}  # BF16: raw bits, widened below
KEPT_DTYPES = {"I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1", "U64": "<u8", "U32": "<u4", "U16": "<u2",
               "U8": "u1", "BOOL": "?"}  # not weights; kept so that a misplaced one is refused by name
READABLE = "float32, float16, bfloat16 or float64"

# repr() of a value read from a file, cut short so that a message stays a line or two
_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 160
short = _SHORT.repr

# "encoder.layer.7." after any prefix ("longformer.", "bert.", "roberta.")
LAYER_NAME = re.compile(r"(?:^|\.)encoder\.layer\.(\d+)\.")


# ---------------------------------------------------------------------------------------------------------------
# Where the weights are: a folder, or the files of a Hub repository
# ---------------------------------------------------------------------------------------------------------------

def weights_folder(name_or_path, **hub_keywords) -> Path:
    """The local folder holding the weights of `name_or_path` (a folder, or a Hub repository name).

    hub_keywords: revision, cache_dir, local_files_only, token, force_download, as in transformers. A folder is
    returned as it is (`read_tensors` says what it lacks). For a repository only the files `read_tensors` will read
    are fetched, in its order: model.safetensors; else model.safetensors.index.json and the shards it names; else,
    where torch is importable, pytorch_model.bin. ValueError when the repository has none of them.
    """
    candidates = [SAFETENSORS, SAFETENSORS_INDEX] + ([PYTORCH_BIN] if importlib.util.find_spec("torch") else [])
    first_error = None
    for filename in candidates:
        try:
            folder = hub.resolve(name_or_path, [filename], **hub_keywords)
        except ValueError as e:  # not in the repository (or cache), or the repository cannot be had
            first_error = first_error or e
            continue
        if filename == SAFETENSORS_INDEX and (folder / SAFETENSORS_INDEX).is_file():
            shards = sorted(set(read_weight_map(folder / SAFETENSORS_INDEX).values()))
            hub.resolve(name_or_path, shards, **hub_keywords)  # a shard it lacks: read_tensors names it
        return folder
    torch_note = "" if PYTORCH_BIN in candidates else f" ({PYTORCH_BIN} is read only where torch is installed)"
    raise ValueError(f"no weights for {name_or_path!r}: looked for {', '.join(candidates)}{torch_note}. "
                     f"{first_error}")


# ---------------------------------------------------------------------------------------------------------------
# Reading tensors
# ---------------------------------------------------------------------------------------------------------------

def read_tensors(directory: str | os.PathLike, *, allow_non_finite: bool = False) -> dict[str, np.ndarray]:
    """Every tensor of the checkpoint in `directory`, keyed by its saved name.

    Float tensors come back as contiguous float32 arrays, integer and bool ones in their own dtype (see the module
    docstring). allow_non_finite: accept NaN and inf in float tensors instead of refusing them by name.
    """
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise ValueError(f"{directory!r} is not a directory; a checkpoint is a folder with config.json and "
                         f"{SAFETENSORS} (or {SAFETENSORS_INDEX} with shards, or {PYTORCH_BIN})")
    single = os.path.join(directory, SAFETENSORS)
    index = os.path.join(directory, SAFETENSORS_INDEX)
    binary = os.path.join(directory, PYTORCH_BIN)
    if os.path.lexists(single):
        tensors = _read_safetensors(single)
    elif os.path.lexists(index):
        tensors = _read_shards(index)
    elif os.path.lexists(binary):
        tensors = _read_pytorch_bin(binary)
    else:
        raise ValueError(f"no weights in {directory}: looked for {SAFETENSORS}, {SAFETENSORS_INDEX} and {PYTORCH_BIN}")
    if not allow_non_finite:
        for name, array in tensors.items():
            _check_finite(name, array, directory)
    return tensors


def read_weight_map(index: str | os.PathLike) -> dict[str, str]:
    """The `weight_map` of a shard index (tensor name -> shard file name in the same folder), checked."""
    index = os.fspath(index)
    weight_map = read_json(index, missing_ok=False).get("weight_map")
    if not isinstance(weight_map, dict):
        raise ValueError(f"{index} is not a safetensors index: its 'weight_map' must be an object mapping weight "
                         f"names to shard file names, got {type(weight_map).__name__}")
    if not weight_map:
        raise ValueError(f"{index} is not a safetensors index: its 'weight_map' names no weights")
    for name, shard in weight_map.items():
        if not isinstance(shard, str):
            raise ValueError(f"{index}: weight_map[{short(name)}] must be a shard file name (a string), "
                             f"got {type(shard).__name__} {short(shard)}")
        if shard in ("", ".", "..") or os.path.basename(shard) != shard or "\\" in shard or "\x00" in shard:
            raise ValueError(f"{index}: weight_map[{short(name)}] names shard {short(shard)}, which is not a plain "
                             "file name in the checkpoint folder (no folders, no '..')")
    return weight_map


def _read_shards(index: str) -> dict[str, np.ndarray]:
    directory = os.path.dirname(index)
    weight_map = read_weight_map(index)
    tensors, shard_of = {}, {}
    for shard in sorted(set(weight_map.values())):
        path = os.path.join(directory, shard)
        if not os.path.isfile(path):
            raise ValueError(f"{index} names shard {shard!r}, which is not a file in {directory}")
        for name, array in _read_safetensors(path).items():
            if name in shard_of:
                raise ValueError(f"weight {name!r} is in two shards, {shard_of[name]} and {shard}; a sharded "
                                 "checkpoint holds each weight once")
            shard_of[name] = shard
            tensors[name] = array
    for name, shard in weight_map.items():
        if shard_of.get(name) != shard:
            where = f"it is in {shard_of[name]}" if name in shard_of else "no shard holds it"
            raise ValueError(f"{index} puts weight {name!r} in {shard}, but {where}")
    return dict(sorted(tensors.items()))


def _read_safetensors(path: str) -> dict[str, np.ndarray]:
    """Every tensor of one safetensors file. `safetensors.deserialize` checks the header (sizes, offsets, dtypes
    against the bytes) and gives each tensor's dtype, shape and bytes, whatever the dtype; peak memory is about
    twice the file."""
    if not os.path.isfile(path):
        raise ValueError(f"{path} is not a file (a folder or something else has its name)")
    with open(path, "rb") as file:
        data = file.read()
    try:
        entries = deserialize(data)
    except Exception as e:  # SafetensorError: a short file, a header that lies, bytes that do not add up
        raise ValueError(f"cannot read {path}: it is truncated, corrupt or not a safetensors file ({e})") from None
    del data
    tensors = {}
    entries.sort(key=lambda entry: entry[0], reverse=True)  # by name (deserialize's order varies from run to run)
    while entries:  # pop each tensor's bytes as it is converted, so they are not held twice
        name, entry = entries.pop()
        dtype, shape, raw = entry["dtype"], tuple(entry["shape"]), entry["data"]
        if dtype in FLOAT_DTYPES:
            tensors[name] = _to_float32(np.frombuffer(raw, FLOAT_DTYPES[dtype]), dtype).reshape(shape)
        elif dtype in KEPT_DTYPES:
            tensors[name] = np.frombuffer(raw, KEPT_DTYPES[dtype]).reshape(shape)
        else:
            raise ValueError(f"tensor {name!r} in {path} has dtype {dtype}, which is not read here; weights must be "
                             f"{READABLE} (convert it with torch first)")
    return tensors


def _to_float32(values: np.ndarray, dtype: str) -> np.ndarray:
    """A flat array of safetensors `dtype` (BF16 as its uint16 bits) as float32 (F32 itself is not copied)."""
    if dtype == "BF16":  # bfloat16 is the top 16 bits of a float32: exact
        return (values.astype(np.uint32) << 16).view(np.float32)
    with np.errstate(over="ignore"):  # float64 beyond float32's range becomes inf, refused by _check_finite
        return values.astype(np.float32, copy=False)  # float32 itself: no copy


def _read_pytorch_bin(path: str) -> dict[str, np.ndarray]:
    if importlib.util.find_spec("torch") is None:
        raise ValueError(
            f"{path} is a PyTorch pickle, which is read only where torch is installed (and then without running "
            "pickled code); convert it to model.safetensors or install torch")
    import torch  # optional: only for a .bin, and only where installed

    if not os.path.isfile(path):
        raise ValueError(f"{path} is not a file (a folder or something else has its name)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"cannot read {path} with torch.load(weights_only=True): {e}") from None
    if not isinstance(state, dict):
        raise ValueError(f"{path} holds a {type(state).__name__}; a pytorch_model.bin holds a dict of weight name "
                         "-> tensor (model.state_dict())")
    nested = [k for k, v in state.items() if isinstance(v, dict)]
    if nested:
        raise ValueError(f"{path} nests its weights under {nested[0]!r} (a training checkpoint?); save the inner "
                         f"dict of weight name -> tensor, e.g. torch.save(checkpoint[{nested[0]!r}], ...)")
    tensors = {}
    for name, value in state.items():
        if not isinstance(name, str):
            raise ValueError(f"{path} has a key {short(name)} of type {type(name).__name__}; weight names "
                             "are strings")
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"{path}: {name!r} is of type {type(value).__name__}, not a tensor")
        if value.layout != torch.strided or value.is_quantized:
            raise ValueError(f"{path}: tensor {name!r} is sparse or quantized; weights must be dense {READABLE}")
        if value.dtype in (torch.float32, torch.float16, torch.bfloat16, torch.float64):
            tensors[name] = np.ascontiguousarray(value.detach().float().numpy())
        elif value.dtype in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8, torch.bool):
            tensors[name] = np.ascontiguousarray(value.detach().numpy())
        else:
            raise ValueError(f"tensor {name!r} in {path} has dtype {value.dtype}, which is not read here; weights "
                             f"must be {READABLE}")
    return tensors


def _check_finite(name: str, array: np.ndarray, directory: str) -> None:
    if array.dtype.kind != "f" or np.isfinite(array).all():
        return
    bad = ~np.isfinite(array)
    nan = int(np.isnan(array).sum())
    first = tuple(int(i) for i in np.unravel_index(int(np.argmax(bad)), array.shape))
    raise ValueError(f"weight {name!r} in {directory} holds {nan} NaN and {int(bad.sum()) - nan} infinite value(s) "
                     f"(the first at index {first}); every output would be NaN. Pass allow_non_finite=True to load "
                     "it anyway")


# ---------------------------------------------------------------------------------------------------------------
# The name table and the checks against it
# ---------------------------------------------------------------------------------------------------------------

def layers_held(tensors: dict) -> list[int]:
    """The distinct layer numbers the checkpoint's names hold (encoder.layer.<i>., after any prefix), sorted."""
    return sorted({int(m.group(1)) for m in map(LAYER_NAME.search, tensors) if m})


def check_layers(tensors: dict, num_hidden_layers: int, where: str = "the checkpoint") -> None:
    """Refuse a config that asks for more layers than the checkpoint holds, before anything is built per layer
    (a config with num_hidden_layers 10000000 would otherwise build a table of 220 million names)."""
    held = layers_held(tensors)
    if num_hidden_layers > len(held):
        span = f"encoder.layer.{held[0]} to encoder.layer.{held[-1]}" if held else "no encoder.layer.* weights"
        raise ValueError(f"the config asks for num_hidden_layers = {num_hidden_layers} but {where} holds "
                         f"{len(held)} layer(s) ({span}); set num_hidden_layers to at most {len(held)}")


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


def require_float(name: str, array: np.ndarray) -> None:
    """Refuse an integer or bool tensor where a weight is expected, by name."""
    if array.dtype.kind != "f":
        raise ValueError(f"weight {name!r} holds {array.dtype} values; a weight must be floating point ({READABLE})")


def match_keys(tensors: dict, expected: dict[str, tuple[int, ...]], optional=(), base_prefix="longformer."):
    """Pick every expected key from `tensors`, checking shapes and dtypes.

    Encoder keys may be saved with or without `base_prefix` (a head model saves `longformer.embeddings...`,
    LongformerModel saves `embeddings...`), but not both. Keys in `optional` may be absent. Returns
    (params, unexpected).
    """
    found, saved_as, unexpected = {}, {}, []
    for saved, array in tensors.items():
        name = saved
        if name not in expected and name.startswith(base_prefix) and name[len(base_prefix):] in expected:
            name = name[len(base_prefix):]
        if name in expected:
            if name in found:
                raise ValueError(f"the checkpoint holds weight {name!r} twice, as {saved_as[name]!r} and {saved!r}; "
                                 "it is not clear which to use, so keep one")
            require_float(saved, array)
            found[name], saved_as[name] = array, saved
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


# ---------------------------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------------------------

def save_safetensors(params: dict[str, np.ndarray], directory: str | os.PathLike, prefix: str = "") -> None:
    from safetensors.numpy import save_file

    os.makedirs(directory, exist_ok=True)
    save_file({prefix + k: np.ascontiguousarray(v, dtype=np.float32) for k, v in params.items()},
              os.path.join(directory, SAFETENSORS), metadata={"format": "pt"})

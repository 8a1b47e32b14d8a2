"""BERT or RoBERTa checkpoint -> Longformer checkpoint, as Beltagy, Peters & Cohan (2020, arXiv 2004.05150, section 5
and their `convert_model_to_long.ipynb`) built longformer-base-4096 from roberta-base.

    longformer-lab convert SRC DST [--attention-window W] [--max-positions N]

What the conversion does, step by step (`convert` follows these numbers):
  1. Read the source, a folder or a Hub repository name (refimpl.io.hub; only the files read are fetched):
     config.json (model_type "bert" or "roberta"), model.safetensors (or shards, or a pytorch_model.bin where torch
     is installed), and the tokenizer files' special tokens. The weights' layer count is compared with config.json
     before anything is built per layer.
  2. Write the Longformer config: the same sizes, activation, layer_norm_eps, token types and special token ids,
     a position table for `max_positions` tokens (refused before allocation when it cannot fit in the memory
     available), and the attention window.
  3. The position table. Longformer counts positions as RoBERTa does: the token at index p (padding excluded)
     reads row pad_token_id + 1 + p. A RoBERTa source already does this (its 512 learned positions sit in rows
     2..513 after <pad> = 1); a BERT source reads row p, so its rows move up by pad_token_id + 1. The learned rows
     are then repeated until the longer table is full (the paper copies them rather than initialising at random:
     the local attention keeps working at every position). The first pad_token_id + 1 rows are never read by a real
     token (only padding reads row pad_token_id); they keep the source's first rows.
  4. Every layer: the query/key/value projections are copied twice, into the local projections and into the
     global ones (query_global, key_global, value_global), which the paper also initialises from them. Everything
     else is copied unchanged, through one explicit table from source names to Longformer names.
  5. Write model.safetensors (names as transformers' LongformerModel saves them, no prefix), config.json, and the
     tokenizer files, with the tokenizer's maximum length set to `max_positions`, into a sibling folder of the
     destination that replaces it when complete: the destination then holds exactly the converted checkpoint
     (with --overwrite, nothing of the checkpoint it held before), and a failed conversion leaves it as it was.

The result loads in `refimpl.LongformerModel.from_pretrained` and in transformers' `LongformerModel.from_pretrained`.
With a window at least twice the input length and no global tokens it computes what the source model computes
(tests/refimpl/io/test_convert.py checks this on all-MiniLM-L6-v2's real weights).

Deliberately different from the paper's notebook: rows 0..pad_token_id of the new table are copied instead of left
uninitialised, and the task heads of the source (lm_head, cls, classifier) are not carried over; the summary lists
them. The library does not print; `run` (the CLI) prints the summary.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
import warnings
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from refimpl.io import checkpoint, hub
from refimpl.io.checkpoint import short
from refimpl.config import LongformerConfig
from refimpl.ops import SUPPORTED_ACTIVATIONS
from refimpl.io.jsonfile import read_json

SUPPORTED_MODEL_TYPES = ("bert", "roberta")

# transformers' defaults for the config.json keys a source may leave out (BertConfig / RobertaConfig)
SOURCE_DEFAULTS = {
    "bert": dict(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                 intermediate_size=3072, hidden_act="gelu", max_position_embeddings=512, type_vocab_size=2,
                 layer_norm_eps=1e-12, pad_token_id=0, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
                 initializer_range=0.02),
    "roberta": dict(vocab_size=50265, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                    intermediate_size=3072, hidden_act="gelu", max_position_embeddings=512, type_vocab_size=2,
                    layer_norm_eps=1e-12, pad_token_id=1, bos_token_id=0, eos_token_id=2,
                    hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1, initializer_range=0.02),
}
# the sequence-start and separator tokens when the tokenizer files do not name them
DEFAULT_SPECIAL_TOKENS = {"bert": ("[CLS]", "[SEP]"), "roberta": ("<s>", "</s>")}
# the tokenizer class AutoTokenizer must build; without it, it would follow config.json's model_type (longformer)
TOKENIZER_CLASS = {"bert": "BertTokenizer", "roberta": "RobertaTokenizer"}
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                   "vocab.txt", "vocab.json", "merges.txt")


@dataclass
class ConversionSummary:
    """What `convert` did, for the CLI to print and for tests to check."""

    source: str
    destination: str
    source_type: str  # "bert" | "roberta"
    num_layers: int
    hidden_size: int
    source_positions: int  # tokens the source's position table holds (512)
    positions: int  # tokens the new table holds (max_positions, e.g. 4096)
    max_position_embeddings: int  # rows of the new table: positions + pad_token_id + 1
    attention_window: int | list[int]
    pad_token_id: int
    bos_token_id: int
    eos_token_id: int
    sep_token_id: int
    copied: int  # source tensors copied (position table included)
    global_projections: int  # tensors written into query_global / key_global / value_global
    not_copied: list[str] = field(default_factory=list)  # source tensors with no place in a LongformerModel
    files: list[str] = field(default_factory=list)  # file names written in `destination`
    notes: list[str] = field(default_factory=list)  # anything a user should know (missing tokenizer, ...)


# ---------------------------------------------------------------------------------------------------------------
# The name table
# ---------------------------------------------------------------------------------------------------------------

def name_table(num_layers: int) -> dict[str, list[str]]:
    """Source name (BERT and RoBERTa share them, without the `bert.` / `roberta.` prefix) -> Longformer names.

    The position table is not in this table: it is rebuilt (step 3), not copied.
    """
    table = {name: [name] for name in ("embeddings.word_embeddings.weight",
                                        "embeddings.token_type_embeddings.weight",
                                        "embeddings.LayerNorm.weight", "embeddings.LayerNorm.bias")}
    for i in range(num_layers):
        p = f"encoder.layer.{i}."
        for proj in ("query", "key", "value"):
            for t in ("weight", "bias"):
                # the global projections start as copies of the local ones (paper, section 3.1 and 5)
                table[f"{p}attention.self.{proj}.{t}"] = [f"{p}attention.self.{proj}.{t}",
                                                          f"{p}attention.self.{proj}_global.{t}"]
        for name in ("attention.output.dense", "attention.output.LayerNorm", "intermediate.dense", "output.dense",
                     "output.LayerNorm"):
            for t in ("weight", "bias"):
                table[f"{p}{name}.{t}"] = [f"{p}{name}.{t}"]
    return table


POSITIONS = "embeddings.position_embeddings.weight"
SOURCE_PREFIXES = ("bert.", "roberta.")  # a source model with a head saves its encoder under one of these
POOLER = ("pooler.dense.weight", "pooler.dense.bias")  # copied when the source has them


# ---------------------------------------------------------------------------------------------------------------
# Steps
# ---------------------------------------------------------------------------------------------------------------

def read_source_config(src: str) -> tuple[str, dict]:
    """(model_type, config with transformers' defaults filled in) of the checkpoint folder `src`; step 1."""
    path = os.path.join(src, "config.json")
    if not os.path.lexists(path):
        raise ValueError(f"source {src!r} has no config.json, so its model type is unknown; a checkpoint folder "
                         "holds config.json, model.safetensors and the tokenizer files")
    config = read_json(path, missing_ok=False)
    model_type = config.get("model_type")
    if model_type not in SUPPORTED_MODEL_TYPES:
        hint = (" It is already a Longformer checkpoint: load it directly." if model_type == "longformer" else "")
        raise ValueError(f"{src!r} holds a {short(model_type)} model (config.json model_type); convert supports "
                         f"{' and '.join(SUPPORTED_MODEL_TYPES)} only.{hint}")
    config = {**SOURCE_DEFAULTS[model_type], **{k: v for k, v in config.items() if v is not None}}
    if config.get("position_embedding_type", "absolute") != "absolute":
        raise ValueError(f"{src!r} uses position_embedding_type {short(config['position_embedding_type'])}; Longformer "
                         "has absolute position embeddings only")
    if config.get("is_decoder"):
        raise ValueError(f"{src!r} is a decoder (is_decoder: true, causal attention); Longformer is an encoder")
    pad = config["pad_token_id"]
    if isinstance(pad, bool) or not isinstance(pad, int) or pad < 0:
        raise ValueError(f"{src!r}: config.json's pad_token_id must be an integer >= 0, got {short(pad)}")
    if not isinstance(config["hidden_act"], str) or config["hidden_act"] not in SUPPORTED_ACTIVATIONS:
        raise ValueError(f"{src!r} uses hidden_act {short(config['hidden_act'])}, which Longformer here does not "
                         f"support; supported: {', '.join(SUPPORTED_ACTIVATIONS)}")
    return model_type, config


def read_special_token_ids(src: str, model_type: str) -> tuple[dict[str, int], list[str]]:
    """{"cls": id, "sep": id, "pad": id} as far as the tokenizer files of `src` give them, and notes."""
    def load(name):
        return read_json(os.path.join(src, name))

    def text(value):  # a special token as the files write it: a string, or {"content": ...}
        value = value.get("content") if isinstance(value, dict) else value
        return value if isinstance(value, str) else None

    named = {**load("tokenizer_config.json"), **load("special_tokens_map.json")}
    cls_default, sep_default = DEFAULT_SPECIAL_TOKENS[model_type]
    tokens = {"cls": text(named.get("cls_token")) or cls_default, "sep": text(named.get("sep_token")) or sep_default}
    if text(named.get("pad_token")):
        tokens["pad"] = text(named["pad_token"])

    vocab = {}
    if os.path.isfile(os.path.join(src, "tokenizer.json")):
        from tokenizers import Tokenizer

        try:
            tok = Tokenizer.from_file(os.path.join(src, "tokenizer.json"))
        except Exception as e:  # tokenizers raises a bare Exception for a file it cannot parse
            raise ValueError(f"cannot read {os.path.join(src, 'tokenizer.json')}: {e}") from None
        vocab = {t: tok.token_to_id(t) for t in tokens.values() if tok.token_to_id(t) is not None}
    elif os.path.isfile(os.path.join(src, "vocab.json")):
        vocab = load("vocab.json")
    elif os.path.isfile(os.path.join(src, "vocab.txt")):
        try:
            with open(os.path.join(src, "vocab.txt"), encoding="utf-8") as f:
                vocab = {line.rstrip("\n"): i for i, line in enumerate(f)}
        except UnicodeDecodeError as e:
            raise ValueError(f"{os.path.join(src, 'vocab.txt')} is not UTF-8 text: {e}") from None
    else:
        return {}, ["no vocabulary in the source (tokenizer.json, vocab.json or vocab.txt): the special token ids "
                    "come from config.json or Longformer's defaults"]
    ids = {role: vocab[t] for role, t in tokens.items() if t in vocab}
    for role, value in ids.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"the vocabulary of {src!r} gives {tokens[role]!r} the id {short(value)}; ids are "
                             "integers >= 0")
    notes = [f"the tokenizer has no {tokens[role]!r} ({role} token)" for role in tokens if role not in ids]
    return ids, notes


def position_table(source: np.ndarray, source_offset: int, offset: int, positions: int) -> np.ndarray:
    """Step 3: the new (offset + positions, C) table from the source's.

    Row offset + p holds source row source_offset + (p mod P), P the source's learned positions: the learned rows,
    repeated. Rows below `offset` (only padding reads them) are the source's first rows.
    """
    learned = source[source_offset:]  # (P, C): what position p = 0, 1, ... reads in the source
    P = learned.shape[0]
    if P < 1:
        raise ValueError(f"the source position table has {source.shape[0]} rows, none after the offset {source_offset}")
    if offset > source.shape[0]:
        raise ValueError(f"the source position table has {source.shape[0]} rows, fewer than the {offset} rows before "
                         f"the first position (pad_token_id + 1)")
    table = np.empty((offset + positions, source.shape[1]), np.float32)  # (max_position_embeddings, C)
    table[:offset] = source[:offset]
    # row offset + p <- learned[p mod P], written in place (no tiled copy of the whole table)
    np.take(learned, np.arange(positions), axis=0, out=table[offset:], mode="wrap")  # (positions, C)
    return table


def _find_prefix(tensors: dict, model_type: str, src: str) -> str:
    """The prefix the source's encoder names carry: "" (BertModel), "bert." / "roberta." (a model with a head).
    A weight saved under two of these prefixes is refused: which one the conversion would use is not clear."""
    bare_names = {}
    for saved in tensors:
        bare = next((saved[len(p):] for p in SOURCE_PREFIXES if saved.startswith(p)), saved)
        if bare in bare_names:
            raise ValueError(f"the weights in {src!r} hold {bare!r} twice, as {bare_names[bare]!r} and {saved!r}; "
                             "keep one of them")
        bare_names[bare] = saved
    word = "embeddings.word_embeddings.weight"
    if word in bare_names:
        saved = bare_names[word]
        return saved[: len(saved) - len(word)]
    raise ValueError(f"the weights in {src!r} have no {word} (with or without a 'bert.' or 'roberta.' prefix); is "
                     f"it a BERT or RoBERTa checkpoint? It holds e.g. {', '.join(list(tensors)[:5])}")


def _check_destination(src: str, dst: str, overwrite: bool) -> None:
    """A destination is new, an empty folder, or (with overwrite) a checkpoint folder that is replaced whole."""
    if os.path.lexists(dst) and not os.path.isdir(dst):
        raise ValueError(f"destination {dst!r} is a file; pass a folder to write the Longformer checkpoint into")
    if not os.path.isdir(dst):
        return
    if os.path.samefile(src, dst):
        raise ValueError("the destination is the source folder; write the Longformer checkpoint somewhere else")
    if os.path.commonpath([os.path.realpath(src), os.path.realpath(dst)]) == os.path.realpath(dst):
        raise ValueError(f"the destination {dst!r} holds the source folder {src!r}; replacing it would delete the "
                         "source. Write the Longformer checkpoint somewhere else")
    if os.listdir(dst) and not overwrite:
        raise ValueError(f"destination {dst!r} exists and is not empty; pick a new folder or pass --overwrite")
    if os.listdir(dst) and not os.path.isfile(os.path.join(dst, "config.json")):
        raise ValueError(f"destination {dst!r} is not empty and is not a checkpoint folder (no config.json); "
                         "--overwrite replaces a checkpoint folder with everything in it, so it refuses to delete "
                         "this one. Pick a new or empty folder")


def _check_table_fits(max_positions: int, rows: int, hidden_size: int) -> None:
    """Refuse a position table of `rows` x `hidden_size` that cannot be allocated here, before allocating it, and
    say how many positions fit."""
    per_row = hidden_size * 4 + 8  # a float32 row, and its int64 source index (position_table)
    free = available_memory()
    if free is not None and rows * per_row > free:
        raise ValueError(f"max_positions = {max_positions} needs a position table of {rows} x {hidden_size} float32 "
                         f"({_gib(rows * per_row)}), but this machine has {_gib(free)} available; at most about "
                         f"{free // per_row - (rows - max_positions)} positions fit (longformer-base-4096 has 4096)")


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux MemAvailable), or None where it cannot be read."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _gib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB"


def _staging_folder(dst: str) -> str:
    """A new empty sibling of `dst` to write into; made with os.mkdir, so it gets the usual permissions."""
    parent = os.path.dirname(os.path.abspath(dst))
    os.makedirs(parent, exist_ok=True)
    while True:
        path = os.path.join(parent, f".{os.path.basename(os.path.abspath(dst))}.{secrets.token_hex(4)}.converting")
        try:
            os.mkdir(path)
            return path
        except FileExistsError:
            continue


def _replace_folder(staging: str, dst: str) -> None:
    """Put the complete `staging` folder at `dst`; an old `dst` is removed whole, so nothing of it stays."""
    if os.path.isdir(dst):
        old = staging + ".old"
        os.rename(dst, old)
        os.rename(staging, dst)
        shutil.rmtree(old)
    else:
        os.rename(staging, dst)


def _copy_tokenizer_files(src: str, dst: str, model_type: str, positions: int) -> list[str]:
    """Step 5, the tokenizer: copy its files; the maximum length becomes `positions`. Returns the names written."""
    present = [name for name in TOKENIZER_FILES if os.path.isfile(os.path.join(src, name))]
    if not present:
        return []
    for name in present:
        shutil.copyfile(os.path.join(src, name), os.path.join(dst, name))
    if "tokenizer.json" in present:
        # a fixed truncation or padding length in the file (all-MiniLM-L6-v2 has 128) is a per-call setting
        path = os.path.join(dst, "tokenizer.json")
        tokenizer_json = read_json(path)
        if tokenizer_json.get("truncation") is not None or tokenizer_json.get("padding") is not None:
            tokenizer_json["truncation"] = tokenizer_json["padding"] = None
            with open(path, "w", encoding="utf-8") as f:
                json.dump(tokenizer_json, f, ensure_ascii=False, indent=2)
    path = os.path.join(dst, "tokenizer_config.json")
    tokenizer_config = read_json(path)
    tokenizer_config["model_max_length"] = positions
    tokenizer_config.setdefault("tokenizer_class", TOKENIZER_CLASS[model_type])
    with open(path, "w", encoding="utf-8") as f:
        json.dump(tokenizer_config, f, ensure_ascii=False, indent=2)
        f.write("\n")
    return sorted(set(present) | {"tokenizer_config.json"})


# ---------------------------------------------------------------------------------------------------------------
# The conversion
# ---------------------------------------------------------------------------------------------------------------

def convert(src: str | os.PathLike, dst: str | os.PathLike, attention_window: int | list[int] = 512,
            max_positions: int = 4096, progress: bool = False, overwrite: bool = False,
            **hub_keywords) -> ConversionSummary:
    """Convert the BERT or RoBERTa checkpoint `src` (a folder or a Hub repository name) into a Longformer
    checkpoint folder `dst`.

    attention_window: the full window (both sides), even; one int or one per layer. max_positions: the tokens the
    new position table holds (4096 in longformer-base-4096). progress: a tqdm bar over the layers, on stderr.
    overwrite: replace a `dst` that is a checkpoint folder (it holds config.json): afterwards it holds exactly the
    converted checkpoint, nothing of what was there. The result is written into a sibling folder and moved into
    place when complete, so a failed conversion leaves `dst` as it was. hub_keywords: revision, cache_dir,
    local_files_only, token, force_download, for a Hub `src`, as in transformers. Raises ValueError, with the
    reason, for a source it cannot convert. Returns a ConversionSummary.
    """
    hub_keywords, unknown = hub.split_hub_keywords(hub_keywords)
    if unknown:
        raise TypeError(f"convert() got unexpected keyword argument(s) {', '.join(map(repr, unknown))}")
    if not isinstance(dst, (str, os.PathLike)) or not os.fspath(dst):
        raise ValueError(f"the destination must be a folder path (str or os.PathLike), got {type(dst).__name__} "
                         f"{short(dst)}")
    dst = os.fspath(dst)
    if isinstance(max_positions, bool) or not isinstance(max_positions, (int, np.integer)) or max_positions < 1:
        raise ValueError(f"max_positions must be a positive integer (e.g. 4096), got {short(max_positions)}")
    max_positions = int(max_positions)

    # step 1: the source
    name = hub.checkpoint_path(src, "source checkpoint")
    folder = os.fspath(hub.resolve(name, ["config.json", *TOKENIZER_FILES], what="source checkpoint",
                                   **hub_keywords))
    model_type, src_config = read_source_config(folder)
    _check_destination(folder, dst, overwrite)
    special_ids, notes = read_special_token_ids(folder, model_type)
    pad = src_config["pad_token_id"]
    if "pad" in special_ids and special_ids["pad"] != pad:
        warnings.warn(f"config.json says pad_token_id {pad} but the tokenizer pads with id {special_ids['pad']}; "
                      f"the converted model counts positions from config.json's {pad}", stacklevel=2)

    # step 2: the Longformer config
    def token_id(key, role):
        value = src_config.get(key)
        return value if value is not None else special_ids.get(role)

    special = {"bos_token_id": token_id("bos_token_id", "cls"), "eos_token_id": token_id("eos_token_id", "sep")}
    special["sep_token_id"] = token_id("sep_token_id", "sep")
    if special["sep_token_id"] is None:
        special["sep_token_id"] = special["eos_token_id"]
    if None in special.values():
        notes.append("the start and separator token ids were not found; the config keeps Longformer's defaults")
    try:
        config = LongformerConfig(
            vocab_size=src_config["vocab_size"], hidden_size=src_config["hidden_size"],
            num_hidden_layers=src_config["num_hidden_layers"], num_attention_heads=src_config["num_attention_heads"],
            intermediate_size=src_config["intermediate_size"], hidden_act=src_config["hidden_act"],
            max_position_embeddings=max_positions + pad + 1, type_vocab_size=src_config["type_vocab_size"],
            layer_norm_eps=src_config["layer_norm_eps"], attention_window=attention_window, pad_token_id=pad,
            **{k: v for k, v in special.items() if v is not None},
            hidden_dropout_prob=src_config["hidden_dropout_prob"],
            attention_probs_dropout_prob=src_config["attention_probs_dropout_prob"],
            initializer_range=src_config["initializer_range"], extra={"architectures": ["LongformerModel"]})
    except ValueError as e:
        raise ValueError(f"cannot build a Longformer config from {name!r} with attention_window={attention_window!r}, "
                         f"max_positions={max_positions}: {e}") from None
    C = config.hidden_size
    _check_table_fits(max_positions, config.max_position_embeddings, C)

    # step 3: the position table
    tensors = checkpoint.read_tensors(checkpoint.weights_folder(name, **hub_keywords))
    prefix = _find_prefix(tensors, model_type, name)
    checkpoint.check_layers(tensors, config.num_hidden_layers, where=f"the source {name!r}")
    source_rows = src_config["max_position_embeddings"]
    source_offset = pad + 1 if model_type == "roberta" else 0  # BERT position p reads row p
    positions = tensors.get(prefix + POSITIONS)
    if positions is None:
        raise ValueError(f"the weights in {name!r} are missing {prefix + POSITIONS}")
    checkpoint.require_float(prefix + POSITIONS, positions)
    if positions.shape != (source_rows, C):
        raise ValueError(f"{prefix + POSITIONS} has shape {positions.shape} but config.json asks for "
                         f"{(source_rows, C)}")
    params = {POSITIONS: position_table(positions, source_offset, pad + 1, max_positions)}
    used = {prefix + POSITIONS}

    # step 4: every other weight, through the table
    table = name_table(config.num_hidden_layers)
    target_shapes = checkpoint.encoder_shapes(config, pooler=True)
    missing = [prefix + n for n in table if prefix + n not in tensors]
    if missing:
        shown = ", ".join(missing[:8]) + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
        raise ValueError(f"the weights in {name!r} are missing {len(missing)} tensor(s) a Longformer needs: {shown}")
    pooler_names = [n for n in POOLER if prefix + n in tensors]
    if len(pooler_names) == 1:
        raise ValueError(f"the weights in {name!r} hold {prefix + pooler_names[0]} but not the rest of the pooler")
    table.update({n: [n] for n in pooler_names})
    if not pooler_names:
        notes.append("the source has no pooler; the converted model has none either (pooler_output is None)")

    def copy(source_name):
        array = tensors[prefix + source_name]
        checkpoint.require_float(prefix + source_name, array)
        for target in table[source_name]:
            if tuple(array.shape) != target_shapes[target]:
                raise ValueError(f"{prefix + source_name} has shape {tuple(array.shape)} but {target} needs "
                                 f"{target_shapes[target]} (from config.json)")
            params[target] = array
        used.add(prefix + source_name)

    names = list(table)
    layer_names = [[n for n in names if n.startswith(f"encoder.layer.{i}.")] for i in range(config.num_hidden_layers)]
    for source_name in names:
        if not source_name.startswith("encoder.layer."):
            copy(source_name)
    for group in tqdm(layer_names, desc="converting layers", unit="layer", file=sys.stderr, disable=not progress):
        for source_name in group:
            copy(source_name)

    not_copied = sorted(k for k in tensors if k not in used and not k.endswith(checkpoint.IGNORED_SUFFIXES))

    # step 5: write, into a sibling folder that becomes `dst` when complete
    staging = _staging_folder(dst)
    try:
        checkpoint.save_safetensors(params, staging)
        config.save_pretrained(staging)
        tokenizer_files = _copy_tokenizer_files(folder, staging, model_type, max_positions)
        _replace_folder(staging, dst)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if not tokenizer_files:
        notes.append("no tokenizer files in the source; the converted folder has no tokenizer")

    return ConversionSummary(
        source=name, destination=dst, source_type=model_type, num_layers=config.num_hidden_layers,
        hidden_size=C, source_positions=source_rows - source_offset, positions=max_positions,
        max_position_embeddings=config.max_position_embeddings, attention_window=config.attention_window,
        pad_token_id=config.pad_token_id, bos_token_id=config.bos_token_id, eos_token_id=config.eos_token_id,
        sep_token_id=config.sep_token_id, copied=len(used),
        global_projections=sum(1 for k in params if "_global." in k), not_copied=not_copied,
        files=sorted([checkpoint.SAFETENSORS, "config.json", *tokenizer_files]), notes=notes)

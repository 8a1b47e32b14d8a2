"""Bad checkpoints and bad conversions: each a ValueError that says what is wrong, never another exception, a hang,
a NaN or a silently wrong result; and the work and memory of a refusal bounded by the input.

Each row of CHECKPOINT_CASES breaks a copy of a small checkpoint saved by transformers (3 layers, hidden 32) in one
way and says what the message must name; `load` reads it in from_pretrained's order (read_tensors, check_layers,
encoder_shapes, match_keys). CONVERT_CASES do the same for `convert` on a small BERT and a small RoBERTa.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import struct
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from refimpl.config import LongformerConfig
from refimpl.io import checkpoint
from refimpl.io.convert import convert

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

WORD = "embeddings.word_embeddings.weight"
QUERY = "encoder.layer.0.attention.self.query.weight"


def load(folder, allow_non_finite=False):
    """What from_pretrained does with a folder, in its order; returns the matched params."""
    tensors = checkpoint.read_tensors(folder, allow_non_finite=allow_non_finite)
    config = LongformerConfig.from_json_file(Path(folder) / "config.json")
    checkpoint.check_layers(tensors, config.num_hidden_layers)
    shapes = checkpoint.encoder_shapes(config, pooler=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unused weights
        params, _ = checkpoint.match_keys(tensors, shapes, optional=("pooler.dense.weight", "pooler.dense.bias"))
    return params


# ---------------------------------------------------------------------------------------------------------------
# Breaking a checkpoint folder (config.json + model.safetensors)
# ---------------------------------------------------------------------------------------------------------------

def tensors_of(folder) -> dict:
    return load_file(folder / checkpoint.SAFETENSORS)


def save_tensors(folder, tensors) -> None:
    save_file(tensors, str(folder / checkpoint.SAFETENSORS))


def edit_tensors(edit):
    def apply(folder):
        tensors = tensors_of(folder)
        edit(tensors)
        save_tensors(folder, tensors)
    return apply


def edit_config(**changes):
    def apply(folder):
        config = json.loads((folder / "config.json").read_text())
        config.update(changes)
        (folder / "config.json").write_text(json.dumps(config))
    return apply


def raw_safetensors(header: dict, data: bytes = b"") -> bytes:
    """A safetensors file with this header, as the format lays it out: u64 length, JSON, bytes."""
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


def write_weights(data: bytes):
    def apply(folder):
        (folder / checkpoint.SAFETENSORS).write_bytes(data)
    return apply


def as_shards(index, shards=None):
    """Replace model.safetensors by `index` (an object, or raw bytes) and shard files (name -> tensors)."""
    def apply(folder):
        tensors = tensors_of(folder)
        os.remove(folder / checkpoint.SAFETENSORS)
        made = shards(tensors) if callable(shards) else (shards or {})
        for name, content in made.items():
            save_file(content, str(folder / name))
        raw = index(tensors) if callable(index) else index
        (folder / checkpoint.SAFETENSORS_INDEX).write_bytes(raw if isinstance(raw, bytes) else json.dumps(raw).encode())
    return apply


def two_shards(tensors):
    names = sorted(tensors)
    return {"a.safetensors": {k: tensors[k] for k in names[::2]}, "b.safetensors": {k: tensors[k] for k in names[1::2]}}


def two_shards_index(tensors):
    return {"weight_map": {k: ("a.safetensors" if i % 2 == 0 else "b.safetensors")
                           for i, k in enumerate(sorted(tensors))}}


def as_bin(make):
    """Replace model.safetensors by a pytorch_model.bin holding make(tensors as torch tensors)."""
    def apply(folder):
        state = {k: torch.from_numpy(v) for k, v in tensors_of(folder).items()}
        os.remove(folder / checkpoint.SAFETENSORS)
        torch.save(make(state), folder / checkpoint.PYTORCH_BIN)
    return apply


def replace_with_folder(name):
    def apply(folder):
        path = folder / name
        if path.exists():
            os.remove(path)
        path.mkdir()
    return apply


class Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/longformer_lab_pwned_bad_input",))


def pickled_exploit(folder):
    os.remove(folder / checkpoint.SAFETENSORS)
    with open(folder / checkpoint.PYTORCH_BIN, "wb") as f:
        pickle.dump({WORD: Exploit()}, f)


def truncated(folder):
    data = (folder / checkpoint.SAFETENSORS).read_bytes()
    (folder / checkpoint.SAFETENSORS).write_bytes(data[: len(data) // 2])


def truncated_bin(folder):
    as_bin(lambda state: state)(folder)
    data = (folder / checkpoint.PYTORCH_BIN).read_bytes()
    (folder / checkpoint.PYTORCH_BIN).write_bytes(data[: len(data) // 2])


def with_value(name, index, value, dtype=None):
    def edit(tensors):
        array = tensors[name].astype(dtype or tensors[name].dtype)
        array.flat[index] = value
        tensors[name] = array
    return edit_tensors(edit)


def prefixed_twice(tensors):
    tensors["longformer." + WORD] = tensors[WORD].copy()


F8_HEADER = {WORD: {"dtype": "F8_E4M3", "shape": [97, 32], "data_offsets": [0, 97 * 32]}}

CHECKPOINT_CASES = [
    # where the weights are
    ("folder missing", "missing", None, "is not a directory"),
    ("a file, not a folder", "file", None, "is not a directory"),
    ("no weights", "folder", lambda f: os.remove(f / checkpoint.SAFETENSORS), "no weights in .*looked for"),
    ("model.safetensors is a folder", "folder", replace_with_folder(checkpoint.SAFETENSORS),
     r"model.safetensors is not a file \(a folder"),
    ("pytorch_model.bin is a folder", "folder",
     lambda f: (os.remove(f / checkpoint.SAFETENSORS), (f / checkpoint.PYTORCH_BIN).mkdir()),
     r"pytorch_model.bin is not a file \(a folder"),
    # config.json
    ("config.json is a folder", "folder", replace_with_folder("config.json"), r"config.json is not a file"),
    ("config.json not UTF-8", "folder", lambda f: (f / "config.json").write_bytes(b'{"a": "\xff\xfe"}'),
     r"config.json is not UTF-8"),
    ("config.json not JSON", "folder", lambda f: (f / "config.json").write_text("{"), "config.json is not valid JSON"),
    ("config.json a list", "folder", lambda f: (f / "config.json").write_text("[]"),
     "config.json must hold a JSON object"),
    # model.safetensors that is not one
    ("truncated", "folder", truncated, "truncated, corrupt"),
    ("zeros", "folder", write_weights(b"\x00" * 64), "truncated, corrupt"),
    ("empty file", "folder", write_weights(b""), "truncated, corrupt"),
    ("header length 2**62", "folder", write_weights(struct.pack("<Q", 2**62) + b"{}"), "truncated, corrupt"),
    ("header not JSON", "folder", write_weights(struct.pack("<Q", 4) + b"{{{{"), "truncated, corrupt"),
    ("header shape lies about the bytes", "folder",
     write_weights(raw_safetensors({WORD: {"dtype": "F32", "shape": [10**12, 10**6], "data_offsets": [0, 8]}},
                                   b"\x00" * 8)), "truncated, corrupt"),
    ("offsets past the end", "folder",
     write_weights(raw_safetensors({WORD: {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\x00" * 4)),
     "truncated, corrupt"),
    ("unknown dtype", "folder",
     write_weights(raw_safetensors({WORD: {"dtype": "Q4", "shape": [1], "data_offsets": [0, 1]}}, b"\x00")),
     "truncated, corrupt"),
    ("float8 dtype", "folder", write_weights(raw_safetensors(F8_HEADER, b"\x00" * (97 * 32))),
     r"tensor 'embeddings.word_embeddings.weight' .*has dtype F8_E4M3.*float32, float16, bfloat16 or float64"),
    # dtypes and values
    ("int64 weight", "folder", edit_tensors(lambda t: t.update({QUERY: t[QUERY].astype(np.int64)})),
     rf"weight '{QUERY}' holds int64 values; a weight must be floating point"),
    ("bool weight", "folder", edit_tensors(lambda t: t.update({QUERY: t[QUERY] > 0})),
     rf"weight '{QUERY}' holds bool values"),
    ("NaN", "folder", with_value(QUERY, 5, np.nan), rf"weight '{QUERY}' .*holds 1 NaN and 0 infinite.*index \(0, 5\)"
     r".*allow_non_finite=True"),
    ("inf in float16", "folder", with_value(WORD, 33, np.inf, np.float16),
     rf"weight '{WORD}' .*holds 0 NaN and 1 infinite.*index \(1, 1\)"),
    ("float64 beyond float32", "folder", with_value(WORD, 0, 1e300, np.float64), rf"'{WORD}' .*1 infinite"),
    # names and shapes
    ("saved with and without longformer.", "folder", edit_tensors(prefixed_twice),
     rf"holds weight '{WORD}' twice, as '{WORD}' and 'longformer.{WORD}'"),
    ("a weight missing", "folder", edit_tensors(lambda t: t.pop(QUERY)), rf"missing 1 weight.*{QUERY}"),
    ("a shape that differs", "folder", edit_tensors(lambda t: t.update({QUERY: t[QUERY][:, :16].copy()})),
     rf"weight '{QUERY}' has shape \(32, 16\) in the checkpoint but the config asks for \(32, 32\)"),
    ("a scalar in a matrix's place", "folder", edit_tensors(lambda t: t.update({QUERY: np.array(1.0, np.float32)})),
     rf"weight '{QUERY}' has shape \(\) in the checkpoint"),
    ("10 million layers in config.json", "folder", edit_config(num_hidden_layers=10_000_000, attention_window=8),
     r"num_hidden_layers = 10000000 but the checkpoint holds 3 layer\(s\) \(encoder.layer.0 to encoder.layer.2\)"),
    ("one layer more than the checkpoint", "folder", edit_config(num_hidden_layers=4, attention_window=8),
     r"num_hidden_layers = 4 but the checkpoint holds 3 layer"),
    # the shard index
    ("index not UTF-8", "folder", as_shards(b'{"weight_map": "\xff"}'), r"model.safetensors.index.json is not UTF-8"),
    ("index not JSON", "folder", as_shards(b'{"weight_map": '), r"model.safetensors.index.json is not valid JSON"),
    ("index a list", "folder", as_shards([]), r"model.safetensors.index.json must hold a JSON object"),
    ("index is a folder", "folder",
     lambda f: (os.remove(f / checkpoint.SAFETENSORS), (f / checkpoint.SAFETENSORS_INDEX).mkdir()),
     r"model.safetensors.index.json is not a file"),
    ("index without weight_map", "folder", as_shards({"metadata": {}}), r"'weight_map' must be an object.*NoneType"),
    ("weight_map a list", "folder", as_shards({"weight_map": ["a.safetensors"]}), r"'weight_map' must be an object"),
    ("weight_map empty", "folder", as_shards({"weight_map": {}}), r"'weight_map' names no weights"),
    ("weight_map names a number", "folder", as_shards({"weight_map": {WORD: 3}}),
     rf"weight_map\['{WORD}'\] must be a shard file name \(a string\), got int 3"),
    ("shard outside the folder", "folder", as_shards({"weight_map": {WORD: "../model.safetensors"}}),
     r"names shard '../model.safetensors', which is not a plain file name"),
    ("absolute shard path", "folder", as_shards({"weight_map": {WORD: "/etc/passwd"}}), r"not a plain file name"),
    ("shard missing", "folder", as_shards({"weight_map": {WORD: "gone.safetensors"}}),
     r"names shard 'gone.safetensors', which is not a file"),
    ("index puts a weight in the wrong shard", "folder",
     as_shards(lambda t: {"weight_map": {**two_shards_index(t)["weight_map"],
                                         WORD: "a.safetensors" if sorted(t).index(WORD) % 2 else "b.safetensors"}},
               two_shards),
     rf"puts weight '{WORD}' in .\.safetensors, but it is in .\.safetensors"),
    ("index names a weight no shard holds", "folder",
     as_shards(lambda t: {"weight_map": {**two_shards_index(t)["weight_map"], "extra.weight": "a.safetensors"}},
               two_shards),
     r"puts weight 'extra.weight' in a.safetensors, but no shard holds it"),
    ("a weight in two shards", "folder",
     as_shards(two_shards_index, lambda t: {**two_shards(t), "a.safetensors": dict(t)}),
     r"is in two shards, a.safetensors and b.safetensors"),
    # pytorch_model.bin
    ("bin runs code when unpickled", "folder", pickled_exploit, r"weights_only=True"),
    ("bin truncated", "folder", truncated_bin, r"cannot read .*pytorch_model.bin with torch.load\(weights_only=True\)"),
    ("bin holds a list", "folder", as_bin(lambda s: list(s.values())),
     r"pytorch_model.bin holds a list; a pytorch_model.bin holds a dict"),
    ("bin holds a tensor", "folder", as_bin(lambda s: s[WORD]), r"pytorch_model.bin holds a Tensor"),
    ("bin nests a state_dict", "folder", as_bin(lambda s: {"state_dict": s, "epoch": 3}),
     r"nests its weights under 'state_dict'"),
    ("bin holds a number", "folder", as_bin(lambda s: {**s, "step": 7}), r"'step' is of type int, not a tensor"),
    ("bin has a non-string key", "folder", as_bin(lambda s: {**s, 3: s[WORD]}), r"has a key 3 of type int"),
    ("bin int weight", "folder", as_bin(lambda s: {**s, QUERY: s[QUERY].long()}), rf"'{QUERY}' holds int64 values"),
    ("bin complex weight", "folder", as_bin(lambda s: {**s, QUERY: s[QUERY].to(torch.complex64)}),
     rf"tensor '{QUERY}' .*has dtype torch.complex64"),
    ("bin sparse weight", "folder", as_bin(lambda s: {**s, QUERY: s[QUERY].to_sparse()}),
     rf"'{QUERY}' is sparse or quantized"),
    ("bin NaN", "folder", as_bin(lambda s: {**s, QUERY: s[QUERY].clone().fill_(float("nan"))}),
     rf"weight '{QUERY}' .*holds 1024 NaN"),
]


@pytest.fixture(scope="module")
def small_checkpoint(tmp_path_factory):
    """A 3-layer LongformerModel saved by transformers: config.json and model.safetensors."""
    from conftest import save_transformers_checkpoint

    folder = tmp_path_factory.mktemp("small")
    save_transformers_checkpoint(folder)
    return folder


@pytest.mark.parametrize("case, where, breaks, message", CHECKPOINT_CASES, ids=[c[0] for c in CHECKPOINT_CASES])
def test_a_bad_checkpoint_is_a_value_error_that_names_the_problem(small_checkpoint, tmp_path, case, where, breaks,
                                                                  message):
    """Catches a crash (KeyError, TypeError, UnicodeDecodeError, MemoryError), a silent load of a broken or
    ambiguous checkpoint, and a message that does not say what is wrong."""
    folder = tmp_path / "ckpt"
    if where == "file":
        folder.write_text("not a folder")
    elif where == "folder":
        shutil.copytree(small_checkpoint, folder)
        breaks(folder)
    if os.path.exists("/tmp/longformer_lab_pwned_bad_input"):
        os.remove("/tmp/longformer_lab_pwned_bad_input")
    with pytest.raises(ValueError, match=message):
        load(folder)
    assert not os.path.exists("/tmp/longformer_lab_pwned_bad_input")


def test_the_intact_checkpoint_loads(small_checkpoint):
    """The suite's baseline: every case above breaks something that otherwise loads."""
    assert len(load(small_checkpoint)) == 5 + 3 * 22 + 2  # embeddings, 3 layers, pooler


def test_non_finite_weights_load_when_asked(small_checkpoint, tmp_path):
    """Catches an opt-out that does not work, or that changes the values (NaN kept as NaN, inf as inf)."""
    folder = tmp_path / "ckpt"
    shutil.copytree(small_checkpoint, folder)
    with_value(QUERY, 5, np.nan)(folder)
    with_value(WORD, 0, -np.inf)(folder)
    params = load(folder, allow_non_finite=True)
    assert np.isnan(params[QUERY].flat[5]) and params[WORD].flat[0] == -np.inf
    assert np.isfinite(params[QUERY].flat[6])


# ---------------------------------------------------------------------------------------------------------------
# Breaking a conversion
# ---------------------------------------------------------------------------------------------------------------

def small_source(folder, model_type):
    """A 3-layer BERT or RoBERTa (hidden 32) saved by transformers, with a vocab.txt for BERT."""
    torch.manual_seed(0)
    sizes = dict(vocab_size=97, hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=64)
    if model_type == "bert":
        model = transformers.BertModel(transformers.BertConfig(**sizes, max_position_embeddings=64))
    else:
        model = transformers.RobertaModel(transformers.RobertaConfig(**sizes, max_position_embeddings=66,
                                                                     pad_token_id=1, type_vocab_size=1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.eval().save_pretrained(folder)
    if model_type == "bert":
        (folder / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] +
                                                    [f"w{i}" for i in range(92)]) + "\n")
    return folder


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    return {kind: small_source(tmp_path_factory.mktemp(kind), kind) for kind in ("bert", "roberta")}


def source_config(**changes):
    return edit_config(**changes)


def bert_prefixed_twice(tensors):
    tensors["bert." + WORD] = tensors[WORD].copy()


def checkpoint_folder_holding(src, dst):
    """A destination that holds the source folder inside it (and a config.json)."""
    dst.mkdir()
    (dst / "config.json").write_text("{}")
    shutil.move(src, dst / "inner")
    return dst / "inner", dst


# (id, source kind or a special source, breaks the copied source, convert keywords, destination setup, message)
CONVERT_CASES = [
    ("source missing", "missing", None, {}, None, "is not a folder, and not a Hub repository name"),
    ("source a file", "file", None, {}, None, "is a file, not a folder"),
    ("source an empty string", "", None, {}, None, "is an empty string"),
    ("source a number", 7, None, {}, None, r"must be a folder \(str or os.PathLike\).*got int 7"),
    ("no config.json", "bert", lambda f: os.remove(f / "config.json"), {}, None, "has no config.json"),
    ("config.json a folder", "bert", replace_with_folder("config.json"), {}, None, "config.json is not a file"),
    ("config.json not UTF-8", "bert", lambda f: (f / "config.json").write_bytes(b'{"model_type": "\xff"}'), {},
     None, "config.json is not UTF-8"),
    ("a gpt2 model", "bert", source_config(model_type="gpt2"), {}, None,
     "holds a 'gpt2' model.*supports bert and roberta only"),
    ("pad_token_id a string", "bert", source_config(pad_token_id="0"), {}, None,
     "pad_token_id must be an integer >= 0, got '0'"),
    ("hidden_act a list", "bert", source_config(hidden_act=["gelu"]), {}, None, r"hidden_act \['gelu'\]"),
    ("num_attention_heads does not divide", "bert", source_config(num_attention_heads=5), {}, None,
     r"cannot build a Longformer config.*multiple of num_attention_heads"),
    ("max_positions 0", "bert", None, {"max_positions": 0}, None, "max_positions must be a positive integer"),
    ("max_positions True", "bert", None, {"max_positions": True}, None, "max_positions must be a positive integer"),
    ("max_positions a string", "bert", None, {"max_positions": "4096"}, None,
     "max_positions must be a positive integer.*'4096'"),
    ("max_positions 10**13", "bert", None, {"max_positions": 10**13}, None,
     r"max_positions = 10000000000000 needs a position table of 10000000000001 x 32 float32.*at most about \d+ "
     r"positions fit"),
    ("attention_window odd", "bert", None, {"attention_window": 5}, None, "attention_window"),
    ("10 million layers", "bert", source_config(num_hidden_layers=10_000_000), {}, None,
     r"num_hidden_layers = 10000000 but the source .* holds 3 layer"),
    ("int weight", "bert", edit_tensors(lambda t: t.update({QUERY: t[QUERY].astype(np.int32)})), {}, None,
     rf"weight '{QUERY}' holds int32 values"),
    ("int position table", "bert", edit_tensors(lambda t: t.update(
        {"embeddings.position_embeddings.weight": t["embeddings.position_embeddings.weight"].astype(np.int64)})),
     {}, None, r"'embeddings.position_embeddings.weight' holds int64 values"),
    ("NaN weight", "bert", with_value(QUERY, 0, np.nan), {}, None, rf"weight '{QUERY}' .*holds 1 NaN"),
    ("saved with and without bert.", "bert", edit_tensors(bert_prefixed_twice), {}, None,
     rf"hold '{WORD}' twice, as '(bert.)?{WORD}' and '(bert.)?{WORD}'"),
    ("no word embeddings", "bert", edit_tensors(lambda t: t.pop(WORD)), {}, None,
     rf"have no {WORD}.*is it a BERT or RoBERTa checkpoint"),
    ("a weight missing", "bert", edit_tensors(lambda t: t.pop(QUERY)), {}, None, rf"missing 1 tensor.*{QUERY}"),
    ("position table of another size", "roberta", source_config(max_position_embeddings=80), {}, None,
     r"position_embeddings.weight has shape \(66, 32\) but config.json asks for \(80, 32\)"),
    ("half a pooler", "bert", edit_tensors(lambda t: t.pop("pooler.dense.bias")), {}, None,
     "pooler.dense.weight but not the rest of the pooler"),
    ("vocab.txt not UTF-8", "bert", lambda f: (f / "vocab.txt").write_bytes(b"[CLS]\n\xff\n"), {}, None,
     "vocab.txt is not UTF-8"),
    ("vocab.json gives a string id", "roberta", lambda f: (f / "vocab.json").write_text('{"<s>": "0"}'), {}, None,
     r"gives '<s>' the id '0'; ids are integers"),
    ("tokenizer.json not a tokenizer", "bert", lambda f: (f / "tokenizer.json").write_text("{}"), {}, None,
     "cannot read .*tokenizer.json"),
    ("tokenizer_config.json not UTF-8", "bert", lambda f: (f / "tokenizer_config.json").write_bytes(b"\xff"), {},
     None, "tokenizer_config.json is not UTF-8"),
    # destinations
    ("destination a file", "bert", None, {}, "file", "is a file; pass a folder"),
    ("destination an empty string", "bert", None, {}, "", r"destination must be a folder path.*got str ''"),
    ("destination a number", "bert", None, {}, 3, r"destination must be a folder path.*got int 3"),
    ("destination the source", "bert", None, {"overwrite": True}, "source", "the destination is the source folder"),
    ("destination not empty", "bert", None, {}, "other files", "not empty; pick a new folder or pass --overwrite"),
    ("overwrite a folder that is no checkpoint", "bert", None, {"overwrite": True}, "other files",
     r"not a checkpoint folder \(no config.json\).*refuses to delete"),
    ("destination holds the source", "bert", None, {"overwrite": True}, "around source",
     "holds the source folder .* would delete the source"),
]


@pytest.mark.parametrize("case, kind, breaks, keywords, destination, message", CONVERT_CASES,
                         ids=[c[0] for c in CONVERT_CASES])
def test_a_bad_conversion_is_a_value_error_that_names_the_problem(sources, tmp_path, case, kind, breaks, keywords,
                                                                  destination, message):
    """Catches a conversion that crashes, allocates what it cannot hold, converts a broken or ambiguous source, or
    deletes what it must not; a refused conversion leaves the destination as it was."""
    dst = tmp_path / "dst"
    if kind in ("bert", "roberta"):
        src = tmp_path / "src"
        shutil.copytree(sources[kind], src)
        if breaks is not None:
            breaks(src)
    elif kind == "file":
        src = tmp_path / "src"
        src.write_text("x")
    elif kind == "missing":
        src = tmp_path / "src"
    else:
        src = kind
    if destination == "file":
        dst.write_text("x")
    elif destination == "source":
        dst = src
    elif destination == "other files":
        dst.mkdir()
        (dst / "notes.txt").write_text("keep me")
    elif destination == "around source":
        src, dst = checkpoint_folder_holding(src, tmp_path / "dst")
    elif destination in ("", 3):
        dst = destination
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    with pytest.raises(ValueError, match=message):
        convert(src, dst, **{"attention_window": 4, "max_positions": 100, **keywords})
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # nothing written or removed


def test_the_intact_sources_convert(sources, tmp_path):
    """The baseline of the conversion cases."""
    for kind, src in sources.items():
        assert convert(src, tmp_path / kind, attention_window=4, max_positions=100).source_type == kind


def test_overwrite_leaves_exactly_the_converted_checkpoint(sources, tmp_path):
    """Catches --overwrite keeping another model's files (a stale tokenizer.json, shards, a .bin) that would then
    load with the new model."""
    dst = tmp_path / "dst"
    convert(sources["roberta"], dst, attention_window=4, max_positions=100)  # a RoBERTa's tokenizer files...
    (dst / "tokenizer.json").write_text("{}")
    (dst / "pytorch_model.bin").write_bytes(b"stale")
    (dst / ".cache").mkdir()
    (dst / ".cache" / "stale").write_text("x")
    summary = convert(sources["bert"], dst, attention_window=4, max_positions=100, overwrite=True)
    assert sorted(p.name for p in dst.iterdir()) == summary.files
    assert "tokenizer.json" not in summary.files and "vocab.txt" in summary.files
    assert [p.name for p in tmp_path.iterdir()] == ["dst"]  # no staging folder left behind


def test_a_failed_overwrite_keeps_the_old_checkpoint(sources, tmp_path, monkeypatch):
    """Catches a destination emptied before the new checkpoint is complete (a crash mid-write loses both)."""
    dst = tmp_path / "dst"
    convert(sources["bert"], dst, attention_window=4, max_positions=100)
    before = {p.name: p.read_bytes() for p in dst.iterdir()}

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint, "save_safetensors", disk_full)
    with pytest.raises(OSError, match="No space left"):
        convert(sources["roberta"], dst, attention_window=4, max_positions=100, overwrite=True)
    assert {p.name: p.read_bytes() for p in dst.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["dst"]


# ---------------------------------------------------------------------------------------------------------------
# Resources: a refusal costs what the input costs, not what it asks for
# ---------------------------------------------------------------------------------------------------------------

def measured(call):
    """(seconds, peak bytes traced) of call(), which must raise ValueError; returns the error too."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(ValueError) as error:
            call()
    finally:
        seconds = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return seconds, peak, error.value


PEAK_LIMIT = 32 * 2**20  # the checkpoints here are ~0.4 MB; a refusal may hold them a few times, not more


def test_ten_million_layers_are_refused_at_once(small_checkpoint, tmp_path):
    """Catches a table of 220 million names built before the checkpoint is consulted (minutes, then MemoryError)."""
    folder = tmp_path / "ckpt"
    shutil.copytree(small_checkpoint, folder)
    edit_config(num_hidden_layers=10_000_000, attention_window=8)(folder)
    load(small_checkpoint)  # warm: imports and caches out of the measurement
    seconds, peak, error = measured(lambda: load(folder))
    assert "num_hidden_layers = 10000000 but the checkpoint holds 3 layer" in str(error)
    assert seconds < 1.0, f"{seconds:.2f} s"
    assert peak < PEAK_LIMIT, f"peak {peak / 2**20:.1f} MiB"


def test_conversion_of_ten_million_layers_is_refused_at_once(sources, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(sources["bert"], src)
    edit_config(num_hidden_layers=10_000_000)(src)
    seconds, peak, error = measured(lambda: convert(src, tmp_path / "dst", attention_window=4, max_positions=100))
    assert "holds 3 layer" in str(error)
    assert seconds < 1.0, f"{seconds:.2f} s"
    assert peak < PEAK_LIMIT, f"peak {peak / 2**20:.1f} MiB"


def test_a_billion_positions_are_refused_before_allocating(sources, tmp_path, monkeypatch):
    """The issue's case: --max-positions 1000000000 allocated 119 GiB and died. With 8 GiB available it must say
    that 8 GiB holds about 67 million positions at hidden size 32, and allocate nothing large."""
    monkeypatch.setattr("refimpl.io.convert.available_memory", lambda: 8 * 2**30)
    seconds, peak, error = measured(
        lambda: convert(sources["bert"], tmp_path / "dst", attention_window=4, max_positions=10**9))
    assert "needs a position table of 1000000001 x 32 float32 (126.7 GiB)" in str(error), str(error)
    assert f"at most about {8 * 2**30 // (32 * 4 + 8) - 1} positions fit" in str(error)  # - the padding row
    assert seconds < 1.0 and peak < PEAK_LIMIT
    assert not (tmp_path / "dst").exists()

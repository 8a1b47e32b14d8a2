"""Weights and converter sources by Hub name (refimpl.io.checkpoint.weights_folder, refimpl.io.convert), offline.

A Hugging Face cache is laid out by hand in a temporary folder, as huggingface_hub writes it:
    models--org--name/refs/main                  the commit sha
    models--org--name/snapshots/<sha>/<files>
and read with cache_dir= and local_files_only=True in this process, or with HF_HOME and HF_HUB_OFFLINE=1 in a
subprocess (huggingface_hub reads the environment when it is imported). Which files are fetched is checked by
recording huggingface_hub.hf_hub_download's calls.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import huggingface_hub
import numpy as np
import pytest
from huggingface_hub import errors
from safetensors.numpy import load_file, save

from refimpl.io import checkpoint
from refimpl.io.convert import convert

SHA = "0123456789abcdef0123456789abcdef01234567"
REPO_ROOT = Path(__file__).resolve().parents[3]


def lay_out_cache(cache: Path, repo: str, files: dict[str, Path | bytes]) -> Path:
    """Put `files` (name -> a file to copy, or bytes) into a hand-made cache for `repo`; return the snapshot."""
    root = cache / ("models--" + repo.replace("/", "--"))
    snapshot = root / "snapshots" / SHA
    snapshot.mkdir(parents=True)
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text(SHA)
    for name, source in files.items():
        if isinstance(source, bytes):
            (snapshot / name).write_bytes(source)
        else:
            shutil.copyfile(source, snapshot / name)
    return snapshot


def sharded(directory: Path) -> dict[str, bytes]:
    """The single model.safetensors of `directory` as an index and two shards (file name -> bytes)."""
    tensors = load_file(directory / checkpoint.SAFETENSORS)
    names = sorted(tensors)
    shards = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
    files = {shard: save({k: tensors[k] for k in keys}) for shard, keys in shards.items()}
    files[checkpoint.SAFETENSORS_INDEX] = json.dumps(
        {"metadata": {}, "weight_map": {k: s for s, keys in shards.items() for k in keys}}).encode()
    return files


def same_tensors(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


# ---------------------------------------------------------------------------------------------------------------
# A hand-made cache, read offline
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("layout", ["single", "sharded", "bin"])
def test_weights_load_from_the_cache_by_name(checkpoint_factory, tmp_path, layout):
    """Catches a Hub name treated as a folder, and a repository with shards or only a .bin that is not found."""
    directory, model = checkpoint_factory("LongformerModel")
    files = {"config.json": directory / "config.json"}
    if layout == "single":
        files[checkpoint.SAFETENSORS] = directory / checkpoint.SAFETENSORS
    elif layout == "sharded":
        files.update(sharded(directory))
    else:
        torch = pytest.importorskip("torch")
        torch.save(model.state_dict(), tmp_path / "state.bin")
        files[checkpoint.PYTORCH_BIN] = tmp_path / "state.bin"
    snapshot = lay_out_cache(tmp_path / "hub", "org/name", files)
    folder = checkpoint.weights_folder("org/name", cache_dir=tmp_path / "hub", local_files_only=True)
    assert folder == snapshot
    assert same_tensors(checkpoint.read_tensors(folder), checkpoint.read_tensors(directory))


def test_a_folder_is_returned_as_it_is(checkpoint_factory):
    directory, _ = checkpoint_factory("LongformerModel")
    assert checkpoint.weights_folder(directory) == Path(directory)
    assert checkpoint.weights_folder(os.fspath(directory), local_files_only=True) == Path(directory)


@pytest.mark.parametrize("name", ["org/absent", "absent-single-name"])
def test_a_name_neither_folder_nor_cached_is_a_clear_error(tmp_path, name):
    with pytest.raises(ValueError, match=rf"no weights for '{name}': looked for model.safetensors, "
                                         r"model.safetensors.index.json.*not a local folder.*cache"):
        checkpoint.weights_folder(name, cache_dir=tmp_path / "empty", local_files_only=True)


def test_a_path_that_is_neither_folder_nor_name_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="not a folder, and not a Hub repository name either"):
        checkpoint.weights_folder(tmp_path / "no" / "such" / "folder")


# ---------------------------------------------------------------------------------------------------------------
# Only the files read_tensors reads are fetched
# ---------------------------------------------------------------------------------------------------------------

@pytest.fixture
def recording_hub(monkeypatch, tmp_path):
    """A fake Hub: set `repo` (file name -> bytes); `requests` records every file asked for, in order."""
    state = {"repo": {}, "requests": []}
    snapshot = tmp_path / "snapshot"
    snapshot.mkdir()

    def hf_hub_download(repo_id, filename, **kwargs):
        state["requests"].append(filename)
        if filename not in state["repo"]:
            raise errors.LocalEntryNotFoundError(f"{filename} is not in {repo_id}")
        (snapshot / filename).write_bytes(state["repo"][filename])
        return str(snapshot / filename)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", hf_hub_download)
    return state


def test_model_safetensors_is_fetched_alone(checkpoint_factory, recording_hub):
    """Catches a .bin (hundreds of MB, and a pickle) or an index fetched although model.safetensors is there."""
    directory, _ = checkpoint_factory("LongformerModel")
    recording_hub["repo"] = {name: b"x" for name in (checkpoint.SAFETENSORS, checkpoint.SAFETENSORS_INDEX,
                                                      checkpoint.PYTORCH_BIN)}
    recording_hub["repo"][checkpoint.SAFETENSORS] = (directory / checkpoint.SAFETENSORS).read_bytes()
    checkpoint.weights_folder("org/name")
    assert recording_hub["requests"] == [checkpoint.SAFETENSORS]


def test_shards_are_fetched_after_their_index(checkpoint_factory, recording_hub):
    directory, _ = checkpoint_factory("LongformerModel")
    recording_hub["repo"] = {**sharded(directory), checkpoint.PYTORCH_BIN: b"x"}
    folder = checkpoint.weights_folder("org/name")
    assert recording_hub["requests"] == [checkpoint.SAFETENSORS, checkpoint.SAFETENSORS_INDEX,
                                         "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    assert same_tensors(checkpoint.read_tensors(folder), checkpoint.read_tensors(directory))


def test_pytorch_bin_is_fetched_only_where_torch_is_importable(recording_hub, monkeypatch):
    """Catches a pickle downloaded where nothing can read it safely."""
    recording_hub["repo"] = {checkpoint.PYTORCH_BIN: b"x"}
    if checkpoint.importlib.util.find_spec("torch") is not None:
        checkpoint.weights_folder("org/name")
        assert recording_hub["requests"][-1] == checkpoint.PYTORCH_BIN
    recording_hub["requests"].clear()
    real_find_spec = checkpoint.importlib.util.find_spec
    monkeypatch.setattr(checkpoint.importlib.util, "find_spec",
                        lambda name, *a: None if name == "torch" else real_find_spec(name, *a))
    with pytest.raises(ValueError, match="pytorch_model.bin is read only where torch is installed"):
        checkpoint.weights_folder("org/name")
    assert checkpoint.PYTORCH_BIN not in recording_hub["requests"]


def test_a_shard_index_that_names_unsafe_shards_fetches_nothing_more(recording_hub):
    """Catches an index whose shard names reach outside the snapshot ('../..') being passed to the Hub."""
    recording_hub["repo"] = {checkpoint.SAFETENSORS_INDEX: json.dumps(
        {"weight_map": {"w": "../../etc/passwd"}}).encode()}
    with pytest.raises(ValueError, match="not a plain file name"):
        checkpoint.weights_folder("org/name")
    assert recording_hub["requests"] == [checkpoint.SAFETENSORS, checkpoint.SAFETENSORS_INDEX]


# ---------------------------------------------------------------------------------------------------------------
# The converter's source by name, and the environment (HF_HOME, HF_HUB_OFFLINE) in a fresh process
# ---------------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bert_source(tmp_path_factory):
    """A small random BertModel saved by transformers, with a WordPiece vocabulary."""
    transformers = pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=40, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=32, max_position_embeddings=20)
    folder = tmp_path_factory.mktemp("bert")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        transformers.BertModel(config).save_pretrained(folder)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(35)]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    return folder


def test_convert_takes_a_hub_name(bert_source, tmp_path):
    """Catches a converter that only takes folders, or reads the tokenizer files from somewhere else."""
    files = {p.name: p for p in bert_source.iterdir()}
    lay_out_cache(tmp_path / "hub", "org/bert", files)
    by_name = convert("org/bert", tmp_path / "by-name", attention_window=4, max_positions=40,
                      cache_dir=tmp_path / "hub", local_files_only=True)
    by_folder = convert(bert_source, tmp_path / "by-folder", attention_window=4, max_positions=40)
    assert by_name.source == "org/bert"
    assert by_name.files == by_folder.files and "vocab.txt" in by_name.files
    for name in by_name.files:
        assert (tmp_path / "by-name" / name).read_bytes() == (tmp_path / "by-folder" / name).read_bytes(), name


def test_convert_refuses_an_unknown_keyword(bert_source, tmp_path):
    with pytest.raises(TypeError, match="unexpected keyword argument.*'revison'"):
        convert(bert_source, tmp_path / "out", revison="main")


def run_offline(code: str, hf_home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO_ROOT)}
    env.pop("HF_HUB_CACHE", None)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env,
                          cwd=REPO_ROOT)


def test_hf_home_and_offline_are_honoured(checkpoint_factory, bert_source, tmp_path):
    """Catches a resolver that ignores HF_HOME (looking in ~/.cache) or goes to the network while offline; and
    a missing name that is anything but a ValueError saying so."""
    directory, _ = checkpoint_factory("LongformerModel")
    cache = tmp_path / "home" / "hub"
    lay_out_cache(cache, "org/longformer", {"config.json": directory / "config.json",
                                            checkpoint.SAFETENSORS: directory / checkpoint.SAFETENSORS})
    lay_out_cache(cache, "org/bert", {p.name: p for p in bert_source.iterdir()})
    code = f"""
from refimpl.io import checkpoint
from refimpl.io.convert import convert
print(checkpoint.weights_folder("org/longformer"))
print(len(checkpoint.read_tensors(checkpoint.weights_folder("org/longformer"))))
print(convert("org/bert", {str(tmp_path / "out")!r}, attention_window=4, max_positions=40).source_type)
for call in (lambda: checkpoint.weights_folder("org/missing"), lambda: convert("org/missing", "unused")):
    try:
        call()
    except ValueError as e:
        print("ValueError:", e)
"""
    result = run_offline(code, tmp_path / "home")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == str(cache / "models--org--longformer" / "snapshots" / SHA)
    assert lines[1] == str(len(checkpoint.read_tensors(directory)))
    assert lines[2] == "bert"
    assert lines[3].startswith("ValueError: no weights for 'org/missing'") and "offline" in lines[3], lines[3]
    assert lines[4].startswith("ValueError: 'org/missing' is not a local folder") and "offline" in lines[4], lines[4]
    assert not (tmp_path / "unused").exists()

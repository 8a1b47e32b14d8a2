"""LongformerTokenizer.from_pretrained with a Hub repository name, offline: a Hugging Face cache laid out by hand
(hub/models--org--name/refs/main holding a commit, snapshots/<commit>/ the files), read through refimpl.io.hub.

Would catch: a name taken for a folder path, HF_HOME or HF_HUB_OFFLINE not honoured, revision or cache_dir not
passed on, more than the tokenizer files asked for (a model download for a tokenizer), and a name that is neither
a folder nor cached failing with a Hub traceback instead of a ValueError that says what to do.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import huggingface_hub
import pytest
from test_tokenizer import TEXTS, bpe_directory  # noqa: F401  (bpe_directory is a fixture)

from refimpl.io import tokenizer as tokenizer_module
from refimpl.io.tokenizer import TOKENIZER_FILES, LongformerTokenizer

REPO = "allenai/longformer-tiny-test"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
OTHER_COMMIT = "fedcba9876543210fedcba9876543210fedcba98"


def lay_out_cache(hub_cache, source, repo=REPO, commit=COMMIT, ref="main", model_max_length=None):
    """Copy the tokenizer files of `source` into a Hub cache as huggingface_hub would have downloaded them."""
    folder = hub_cache / f"models--{repo.replace('/', '--')}"
    snapshot = folder / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    for name in ("vocab.json", "merges.txt"):
        shutil.copy(source / name, snapshot / name)
    if model_max_length is not None:
        (snapshot / "tokenizer_config.json").write_text(json.dumps({"model_max_length": model_max_length}))
    (folder / "refs").mkdir(exist_ok=True)
    (folder / "refs" / ref).write_text(commit)
    return snapshot


@pytest.fixture
def hf_home(tmp_path, bpe_directory):  # noqa: F811
    """An HF_HOME whose hub cache holds REPO at COMMIT (main, model_max_length 4096) and OTHER_COMMIT (tag v2)."""
    lay_out_cache(tmp_path / "hub", bpe_directory, model_max_length=4096)
    lay_out_cache(tmp_path / "hub", bpe_directory, commit=OTHER_COMMIT, ref="v2", model_max_length=512)
    return tmp_path


@pytest.fixture
def offline_cache(hf_home, monkeypatch):
    """huggingface_hub pointed at hf_home and offline, as HF_HOME and HF_HUB_OFFLINE=1 would set it at import."""
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(hf_home / "hub"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    return hf_home


def test_a_cached_name_loads_with_cache_dir(hf_home, bpe_directory):  # noqa: F811
    """Catches cache_dir or local_files_only not reaching huggingface_hub."""
    tok = LongformerTokenizer.from_pretrained(REPO, cache_dir=hf_home / "hub", local_files_only=True)
    folder = LongformerTokenizer.from_pretrained(bpe_directory)
    assert tok(TEXTS, padding=True) == folder(TEXTS, padding=True)
    assert tok.model_max_length == 4096 and tok.name_or_path == REPO


def test_a_cached_name_loads_from_the_default_cache_offline(offline_cache):
    """Catches HF_HUB_CACHE / HF_HUB_OFFLINE being ignored (an attempt to reach the network, or a folder lookup)."""
    tok = LongformerTokenizer.from_pretrained(REPO)
    assert tok.model_max_length == 4096
    assert tok.decode(tok.encode(TEXTS[3]), skip_special_tokens=True) == TEXTS[3]


def test_revision_picks_the_snapshot(offline_cache):
    """Catches revision not passed on: the tag v2 and its commit give the snapshot whose config says 512."""
    assert LongformerTokenizer.from_pretrained(REPO, revision="v2").model_max_length == 512
    assert LongformerTokenizer.from_pretrained(REPO, revision=OTHER_COMMIT).model_max_length == 512
    assert LongformerTokenizer.from_pretrained(REPO, revision="main").model_max_length == 4096


def test_only_the_tokenizer_files_are_asked_for(offline_cache, monkeypatch):
    """Catches a tokenizer that fetches config.json or model weights, or that misses one of its own files."""
    asked = []
    real = huggingface_hub.hf_hub_download

    def recording(repo_id, filename, **kwargs):
        asked.append(filename)
        return real(repo_id, filename, **kwargs)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", recording)
    LongformerTokenizer.from_pretrained(REPO)
    assert sorted(asked) == sorted(TOKENIZER_FILES) == sorted(
        ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt",
         "added_tokens.json"])
    assert tokenizer_module.TOKENIZER_FILES is TOKENIZER_FILES


def test_a_name_neither_folder_nor_cached_is_a_clear_value_error(offline_cache):
    """Catches a LocalEntryNotFoundError (or a hang on the network) for a name nobody downloaded."""
    with pytest.raises(ValueError, match=r"'org/not-downloaded' is not a local folder.*offline.*hf download"):
        LongformerTokenizer.from_pretrained("org/not-downloaded")
    with pytest.raises(ValueError, match="not a Hub repository name either"):
        LongformerTokenizer.from_pretrained("no/such/folder/or/name")


def test_the_environment_variables_are_honoured(hf_home, tmp_path):
    """Catches HF_HOME and HF_HUB_OFFLINE read too late or not at all: a fresh interpreter with only the environment
    set loads the cached name, and refuses an uncached one with the offline hint."""
    script = (
        "from refimpl.io.tokenizer import LongformerTokenizer\n"
        f"tok = LongformerTokenizer.from_pretrained({REPO!r})\n"
        "print(tok.model_max_length, tok.encode('Longformer scales linearly.'))\n"
        "try:\n"
        "    LongformerTokenizer.from_pretrained('org/not-downloaded')\n"
        "except ValueError as error:\n"
        "    print('ValueError', 'offline' in str(error))\n")
    env = {**os.environ, "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1"}
    env.pop("HF_HUB_CACHE", None)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    result = subprocess.run([sys.executable, "-c", script], env=env, cwd=root, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    first, second = result.stdout.splitlines()
    # local_files_only: this process is online, and would wait on the network for the files the cache lacks
    cached = LongformerTokenizer.from_pretrained(REPO, cache_dir=hf_home / "hub", local_files_only=True)
    expected = cached.encode("Longformer scales linearly.")
    assert first == f"4096 {expected}"
    assert second == "ValueError True"

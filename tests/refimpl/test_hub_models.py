"""Models, configs and the CLI by Hub name, offline: a Hugging Face cache laid out by hand (as huggingface_hub
writes it) holds the embedded default model's converted checkpoint under "org/minilm-longformer".

Would catch: a from_pretrained that takes only folders, ignores cache_dir / HF_HOME / HF_HUB_OFFLINE, fetches from the
network while offline, or reads a different snapshot than the folder it stands for.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import refimpl
from refimpl.io.default_model import default_checkpoint_dir

SHA = "89abcdef0123456789abcdef0123456789abcdef"
REPO = "org/minilm-longformer"
REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def hf_home(tmp_path_factory):
    source = default_checkpoint_dir()
    home = tmp_path_factory.mktemp("hf_home")
    root = home / "hub" / ("models--" + REPO.replace("/", "--"))
    snapshot = root / "snapshots" / SHA
    snapshot.mkdir(parents=True)
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text(SHA)
    for path in source.iterdir():
        (snapshot / path.name).symlink_to(path)
    return home, source


def test_models_and_configs_load_by_name(hf_home, monkeypatch):
    home, source = hf_home
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    cache = home / "hub"
    by_name = refimpl.LongformerModel.from_pretrained(REPO, cache_dir=cache, local_files_only=True)
    by_folder = refimpl.LongformerModel.from_pretrained(source)
    tokenizer = refimpl.LongformerTokenizer.from_pretrained(REPO, cache_dir=cache, local_files_only=True)
    enc = tokenizer("Long documents need long attention.", return_tensors="np")
    np.testing.assert_array_equal(by_name(**enc).last_hidden_state, by_folder(**enc).last_hidden_state)
    config = refimpl.LongformerConfig.from_pretrained(REPO, cache_dir=cache, local_files_only=True,
                                                      attention_window=64)
    assert config.attention_window == 64 and config.to_dict()["hidden_size"] == by_folder.config.hidden_size
    with pytest.raises(ValueError, match="revision|not a local folder"):
        refimpl.LongformerModel.from_pretrained(REPO, cache_dir=cache, local_files_only=True, revision="v9")


def test_the_cli_runs_a_hub_name_offline(hf_home):
    home, _ = hf_home
    env = {**os.environ, "HF_HOME": str(home), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO_ROOT)}
    env.pop("HF_HUB_CACHE", None)
    result = subprocess.run([sys.executable, "-m", "refimpl.cli", "run", "A short text.", "--model", REPO,
                             "--repeat", "1"], capture_output=True, text=True, timeout=300, env=env, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr
    assert "last_hidden_state (1," in result.stdout
    folder = subprocess.run([sys.executable, "-c", "from refimpl.io.default_model import resolve_model_dir; "
                             f"print(resolve_model_dir({REPO!r}))"], capture_output=True, text=True, timeout=300,
                            env=env, cwd=REPO_ROOT)  # what the app's checkpoint field calls
    assert folder.stdout.strip().endswith(f"snapshots/{SHA}"), folder.stderr
    missing = subprocess.run([sys.executable, "-m", "refimpl.cli", "run", "x", "--model", "org/not-cached"],
                             capture_output=True, text=True, timeout=300, env=env, cwd=REPO_ROOT)
    assert missing.returncode == 2 and "not a local folder" in missing.stderr and "hf download" in missing.stderr


def test_the_cli_says_when_it_truncates(tmp_path):
    """`longformer-lab run` on a text longer than the position table runs its first tokens and says so."""
    from refimpl.io.convert import convert
    from refimpl.io.default_model import source_dir

    convert(source_dir(), tmp_path / "short", attention_window=16, max_positions=32)
    text = "A sentence of words. " * 40
    result = subprocess.run([sys.executable, "-m", "refimpl.cli", "run", text, "--model", str(tmp_path / "short"),
                             "--repeat", "1"], capture_output=True, text=True, timeout=300, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr
    assert "note: the text has 202 tokens, more than the 32" in result.stderr and "first 32 were run" in result.stderr

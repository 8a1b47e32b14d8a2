"""Loading checkpoints: every format transformers writes, the explicit key map, and refusals by name.

Nothing is unpickled: safetensors first, a pytorch_model.bin only through torch.load(weights_only=True).
"""

from __future__ import annotations

import json
import os
import pickle
import shutil

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file, save_file

import refimpl
from conftest import assert_close


def copy_checkpoint(src, dst):
    shutil.copytree(src, dst)
    return dst


def forward(directory, cls=refimpl.LongformerModel):
    ids = np.random.default_rng(0).integers(3, 97, (1, 11))
    return cls.from_pretrained(directory)(ids).last_hidden_state


def test_sharded_safetensors_equal_single_file(checkpoint_factory, tmp_path):
    directory, _ = checkpoint_factory("LongformerModel")
    tensors = load_file(os.path.join(directory, "model.safetensors"))
    names = sorted(tensors)
    shards = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
    for shard, keys in shards.items():
        save_file({k: tensors[k] for k in keys}, tmp_path / shard)
    with open(tmp_path / "model.safetensors.index.json", "w") as f:
        json.dump({"metadata": {}, "weight_map": {k: s for s, keys in shards.items() for k in keys}}, f)
    shutil.copy(os.path.join(directory, "config.json"), tmp_path)
    assert_close(forward(tmp_path), forward(directory))


def test_tensors_come_in_name_order(checkpoint_factory):
    """Catches messages that change from run to run: safetensors' deserialize lists a file's tensors in an order
    that varies between processes, and the first NaN, duplicate or dtype reported follows the reading order."""
    from refimpl.io import checkpoint

    directory, _ = checkpoint_factory("LongformerModel")
    names = list(checkpoint.read_tensors(directory))
    assert names == sorted(names)


def test_pytorch_bin_is_read_with_weights_only(checkpoint_factory, tmp_path):
    directory, model = checkpoint_factory("LongformerModel")
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")
    shutil.copy(os.path.join(directory, "config.json"), tmp_path)
    assert_close(forward(tmp_path), forward(directory))


class Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/longformer_lab_pwned",))


def test_a_pickle_that_runs_code_is_refused(checkpoint_factory, tmp_path):
    """weights_only=True refuses arbitrary objects: the file's code must never run."""
    directory, _ = checkpoint_factory("LongformerModel")
    with open(tmp_path / "pytorch_model.bin", "wb") as f:
        pickle.dump({"embeddings.word_embeddings.weight": Exploit()}, f)
    shutil.copy(os.path.join(directory, "config.json"), tmp_path)
    if os.path.exists("/tmp/longformer_lab_pwned"):
        os.remove("/tmp/longformer_lab_pwned")
    with pytest.raises(ValueError, match="weights_only=True"):
        refimpl.LongformerModel.from_pretrained(tmp_path)
    assert not os.path.exists("/tmp/longformer_lab_pwned")


def test_keys_with_or_without_the_longformer_prefix(checkpoint_factory, tmp_path):
    """A head checkpoint (longformer.-prefixed) loads into the bare model, and the reverse for the encoder."""
    directory, _ = checkpoint_factory("LongformerForTokenClassification", num_labels=3)
    with pytest.warns(UserWarning, match="unused by this model: classifier"):
        bare = refimpl.LongformerModel.from_pretrained(directory)
    assert bare.pooler is None  # no pooler weights in a token-classification checkpoint: none is invented
    head = refimpl.LongformerForTokenClassification.from_pretrained(directory)
    ids = np.random.default_rng(0).integers(3, 97, (1, 9))
    assert_close(bare(ids).last_hidden_state, head.encode(ids).last_hidden_state)


def test_missing_weight_is_refused_by_name(checkpoint_factory, tmp_path):
    directory, _ = checkpoint_factory("LongformerModel")
    copy_checkpoint(directory, tmp_path / "ckpt")
    tensors = load_file(tmp_path / "ckpt" / "model.safetensors")
    del tensors["encoder.layer.1.attention.self.key_global.weight"]
    save_file(tensors, tmp_path / "ckpt" / "model.safetensors")
    with pytest.raises(ValueError, match="missing 1 weight.*encoder.layer.1.attention.self.key_global.weight"):
        refimpl.LongformerModel.from_pretrained(tmp_path / "ckpt")


def test_shape_mismatch_names_the_key_and_both_shapes(checkpoint_factory, tmp_path):
    directory, _ = checkpoint_factory("LongformerModel")
    copy_checkpoint(directory, tmp_path / "ckpt")
    with open(tmp_path / "ckpt" / "config.json") as f:
        config = json.load(f)
    config["intermediate_size"] = 48
    with open(tmp_path / "ckpt" / "config.json", "w") as f:
        json.dump(config, f)
    with pytest.raises(ValueError, match=r"intermediate.dense.weight' has shape \(64, 32\).*asks for \(48, 32\)"):
        refimpl.LongformerModel.from_pretrained(tmp_path / "ckpt")


def test_truncated_safetensors_is_a_clear_error(checkpoint_factory, tmp_path):
    directory, _ = checkpoint_factory("LongformerModel")
    copy_checkpoint(directory, tmp_path / "ckpt")
    path = tmp_path / "ckpt" / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated, corrupt"):
        refimpl.LongformerModel.from_pretrained(tmp_path / "ckpt")
    path.write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match="truncated, corrupt"):
        refimpl.LongformerModel.from_pretrained(tmp_path / "ckpt")


def test_folders_that_are_not_checkpoints(checkpoint_factory, tmp_path):
    with pytest.raises(ValueError, match="is not a folder"):
        refimpl.LongformerModel.from_pretrained(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="no config.json"):
        refimpl.LongformerModel.from_pretrained(tmp_path)
    directory, _ = checkpoint_factory("LongformerModel")
    shutil.copy(os.path.join(directory, "config.json"), tmp_path)
    with pytest.raises(ValueError, match="no weights in .*looked for model.safetensors"):
        refimpl.LongformerModel.from_pretrained(tmp_path)
    with open(tmp_path / "config.json", "w") as f:
        json.dump({"model_type": "bert"}, f)
    with pytest.raises(ValueError, match="'bert' model, not a Longformer.*longformer-lab convert"):
        refimpl.LongformerModel.from_pretrained(tmp_path)


# ---------------------------------------------------------------------------------------------------------------
# from_pretrained's use of the checkpoint functions: checkpoint.weights_folder(name, **hub_kwargs),
# checkpoint.check_layers(tensors, config.num_hidden_layers) before expected_shapes, and
# read_tensors(folder, allow_non_finite=allow_non_finite).
# ---------------------------------------------------------------------------------------------------------------

def test_from_pretrained_loads_non_finite_weights_when_asked(checkpoint_factory, tmp_path):
    directory, _ = checkpoint_factory("LongformerModel")
    copy_checkpoint(directory, tmp_path / "ckpt")
    tensors = load_file(tmp_path / "ckpt" / "model.safetensors")
    tensors["pooler.dense.bias"][0] = np.nan
    save_file(tensors, tmp_path / "ckpt" / "model.safetensors")
    with pytest.raises(ValueError, match="'pooler.dense.bias' .*holds 1 NaN"):
        refimpl.LongformerModel.from_pretrained(tmp_path / "ckpt")
    model = refimpl.LongformerModel.from_pretrained(tmp_path / "ckpt", allow_non_finite=True)
    assert np.isnan(model(np.array([[0, 5, 2]])).pooler_output[0, 0])


def test_from_pretrained_refuses_ten_million_layers_at_once(checkpoint_factory, tmp_path):
    """Run in a subprocess held to 2 GiB of address space and 60 s, so that the unwired version fails fast
    instead of taking the shared machine's memory."""
    import subprocess
    import sys

    directory, _ = checkpoint_factory("LongformerModel")
    copy_checkpoint(directory, tmp_path / "ckpt")
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    config.update(num_hidden_layers=10_000_000, attention_window=8)
    (tmp_path / "ckpt" / "config.json").write_text(json.dumps(config))
    code = f"""
import resource, time
resource.setrlimit(resource.RLIMIT_AS, (2 * 2**30, 2 * 2**30))
import refimpl
start = time.perf_counter()
try:
    refimpl.LongformerModel.from_pretrained({str(tmp_path / "ckpt")!r})
except ValueError as e:
    print(time.perf_counter() - start, e)
"""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    try:
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=root)
    except subprocess.TimeoutExpired:
        pytest.fail("from_pretrained ran for a minute on a 10-million-layer config")
    assert result.returncode == 0, result.stderr[-2000:]
    seconds, message = result.stdout.split(" ", 1)
    assert "num_hidden_layers = 10000000 but the checkpoint holds 3 layer" in message
    assert float(seconds) < 1.0


def test_from_pretrained_fetches_the_shards_of_a_hub_repository(checkpoint_factory, tmp_path, monkeypatch):
    import huggingface_hub
    from huggingface_hub import errors

    directory, _ = checkpoint_factory("LongformerModel")
    tensors = load_file(os.path.join(directory, "model.safetensors"))
    names = sorted(tensors)
    remote = tmp_path / "remote"
    remote.mkdir()
    shutil.copy(os.path.join(directory, "config.json"), remote)
    shards = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
    for shard, keys in shards.items():
        save_file({k: tensors[k] for k in keys}, remote / shard)
    (remote / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {k: s for s, keys in shards.items() for k in keys}}))
    snapshot = tmp_path / "snapshot"
    snapshot.mkdir()

    def hf_hub_download(repo_id, filename, **kwargs):  # a Hub that serves `remote`, file by file
        if not (remote / filename).is_file():
            raise errors.LocalEntryNotFoundError(f"{filename} is not in {repo_id}")
        shutil.copy(remote / filename, snapshot / filename)
        return str(snapshot / filename)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", hf_hub_download)
    assert_close(forward("org/sharded"), forward(directory))

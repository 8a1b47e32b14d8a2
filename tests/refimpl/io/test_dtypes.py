"""Checkpoints in every float dtype transformers saves load into float32 (refimpl.io.checkpoint).

The ground truth is transformers itself on the same rounded weights: a model saved in float16 or bfloat16 is
compared with transformers' LongformerModel holding those float16 / bfloat16 weights upcast to float32, so both run
the same float32 arithmetic on the same numbers and conftest's float32 tolerances (HIDDEN_ATOL + HIDDEN_RTOL) apply
unchanged; the rounding of the weights is in both sides, not in the tolerance. The weights themselves must come out
bit for bit as torch's `.float()` of them.
"""

from __future__ import annotations

import copy
import os
import warnings

import numpy as np
import pytest
from safetensors.numpy import save_file

import refimpl
from refimpl.io import checkpoint
from conftest import assert_close, random_inputs

torch = pytest.importorskip("torch")
safetensors_torch = pytest.importorskip("safetensors.torch")


def save_in(model, dtype: str, directory, fmt: str):
    """Save `model` cast to `dtype` as transformers does (model.safetensors) or as a torch.save'd
    pytorch_model.bin; return the cast model, upcast to float32 (transformers' view of the same rounded weights)."""
    cast = copy.deepcopy(model).to(getattr(torch, dtype))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cast.save_pretrained(directory)
    if fmt == "bin":
        os.remove(os.path.join(directory, checkpoint.SAFETENSORS))
        torch.save(cast.state_dict(), os.path.join(directory, checkpoint.PYTORCH_BIN))
    return cast.float().eval()


@pytest.mark.parametrize("fmt", ["safetensors", "bin"])
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_each_dtype_loads_as_the_float32_of_its_weights(checkpoint_factory, tmp_path, dtype, fmt):
    """Catches a bfloat16 checkpoint refused (safetensors.numpy has no bfloat16), a widening that is not exact
    (bfloat16 read as float16, or bits shifted the wrong way), and a .bin read in another dtype than its own."""
    _, model = checkpoint_factory("LongformerModel")
    reference = save_in(model, dtype, tmp_path, fmt)
    tensors = checkpoint.read_tensors(tmp_path)
    for name, value in reference.state_dict().items():
        assert tensors[name].dtype == np.float32, name
        np.testing.assert_array_equal(tensors[name], value.numpy(), err_msg=name)

    ids, mask, glob = random_inputs(np.random.default_rng(0), 2, 40, pad_rows={1: 29}, n_global={0: 2, 1: 1})
    ours = refimpl.LongformerModel.from_pretrained(tmp_path)(ids, attention_mask=mask, global_attention_mask=glob)
    with torch.no_grad():
        theirs = reference(torch.tensor(ids), attention_mask=torch.tensor(mask),
                           global_attention_mask=torch.tensor(glob))
    keep = mask.astype(bool)
    assert_close(ours.last_hidden_state[keep], theirs.last_hidden_state.numpy()[keep], what=f"{dtype} {fmt}")
    assert_close(ours.pooler_output, theirs.pooler_output.numpy(), what=f"{dtype} {fmt} pooler")


def test_bfloat16_widening_is_exact_on_special_values(tmp_path):
    """Catches rounding, a lost sign, flushed subnormals, and NaN or inf bits changed on the way to float32."""
    values = torch.tensor([1.0, -2.5, 3.140625, 1e-40, -0.0, 3.3895e38, float("inf"), float("-inf"), float("nan")],
                          dtype=torch.bfloat16)
    safetensors_torch.save_file({"w": values}, str(tmp_path / checkpoint.SAFETENSORS))
    widened = checkpoint.read_tensors(tmp_path, allow_non_finite=True)["w"]
    expected = values.float().numpy()
    assert widened.dtype == np.float32
    np.testing.assert_array_equal(widened.view(np.uint32), expected.view(np.uint32))


def test_float64_is_rounded_as_torch_rounds_it(tmp_path):
    """Catches float64 refused or truncated instead of rounded to nearest."""
    values = np.random.default_rng(0).standard_normal(1000)
    save_file({"w": values}, str(tmp_path / checkpoint.SAFETENSORS))
    np.testing.assert_array_equal(checkpoint.read_tensors(tmp_path)["w"],
                                  torch.from_numpy(values).float().numpy())


def test_integer_buffers_keep_their_dtype_and_are_not_weights(checkpoint_factory, tmp_path):
    """An old checkpoint's int64 position_ids buffer loads (it is ignored), while the same dtype in a weight's
    place is refused by name."""
    directory, _ = checkpoint_factory("LongformerModel")
    tensors = checkpoint.read_tensors(directory)
    tensors["embeddings.position_ids"] = np.arange(124, dtype=np.int64)[None]
    save_file(tensors, str(tmp_path / checkpoint.SAFETENSORS))
    (tmp_path / "config.json").write_bytes((directory / "config.json").read_bytes())
    read = checkpoint.read_tensors(tmp_path)
    assert read["embeddings.position_ids"].dtype == np.int64
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not even an "unused weights" warning for the buffer
        refimpl.LongformerModel.from_pretrained(tmp_path)

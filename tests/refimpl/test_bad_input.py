"""Bad input gets a ValueError that says what was wrong and what is allowed; never a crash, a hang or a NaN."""

from __future__ import annotations

import numpy as np
import pytest

import refimpl
from refimpl.config import LongformerConfig


@pytest.fixture(scope="module")
def model(checkpoint_factory):
    directory, _ = checkpoint_factory("LongformerModel")
    return refimpl.LongformerModel.from_pretrained(directory)


IDS = np.full((2, 6), 5)


@pytest.mark.parametrize("kwargs,message", [
    (dict(input_ids=[[5, 97, 3]]), r"input_ids holds 97, outside \[0, 97\)"),
    (dict(input_ids=[[5, -1, 3]]), r"input_ids holds -1, outside \[0, 97\)"),
    (dict(input_ids=[[5.0, 6.0]]), "input_ids must hold integers"),
    (dict(input_ids=[5, 6, 7]), r"input_ids must have shape \(batch, sequence\)"),
    (dict(input_ids=np.zeros((1, 0), int)), r"input_ids must have shape \(batch, sequence\) with both >= 1"),
    (dict(input_ids=[[5, 6], [7]]), "rectangular array of integers"),
    (dict(input_ids=np.full((1, 123), 5)), "the input has 123 tokens but the position table holds at most 122"),
    (dict(input_ids=IDS, attention_mask=np.ones((2, 5), int)), r"attention_mask has shape \(2, 5\) but input_ids"),
    (dict(input_ids=IDS, attention_mask=np.full((2, 6), 3)), "attention_mask holds 3.*0 padding, 1 attend, 2 global"),
    (dict(input_ids=IDS, global_attention_mask=np.full((2, 6), 2)), r"global_attention_mask holds 2.*0 local, 1 global"),
    (dict(input_ids=IDS, token_type_ids=np.full((2, 6), 2)), "token_type_ids holds 2.*2 token type"),
    (dict(input_ids=IDS, position_ids=np.full((2, 6), 124)), "position_ids holds 124.*124 rows"),
])
def test_bad_model_inputs_are_named(model, kwargs, message):
    with pytest.raises(ValueError, match=message):
        model(**kwargs)


def test_a_row_of_only_padding_gives_finite_outputs(model):
    """Every key of the row is masked: the softmax must not produce NaN (transformers fills with finfo.min too)."""
    ids = np.full((2, 8), 5)
    mask = np.ones((2, 8), int)
    mask[1] = 0
    glob = np.zeros((2, 8), int)
    glob[0, 2] = 1
    out = model(ids, attention_mask=mask, global_attention_mask=glob, output_attentions=True)
    assert np.isfinite(out.last_hidden_state).all()
    assert not out.attentions[0][1].any() and not out.global_attentions[0][1].any()


@pytest.mark.parametrize("window,message", [
    (5, "even, positive integers"), (0, "even, positive integers"), (-4, "even, positive integers"),
    ([4, 8], "has 2 entries but the model has 3 layers"), ("wide", "must be an int or a list"),
])
def test_bad_windows(checkpoint_factory, window, message):
    directory, _ = checkpoint_factory("LongformerModel")
    with pytest.raises(ValueError, match=message):
        refimpl.LongformerModel.from_pretrained(directory, attention_window=window)


def test_bad_configs():
    with pytest.raises(ValueError, match=r"hidden_size \(30\) must be a multiple of num_attention_heads \(4\)"):
        LongformerConfig(hidden_size=30, num_attention_heads=4)
    with pytest.raises(ValueError, match="hidden_act 'mish' is not supported"):
        LongformerConfig(hidden_act="mish")


def test_question_answering_default_needs_three_separators(checkpoint_factory):
    directory, _ = checkpoint_factory("LongformerForQuestionAnswering", num_labels=2)
    qa = refimpl.LongformerForQuestionAnswering.from_pretrained(directory)
    with pytest.raises(ValueError, match="row 0 has 1 separator tokens.*exactly three"):
        qa([[0, 5, 6, 2, 7, 8]])


def test_unknown_and_unavailable_backends_name_the_alternatives(checkpoint_factory):
    directory, _ = checkpoint_factory("LongformerModel")
    with pytest.raises(ValueError, match="unknown backend 'jax'; known backends: numpy, numba, cupy"):
        refimpl.LongformerModel.from_pretrained(directory, backend="jax")
    reasons = refimpl.available_backends()
    assert reasons["numpy"] is None
    for name, why in reasons.items():
        if why is not None:  # here: cupy without a GPU
            with pytest.raises(ValueError, match=f"backend '{name}' is not available: .*Available here: numpy"):
                refimpl.LongformerModel.from_pretrained(directory, backend=name)

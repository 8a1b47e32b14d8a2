"""Parity with transformers' PyTorch Longformer on checkpoints that transformers itself saved.

Every output is compared: last_hidden_state, pooler_output, hidden_states, attentions, global_attentions, every
head's logits and loss. This is the ground truth the rest of the project leans on: a wrong mask, a wrong global
slot, a missing scale or a mis-tied weight shows up here.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import refimpl
from conftest import PROBS_ATOL, assert_close, qa_ids, random_inputs

CONFIGS = {
    # name: (config overrides, batch, length, padded rows {row: kept}, global counts {row: count})
    "per-layer windows, ragged padding and globals": ({}, 3, 21, {1: 15}, {0: 3, 1: 1}),
    "window wider than the input": ({"attention_window": 64}, 2, 10, {1: 6}, {0: 2}),
    "no global tokens": ({}, 2, 19, {0: 11}, {}),
    "every row global-heavy, length a multiple of the window": ({}, 2, 24, {}, {0: 5, 1: 7}),
    "one token": ({}, 1, 1, {}, {}),
    "long input, small window": ({"attention_window": 6, "max_position_embeddings": 260}, 1, 250, {}, {0: 4}),
}


def torch_run(model, **inputs):
    with torch.no_grad():
        return model(**{k: torch.as_tensor(v) for k, v in inputs.items() if v is not None},
                     output_attentions=True, output_hidden_states=True)


def compare_encoder_outputs(ours, ref, kind_global, n):
    """hidden_states, attentions and global_attentions of one run against transformers'."""
    for layer, (a, b) in enumerate(zip(ours.hidden_states, ref.hidden_states)):
        assert_close(a, b.numpy(), what=f"hidden_states[{layer}]")
    for layer, (a, b) in enumerate(zip(ours.attentions, ref.attentions)):
        assert_close(a, b.numpy(), atol=PROBS_ATOL, rtol=0, what=f"attentions[{layer}]")
    if ref.global_attentions is None:
        assert ours.global_attentions is None
        return
    n_global = kind_global.sum(axis=1)
    for layer, (a, b) in enumerate(zip(ours.global_attentions, ref.global_attentions)):
        b = b.numpy()[:, :, :n]  # transformers leaves these padded to a multiple of the window
        assert a.shape == b.shape
        for row, count in enumerate(n_global):
            assert_close(a[row, :, :, :count], b[row, :, :, :count], atol=PROBS_ATOL, rtol=0,
                         what=f"global_attentions[{layer}] row {row}")
            assert not a[row, :, :, count:].any(), "filler global slots must be 0"


@pytest.mark.parametrize("name", list(CONFIGS))
def test_longformer_model_equals_transformers(name, checkpoint_factory):
    overrides, batch, length, pad_rows, n_global = CONFIGS[name]
    directory, ref_model = checkpoint_factory("LongformerModel", **overrides)
    rng = np.random.default_rng(len(name))
    ids, mask, glob = random_inputs(rng, batch, length, pad_rows=pad_rows, n_global=n_global)
    ours = refimpl.LongformerModel.from_pretrained(directory)(
        ids, attention_mask=mask, global_attention_mask=glob, output_attentions=True, output_hidden_states=True)
    ref = torch_run(ref_model, input_ids=ids, attention_mask=mask, global_attention_mask=glob)
    assert_close(ours.last_hidden_state, ref.last_hidden_state.numpy(), what="last_hidden_state")
    assert_close(ours.pooler_output, ref.pooler_output.numpy(), what="pooler_output")
    compare_encoder_outputs(ours, ref, glob * mask, length)


def test_explicit_positions_token_types_and_mask_of_twos(checkpoint_factory):
    """position_ids and token_type_ids given by the caller, and global tokens marked by 2 in attention_mask."""
    directory, ref_model = checkpoint_factory("LongformerModel")
    rng = np.random.default_rng(7)
    ids, mask, glob = random_inputs(rng, 2, 17, pad_rows={0: 12}, n_global={0: 2, 1: 3})
    positions = rng.integers(0, 124, size=ids.shape)
    types = rng.integers(0, 2, size=ids.shape)
    merged = mask * (glob + 1)  # 0 pad, 1 local, 2 global
    ours = refimpl.LongformerModel.from_pretrained(directory)(
        ids, attention_mask=merged, token_type_ids=types, position_ids=positions,
        output_attentions=True, output_hidden_states=True)
    ref = torch_run(ref_model, input_ids=ids, attention_mask=merged, token_type_ids=types, position_ids=positions)
    assert_close(ours.last_hidden_state, ref.last_hidden_state.numpy(), what="last_hidden_state")
    compare_encoder_outputs(ours, ref, glob * mask, 17)


def test_masked_lm_head_and_loss(checkpoint_factory):
    directory, ref_model = checkpoint_factory("LongformerForMaskedLM")
    rng = np.random.default_rng(1)
    ids, mask, glob = random_inputs(rng, 2, 19, pad_rows={1: 13}, n_global={0: 1})
    labels = np.where(rng.random(ids.shape) < 0.3, ids, -100)
    labels[0, 0] = 5
    ours = refimpl.LongformerForMaskedLM.from_pretrained(directory)(
        ids, attention_mask=mask, global_attention_mask=glob, labels=labels,
        output_attentions=True, output_hidden_states=True)
    ref = torch_run(ref_model, input_ids=ids, attention_mask=mask, global_attention_mask=glob, labels=labels)
    assert_close(ours.logits, ref.logits.numpy(), what="logits")
    assert_close(ours.loss, ref.loss.numpy(), what="loss")
    compare_encoder_outputs(ours, ref, glob * mask, 19)


@pytest.mark.parametrize("labels_kind", ["single_label", "regression", "multi_label"])
def test_sequence_classification_head_default_global_and_losses(labels_kind, checkpoint_factory):
    """Default global attention on the first token; the loss transformers picks from num_labels and label dtype."""
    num_labels = 1 if labels_kind == "regression" else 3
    directory, ref_model = checkpoint_factory("LongformerForSequenceClassification", num_labels=num_labels)
    rng = np.random.default_rng(2)
    ids, mask, _ = random_inputs(rng, 3, 18, pad_rows={2: 9})
    labels = {"single_label": rng.integers(0, 3, 3),
              "regression": rng.standard_normal(3).astype(np.float32),
              "multi_label": (rng.random((3, 3)) < 0.5).astype(np.float32)}[labels_kind]
    ours = refimpl.LongformerForSequenceClassification.from_pretrained(directory)(
        ids, attention_mask=mask, labels=labels, output_attentions=True, output_hidden_states=True)
    ref_model.config.problem_type = None  # transformers caches its first guess on the (shared) model's config
    ref = torch_run(ref_model, input_ids=ids, attention_mask=mask, labels=labels)
    assert_close(ours.logits, ref.logits.numpy(), what="logits")
    assert_close(ours.loss, ref.loss.numpy(), what="loss")
    first = np.zeros_like(ids)
    first[:, 0] = 1
    compare_encoder_outputs(ours, ref, first * mask, 18)


def test_token_classification_head_and_loss(checkpoint_factory):
    directory, ref_model = checkpoint_factory("LongformerForTokenClassification", num_labels=4)
    rng = np.random.default_rng(3)
    ids, mask, glob = random_inputs(rng, 2, 14, pad_rows={0: 10}, n_global={1: 2})
    labels = np.where(mask == 1, rng.integers(0, 4, ids.shape), -100)
    ours = refimpl.LongformerForTokenClassification.from_pretrained(directory)(
        ids, attention_mask=mask, global_attention_mask=glob, labels=labels, output_hidden_states=True,
        output_attentions=True)
    ref = torch_run(ref_model, input_ids=ids, attention_mask=mask, global_attention_mask=glob, labels=labels)
    assert_close(ours.logits, ref.logits.numpy(), what="logits")
    assert_close(ours.loss, ref.loss.numpy(), what="loss")
    compare_encoder_outputs(ours, ref, glob * mask, 14)


def test_question_answering_head_default_global_and_loss(checkpoint_factory):
    """Default global attention on the question (everything before the first </s>); positions past the input
    are clamped and ignored in the loss."""
    directory, ref_model = checkpoint_factory("LongformerForQuestionAnswering", num_labels=2)
    rng = np.random.default_rng(4)
    ids = qa_ids(rng, 2, question=4, context=13)
    start, end = np.array([7, 30]), np.array([9, 12])  # 30 lies outside the 21 tokens: ignored
    ours = refimpl.LongformerForQuestionAnswering.from_pretrained(directory)(
        ids, start_positions=start, end_positions=end, output_attentions=True, output_hidden_states=True)
    ref = torch_run(ref_model, input_ids=ids, start_positions=start, end_positions=end)
    assert_close(ours.start_logits, ref.start_logits.numpy(), what="start_logits")
    assert_close(ours.end_logits, ref.end_logits.numpy(), what="end_logits")
    assert_close(ours.loss, ref.loss.numpy(), what="loss")
    question = (np.arange(ids.shape[1]) < 5)[None].repeat(2, 0).astype(int)
    compare_encoder_outputs(ours, ref, question, ids.shape[1])


def test_multiple_choice_head_default_global_and_loss(checkpoint_factory):
    """(B, K, N) inputs; default global attention on each choice's tokens after the first </s></s>."""
    directory, ref_model = checkpoint_factory("LongformerForMultipleChoice")
    rng = np.random.default_rng(5)
    ids = qa_ids(rng, 6, question=3, context=6).reshape(2, 3, -1)
    labels = np.array([2, 0])
    ours = refimpl.LongformerForMultipleChoice.from_pretrained(directory)(
        ids, labels=labels, output_attentions=True, output_hidden_states=True)
    ref = torch_run(ref_model, input_ids=ids, labels=labels)
    assert ours.logits.shape == (2, 3)
    assert_close(ours.logits, ref.logits.numpy(), what="logits")
    assert_close(ours.loss, ref.loss.numpy(), what="loss")
    n = ids.shape[-1]
    after = (np.arange(n) > 5)[None].repeat(6, 0).astype(int)
    compare_encoder_outputs(ours, ref, after, n)


def test_save_pretrained_round_trips_through_transformers(checkpoint_factory, tmp_path):
    """Our save_pretrained writes what transformers loads back to the same numbers (the converter relies on it)."""
    import transformers

    directory, ref_model = checkpoint_factory("LongformerForMaskedLM")
    refimpl.LongformerForMaskedLM.from_pretrained(directory).save_pretrained(tmp_path)
    again = transformers.LongformerForMaskedLM.from_pretrained(tmp_path).eval()
    ids = np.random.default_rng(6).integers(3, 97, (1, 12))
    with torch.no_grad():
        assert_close(again(torch.as_tensor(ids)).logits.numpy(), ref_model(torch.as_tensor(ids)).logits.numpy())


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("hidden_act", ["gelu", "relu", "gelu_new", "gelu_pytorch_tanh", "silu", "swish", "tanh"])
def test_every_activation_equals_transformers(hidden_act, backend, checkpoint_factory):
    """Would catch: an activation that drops the intermediate dense's bias (the model hands it to the activation,
    which adds it in its own pass) or writes its result somewhere other than the FFN's product. The checkpoint's
    biases are random (tests/conftest.py)."""
    from refimpl.ops import SUPPORTED_ACTIVATIONS

    assert hidden_act in SUPPORTED_ACTIVATIONS
    if backend == "numba":
        pytest.importorskip("numba")
    directory, ref_model = checkpoint_factory("LongformerModel", hidden_act=hidden_act)
    rng = np.random.default_rng(7)
    ids, mask, glob = random_inputs(rng, 2, 21, pad_rows={1: 15}, n_global={0: 2})
    ours = refimpl.LongformerModel.from_pretrained(directory, backend=backend)(
        ids, attention_mask=mask, global_attention_mask=glob)
    ref = torch_run(ref_model, input_ids=ids, attention_mask=mask, global_attention_mask=glob)
    assert_close(ours.last_hidden_state, ref.last_hidden_state.numpy(), what=f"{hidden_act} on {backend}")


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_chunked_feed_forward_equals_transformers(backend, checkpoint_factory):
    """transformers' chunk_size_feed_forward is read from config.json and used: the FFN runs 4 tokens at a time
    (the input is padded to 24, a multiple of the windows, so transformers accepts the chunk size)."""
    if backend == "numba":
        pytest.importorskip("numba")
    directory, ref_model = checkpoint_factory("LongformerModel", chunk_size_feed_forward=4)
    rng = np.random.default_rng(11)
    ids, mask, glob = random_inputs(rng, 2, 21, pad_rows={1: 15}, n_global={0: 2})
    model = refimpl.LongformerModel.from_pretrained(directory, backend=backend)
    assert model.config.chunk_size_feed_forward == 4
    ours = model(ids, attention_mask=mask, global_attention_mask=glob)
    ref = torch_run(ref_model, input_ids=ids, attention_mask=mask, global_attention_mask=glob)
    assert_close(ours.last_hidden_state, ref.last_hidden_state.numpy(), what=f"chunked FFN on {backend}")


@pytest.mark.parametrize("chunk", [1, 5, 7, 1000])
def test_any_feed_forward_chunk_gives_the_same_numbers(chunk, checkpoint_factory):
    """Blocks that do not divide the length (the last one shorter), one token at a time, and blocks longer than
    the input all give the unchunked result."""
    directory, ref_model = checkpoint_factory("LongformerModel")
    rng = np.random.default_rng(12)
    ids, mask, glob = random_inputs(rng, 2, 21, pad_rows={1: 15}, n_global={0: 2})
    whole = refimpl.LongformerModel.from_pretrained(directory)
    chunked = refimpl.LongformerModel.from_pretrained(directory, chunk_size_feed_forward=chunk)
    assert chunked.config.chunk_size_feed_forward == chunk
    a = whole(ids, attention_mask=mask, global_attention_mask=glob).last_hidden_state
    b = chunked(ids, attention_mask=mask, global_attention_mask=glob).last_hidden_state
    np.testing.assert_allclose(b, a, atol=1e-6, rtol=1e-6)

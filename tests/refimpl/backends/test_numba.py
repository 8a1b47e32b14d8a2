"""The numba backend (refimpl/backends/numba.py) against the NumPy reference, and once against transformers.

Both are float32 with the same algorithm in different summation orders, so they must agree far closer than either
agrees with transformers: context and hidden states, logits and losses within 1e-5 absolute, probabilities within
1e-6 absolute. A wrong band offset, a lost global column, a padding key that leaks into the softmax, a row group at
the end of the sequence, or a head size that is not a multiple of 4 shows up here as an error far above that.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

import refimpl
from conftest import (BACKEND_ATOL as ATOL, BACKEND_PROBS_ATOL as PROBS_ATOL, BACKEND_PROBS_RTOL as PROBS_RTOL,
                      assert_close, qa_ids, random_inputs)
from refimpl.attention import GLOBAL, LOCAL, PADDING, global_slots, sliding_window_attention

REASON = refimpl.available_backends()["numba"]
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"numba backend: {REASON}")

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def numba_backend():
    return refimpl.get_backend("numba")


def attention_inputs(rng, B, H, N, D, kind):
    """q (scaled, as the model passes it), k, v (B, H, N, D) float32, and the kind arrays of the contract."""
    q, k, v = (rng.standard_normal((B, H, N, D), dtype=np.float32) for _ in range(3))
    q *= np.float32(1 / math.sqrt(D))
    kind = np.asarray(kind, np.int8)
    global_index, n_global = global_slots(kind)
    return q, k, v, kind, global_index, n_global


def kinds(rng, B, N, pad=(), n_global=()):
    """(B, N) kinds: row -> number of trailing padding tokens, row -> number of global tokens among the rest."""
    kind = np.full((B, N), LOCAL, np.int8)
    for row, count in dict(pad).items():
        kind[row, N - count:] = PADDING
    for row, count in dict(n_global).items():
        kind[row, rng.choice(np.flatnonzero(kind[row] == LOCAL), size=count, replace=False)] = GLOBAL
    return kind


KERNEL_CASES = {
    # name: (B, H, N, D, W, trailing padding {row: count}, global tokens {row: count})
    "one query": (1, 1, 1, 8, 1, {}, {}),
    "window wider than the input": (2, 2, 7, 16, 9, {1: 3}, {0: 1}),
    "length not a multiple of the row group (12)": (1, 3, 37, 8, 3, {}, {}),
    "head size not a multiple of 4": (2, 2, 29, 7, 4, {0: 5}, {1: 2}),
    "head size 1": (1, 2, 13, 1, 2, {}, {0: 1}),
    "ragged padding and globals": (3, 2, 50, 16, 5, {1: 20, 2: 49}, {0: 3, 1: 1}),
    "a row of padding only": (2, 1, 20, 8, 3, {1: 20}, {0: 2}),
    "every token global": (1, 2, 9, 8, 2, {}, {0: 9}),
    "model head size, padding in the last block": (1, 2, 600, 64, 16, {0: 17}, {0: 2}),
    "odd window, blocks of 2W + 2 queries": (2, 1, 700, 8, 129, {1: 40}, {0: 1, 1: 2}),
    # the register tiles (_tile_product, groups of R = 12 queries): pass 1 over whole tiles of 32 keys, the rest in
    # tiles of 16; pass 3 over tiles of 32 head dims when D % 32 == 0, else loops
    "tiles: exactly two tiles of keys (2W + R = 64)": (1, 2, 200, 64, 26, {0: 9}, {0: 1}),
    "tiles: two tiles and 2 keys more": (2, 1, 333, 64, 27, {1: 50}, {0: 2}),
    "tiles: two tiles and one tile of 16": (1, 2, 150, 64, 34, {}, {0: 1}),
    "tiles: head size 48, pass 3 in loops": (1, 2, 120, 48, 20, {0: 5}, {0: 1}),
    "tiles: longformer-base window, globals and padding": (2, 2, 1100, 64, 256, {1: 300}, {0: 2, 1: 1}),
    "tiles: head size 128, four column tiles in pass 3": (1, 2, 400, 128, 50, {0: 7}, {0: 1}),
    "tiles: input shorter than a tile": (1, 2, 40, 64, 64, {}, {0: 1}),
}


@pytest.mark.parametrize("name", list(KERNEL_CASES))
def test_attention_equals_reference(name, numba_backend):
    B, H, N, D, W, pad, n_global = KERNEL_CASES[name]
    rng = np.random.default_rng(len(name))
    inputs = attention_inputs(rng, B, H, N, D, kinds(rng, B, N, pad, n_global))
    ref_context, ref_probs = sliding_window_attention(*inputs, W, True)
    context, probs = numba_backend.sliding_window_attention(*inputs, W, True)
    assert context.dtype == probs.dtype == np.float32
    assert_close(context, ref_context, atol=ATOL, rtol=0, what="context")
    assert_close(probs, ref_probs, atol=PROBS_ATOL, rtol=PROBS_RTOL, what="probs")
    # what must be exactly 0: rows of padding and global queries, and every masked column
    assert not context[np.broadcast_to((inputs[3] != LOCAL)[:, None], (B, H, N))].any()
    assert np.array_equal(probs == 0, ref_probs == 0), "masked columns must be exactly 0, as in the reference"


def test_probabilities_only_when_asked_and_context_unchanged(numba_backend):
    rng = np.random.default_rng(11)
    inputs = attention_inputs(rng, 2, 3, 45, 16, kinds(rng, 2, 45, {1: 9}, {0: 2, 1: 1}))
    with_probs, probs = numba_backend.sliding_window_attention(*inputs, 6, True)
    without, none = numba_backend.sliding_window_attention(*inputs, 6, False)
    assert none is None
    assert probs.shape == (2, 3, 45, 2 + 2 * 6 + 1)
    np.testing.assert_array_equal(without, with_probs)


def test_rejects_what_the_contract_excludes(numba_backend):
    rng = np.random.default_rng(12)
    q, k, v, kind, global_index, n_global = attention_inputs(rng, 1, 1, 10, 4, kinds(rng, 1, 10))
    with pytest.raises(TypeError, match="q must be float32"):
        numba_backend.sliding_window_attention(q.astype(np.float64), k, v, kind, global_index, n_global, 2, False)
    with pytest.raises(ValueError, match="share one shape"):
        numba_backend.sliding_window_attention(q[:, :, :5], k, v, kind, global_index, n_global, 2, False)
    with pytest.raises(ValueError, match="window must be >= 1"):
        numba_backend.sliding_window_attention(q, k, v, kind, global_index, n_global, 0, False)
    # a non-contiguous view is fine (copied), and gives the same numbers
    context, _ = numba_backend.sliding_window_attention(q, k, v, kind, global_index, n_global, 2, False)
    q_view = np.ascontiguousarray(q.swapaxes(2, 3)).swapaxes(2, 3)
    again, _ = numba_backend.sliding_window_attention(q_view, k, v, kind, global_index, n_global, 2, False)
    np.testing.assert_array_equal(again, context)


def test_gelu_and_layer_norm_equal_reference(numba_backend):
    from refimpl.ops import gelu, layer_norm

    rng = np.random.default_rng(13)
    x = rng.standard_normal((3, 17, 40), dtype=np.float32) * 4  # beyond the erf clamp at |x / sqrt 2| = 4
    residual = rng.standard_normal(x.shape, dtype=np.float32)
    bias, weight = rng.standard_normal(40, dtype=np.float32), rng.standard_normal(40, dtype=np.float32)
    assert_close(numba_backend.gelu(x), gelu(x), atol=ATOL, rtol=0, what="gelu")
    assert_close(numba_backend.bias_gelu(x, bias), gelu(x + bias), atol=ATOL, rtol=0, what="bias_gelu")
    in_place = x.copy()
    numba_backend.bias_gelu(in_place, bias, out=in_place)
    assert_close(in_place, gelu(x + bias), atol=ATOL, rtol=0, what="bias_gelu in place")
    for bad in (np.empty((3, 17), np.float32), np.empty(x.shape, np.float64), np.empty(x.shape[::-1], np.float32).T):
        with pytest.raises(ValueError, match="out must be a writeable C-contiguous float32 array of shape"):
            numba_backend.gelu(x, out=bad)
    assert_close(numba_backend.layer_norm(x, weight, bias, 1e-5), layer_norm(x, weight, bias, 1e-5),
                 atol=ATOL, rtol=0, what="layer_norm")
    assert_close(numba_backend.residual_layer_norm(x, residual, weight, bias, 1e-5),
                 layer_norm(x + residual, weight, bias, 1e-5), atol=ATOL, rtol=0, what="residual_layer_norm")
    assert_close(numba_backend.residual_layer_norm(x, residual, weight, bias, 1e-5, x_bias=weight),
                 layer_norm(x + weight + residual, weight, bias, 1e-5), atol=ATOL, rtol=0,
                 what="residual_layer_norm with x_bias")
    # the kernel checks no bounds: every vector's length, and the residual's shape, are checked before it runs
    with pytest.raises(ValueError, match=r"residual must have the shape of x \(3, 17, 40\), got \(3, 16, 40\)"):
        numba_backend.residual_layer_norm(x, residual[:, 1:], weight, bias, 1e-5)
    for name, args in (("weight", (weight[:39], bias)), ("bias", (weight, bias[:2]))):
        with pytest.raises(ValueError, match=rf"{name} must have shape \(40,\) \(x's last axis\), got \("):
            numba_backend.residual_layer_norm(x, residual, *args, 1e-5)
        with pytest.raises(ValueError, match=rf"{name} must have shape \(40,\)"):
            numba_backend.layer_norm(x, *args, 1e-5)
    with pytest.raises(ValueError, match=r"x_bias must have shape \(40,\) \(x's last axis\), got \(41,\)"):
        numba_backend.residual_layer_norm(x, residual, weight, bias, 1e-5, x_bias=np.ones(41, np.float32))


def test_exp_polynomial_is_within_two_ulp():
    """The vectorizable exp of pass 2 against float64 exp, over the range a softmax feeds it (x <= 0)."""
    import numba

    from refimpl.backends.numba import _exp

    @numba.njit
    def exp_all(x):
        out = np.empty_like(x)
        for i in range(x.size):
            out[i] = _exp(x[i])
        return out

    x = -np.concatenate([np.linspace(0, 87, 200_001), np.logspace(-8, 0, 1001)]).astype(np.float32)
    exact = np.exp(x.astype(np.float64))
    assert np.max(np.abs(exp_all(x) - exact) / exact) < 2.4e-7


def test_vector_exp_of_pass_2_is_within_two_ulp_and_sums_its_results():
    """_exp_row, pass 2's exponentials 16 at a time (LLVM vector code): row - top over the same range, in place,
    returning their sum; the values and the sum against float64."""
    import numba

    from refimpl.backends.numba import _exp_row

    @numba.njit
    def exp_row(x, top):
        return _exp_row(x.ctypes.data, x.shape[0], top)

    top = np.float32(3.5)
    x = (top - np.concatenate([np.linspace(0, 87, 200_000), np.logspace(-8, 0, 992)])).astype(np.float32)
    assert x.size % 16 == 0
    exact = np.exp((x - top).astype(np.float64))  # of the float32 difference, which the kernel computes too
    row = x.copy()
    total = exp_row(row, top)
    assert np.max(np.abs(row - exact) / exact) < 2.4e-7
    assert abs(total - exact.sum()) / exact.sum() < 1e-5
    assert exp_row(row[:0], top) == 0  # an empty row: nothing read or written


# ---------------------------------------------------------------------------------------------------------------
# Whole models: every head, every output
# ---------------------------------------------------------------------------------------------------------------

def run_both(class_name, directory, **inputs):
    """The same checkpoint and inputs on the numpy and the numba backend, with every output."""
    cls = getattr(refimpl, class_name)
    return [cls.from_pretrained(directory, backend=name)(**inputs, output_attentions=True, output_hidden_states=True)
            for name in ("numpy", "numba")]


def compare_outputs(ours, ref, fields):
    for field in fields:
        assert_close(getattr(ours, field), getattr(ref, field), atol=ATOL, rtol=0, what=field)
    for layer, (a, b) in enumerate(zip(ours.hidden_states, ref.hidden_states, strict=True)):
        assert_close(a, b, atol=ATOL, rtol=0, what=f"hidden_states[{layer}]")
    for layer, (a, b) in enumerate(zip(ours.attentions, ref.attentions, strict=True)):
        assert_close(a, b, atol=PROBS_ATOL, rtol=PROBS_RTOL, what=f"attentions[{layer}]")
    assert (ours.global_attentions is None) == (ref.global_attentions is None)
    for layer, (a, b) in enumerate(zip(ours.global_attentions or (), ref.global_attentions or (), strict=True)):
        assert_close(a, b, atol=PROBS_ATOL, rtol=PROBS_RTOL, what=f"global_attentions[{layer}]")


MODEL_CONFIGS = {
    # name: (config overrides, batch, length, padded rows {row: kept}, global counts {row: count})
    "per-layer windows, ragged padding and globals": ({}, 3, 21, {1: 15}, {0: 3, 1: 1}),
    "window wider than the input": ({"attention_window": 64}, 2, 10, {1: 6}, {0: 2}),
    "no global tokens": ({}, 2, 19, {0: 11}, {}),
    "one token": ({}, 1, 1, {}, {}),
    "long input, small window": ({"attention_window": 6, "max_position_embeddings": 260}, 1, 250, {}, {0: 4}),
}


@pytest.mark.parametrize("name", list(MODEL_CONFIGS))
def test_longformer_model_equals_reference(name, checkpoint_factory):
    overrides, batch, length, pad_rows, n_global = MODEL_CONFIGS[name]
    directory, _ = checkpoint_factory("LongformerModel", **overrides)
    ids, mask, glob = random_inputs(np.random.default_rng(len(name)), batch, length, pad_rows=pad_rows,
                                    n_global=n_global)
    ours, ref = run_both("LongformerModel", directory, input_ids=ids, attention_mask=mask,
                         global_attention_mask=glob)
    compare_outputs(ours, ref, ["last_hidden_state", "pooler_output"])


def test_masked_lm_equals_reference(checkpoint_factory):
    directory, _ = checkpoint_factory("LongformerForMaskedLM")
    rng = np.random.default_rng(1)
    ids, mask, glob = random_inputs(rng, 2, 19, pad_rows={1: 13}, n_global={0: 1})
    labels = np.where(rng.random(ids.shape) < 0.3, ids, -100)
    labels[0, 0] = 5
    ours, ref = run_both("LongformerForMaskedLM", directory, input_ids=ids, attention_mask=mask,
                         global_attention_mask=glob, labels=labels)
    compare_outputs(ours, ref, ["logits", "loss"])


def test_sequence_classification_equals_reference(checkpoint_factory):
    """Default global attention on the first token."""
    directory, _ = checkpoint_factory("LongformerForSequenceClassification", num_labels=3)
    rng = np.random.default_rng(2)
    ids, mask, _ = random_inputs(rng, 3, 18, pad_rows={2: 9})
    ours, ref = run_both("LongformerForSequenceClassification", directory, input_ids=ids, attention_mask=mask,
                         labels=rng.integers(0, 3, 3))
    compare_outputs(ours, ref, ["logits", "loss"])


def test_token_classification_equals_reference(checkpoint_factory):
    directory, _ = checkpoint_factory("LongformerForTokenClassification", num_labels=4)
    rng = np.random.default_rng(3)
    ids, mask, glob = random_inputs(rng, 2, 14, pad_rows={0: 10}, n_global={1: 2})
    labels = np.where(mask == 1, rng.integers(0, 4, ids.shape), -100)
    ours, ref = run_both("LongformerForTokenClassification", directory, input_ids=ids, attention_mask=mask,
                         global_attention_mask=glob, labels=labels)
    compare_outputs(ours, ref, ["logits", "loss"])


def test_question_answering_equals_reference(checkpoint_factory):
    """Default global attention on the question: the ids hold exactly three separators per row."""
    directory, _ = checkpoint_factory("LongformerForQuestionAnswering", num_labels=2)
    ids = qa_ids(np.random.default_rng(4), 2, question=4, context=13)
    ours, ref = run_both("LongformerForQuestionAnswering", directory, input_ids=ids,
                         start_positions=np.array([7, 3]), end_positions=np.array([9, 12]))
    compare_outputs(ours, ref, ["start_logits", "end_logits", "loss"])


def test_multiple_choice_equals_reference(checkpoint_factory):
    """(B, K, N) inputs; default global attention on each choice's tokens after the first </s></s>."""
    directory, _ = checkpoint_factory("LongformerForMultipleChoice")
    ids = qa_ids(np.random.default_rng(5), 6, question=3, context=6).reshape(2, 3, -1)
    ours, ref = run_both("LongformerForMultipleChoice", directory, input_ids=ids, labels=np.array([2, 0]))
    assert ours.logits.shape == (2, 3)
    compare_outputs(ours, ref, ["logits", "loss"])


def test_equals_transformers(checkpoint_factory):
    """The ground truth directly: the numba backend against transformers' PyTorch Longformer, every output."""
    import torch

    from conftest import PROBS_ATOL as TRANSFORMERS_PROBS_ATOL

    directory, ref_model = checkpoint_factory("LongformerModel")
    ids, mask, glob = random_inputs(np.random.default_rng(8), 3, 21, pad_rows={1: 15}, n_global={0: 3, 1: 1})
    ours = refimpl.LongformerModel.from_pretrained(directory, backend="numba")(
        ids, attention_mask=mask, global_attention_mask=glob, output_attentions=True, output_hidden_states=True)
    with torch.no_grad():
        ref = ref_model(input_ids=torch.as_tensor(ids), attention_mask=torch.as_tensor(mask),
                        global_attention_mask=torch.as_tensor(glob), output_attentions=True,
                        output_hidden_states=True)
    assert_close(ours.last_hidden_state, ref.last_hidden_state.numpy(), what="last_hidden_state")
    assert_close(ours.pooler_output, ref.pooler_output.numpy(), what="pooler_output")
    for layer, (a, b) in enumerate(zip(ours.hidden_states, ref.hidden_states, strict=True)):
        assert_close(a, b.numpy(), what=f"hidden_states[{layer}]")
    for layer, (a, b) in enumerate(zip(ours.attentions, ref.attentions, strict=True)):
        assert_close(a, b.numpy(), atol=TRANSFORMERS_PROBS_ATOL, rtol=0, what=f"attentions[{layer}]")
    n_global = (glob * mask).sum(axis=1)
    for layer, (a, b) in enumerate(zip(ours.global_attentions, ref.global_attentions, strict=True)):
        b = b.numpy()[:, :, :21]  # transformers leaves these padded to a multiple of the window
        for row, count in enumerate(n_global):
            assert_close(a[row, :, :, :count], b[row, :, :, :count], atol=TRANSFORMERS_PROBS_ATOL, rtol=0,
                         what=f"global_attentions[{layer}] row {row}")


def test_feed_forward_blocks_keep_the_block_bounded_and_equal_transformers(checkpoint_factory, monkeypatch):
    """The backend's FFN blocks (NumbaBackend.feed_forward_rows), made small here so that a 21-token input runs in
    uneven blocks: every (rows, F) block within FFN_BLOCK_BYTES, the outputs those of transformers."""
    import torch

    from refimpl.backends import numba as numba_backend

    assert numba_backend.NumbaBackend().feed_forward_rows(4096, 3072) == 2048  # 2 blocks of 24 MiB, not 1 of 48
    assert numba_backend.NumbaBackend().feed_forward_rows(100, 3072) is None  # small: all at once
    directory, ref_model = checkpoint_factory("LongformerModel")
    F = ref_model.config.intermediate_size
    monkeypatch.setattr(numba_backend, "FFN_BLOCK_BYTES", 8 * F * 4)  # at most 8 rows: 21 tokens in 3 blocks of 7
    model = refimpl.LongformerModel.from_pretrained(directory, backend="numba")
    blocks, outs = [], []
    product = model.layers[0].intermediate.product
    model.layers[0].intermediate.product = lambda x, out=None: blocks.append(x.shape) or outs.append(out) or product(
        x, out)
    ids, mask, glob = random_inputs(np.random.default_rng(9), 2, 21, pad_rows={1: 15}, n_global={0: 2})
    ours = model(ids, attention_mask=mask, global_attention_mask=glob)
    assert blocks and all(rows * F * 4 <= numba_backend.FFN_BLOCK_BYTES for _, rows, _ in blocks), blocks
    assert [rows for _, rows, _ in blocks] == [7, 7, 7]
    # the blocks are written into one buffer made once for the layer (no new (B, rows, F) array a block)
    assert all(out is not None and out.flags.c_contiguous and np.shares_memory(out, outs[0]) for out in outs)
    with torch.no_grad():
        ref = ref_model(input_ids=torch.as_tensor(ids), attention_mask=torch.as_tensor(mask),
                        global_attention_mask=torch.as_tensor(glob))
    assert_close(ours.last_hidden_state, ref.last_hidden_state.numpy(), what="last_hidden_state in FFN blocks")


def test_projections_by_blocks_of_rows_equal_the_reference(monkeypatch):
    """NumbaBackend.project takes the product a block of rows at a time when (B, N, C) is above FFN_BLOCK_BYTES
    (made small here: 2 x 23 tokens x 48 features in blocks of 8, 8 and 7 rows): every block's bias and split land
    in their own rows of the heads with its scale, equal to the reference's stacked product."""
    from refimpl.attention import project
    from refimpl.backends import numba as numba_backend

    B, N, C, H = 2, 23, 48, 4
    rng = np.random.default_rng(11)
    x = rng.standard_normal((B, N, C), dtype=np.float32)
    weight_bias = (rng.standard_normal((3 * C, C), dtype=np.float32), rng.standard_normal(3 * C, dtype=np.float32))
    monkeypatch.setattr(numba_backend, "FFN_BLOCK_BYTES", 8 * B * C * 4)  # 8 rows of the (B, rows, C) block
    assert numba_backend._block_rows(N, B * C * 4) == 8
    products = []
    real_matmul = np.matmul
    monkeypatch.setattr(numba_backend.np, "matmul", lambda a, b, out: products.append(a.shape) or real_matmul(
        a, b, out=out))
    got = numba_backend.NumbaBackend().project(x, weight_bias, 3, H, scales=(0.125, 1, 0.5))
    monkeypatch.setattr(numba_backend.np, "matmul", real_matmul)
    assert [rows for _, rows, _ in products] == [8, 8, 7] * 3
    want = project(x, weight_bias, 3, H, np)
    want[0] *= np.float32(0.125)
    want[2] *= np.float32(0.5)
    for name, a, b in zip("qkv", got, want, strict=True):
        assert a.shape == (B, H, N, C // H) and a.flags.c_contiguous
        assert_close(a, b, atol=ATOL, rtol=0, what=f"{name} by blocks")


def test_large_arrays_are_reused_only_once_nobody_holds_them(monkeypatch):
    """With every size in REUSE_BYTES (patched: these arrays are small), the backend's next call gets the memory of
    its last context and heads back only after the caller let them go: a context still held is never written over,
    and another thread gets arrays of its own. The numbers are those of fresh arrays."""
    from refimpl.attention import global_slots
    from refimpl.backends import numba as numba_backend

    monkeypatch.setattr(numba_backend, "REUSE_BYTES", (0, 1 << 30))
    rng = np.random.default_rng(5)
    B, H, N, D, C = 1, 2, 40, 32, 64
    x = rng.standard_normal((B, N, C), dtype=np.float32)
    weight_bias = (rng.standard_normal((3 * C, C), dtype=np.float32), rng.standard_normal(3 * C, dtype=np.float32))
    kind = np.ones((B, N), np.int8)
    kind[0, 7] = 2
    global_index, n_global = global_slots(kind)
    backend = numba_backend.NumbaBackend()

    def attend():
        q, k, v = backend.project(x, weight_bias, 3, H, scales=(0.25, 1, 1))
        return backend.sliding_window_attention(q, k, v, kind, global_index, n_global, 6, False)[0]

    first = attend()
    kept = first.copy()
    second = attend()  # `first` is still held: new memory
    assert not np.shares_memory(first, second)
    np.testing.assert_array_equal(first, kept)
    np.testing.assert_array_equal(second, kept)
    base = id(second.base)  # its id: a reference would hold it
    del first, second
    third = attend()  # nobody holds the last context: its memory again, with the same numbers
    assert id(third.base) == base
    np.testing.assert_array_equal(third, kept)
    heads = backend.project(x, weight_bias, 3, H)
    again = backend.project(x, weight_bias, 3, H)  # the first heads are held: none of their memory is reused
    assert not any(np.shares_memory(a, b) for a in heads for b in again)
    other = []
    thread = threading.Thread(target=lambda: other.append(attend()))
    thread.start()
    thread.join()
    assert not np.shares_memory(other[0], third)
    np.testing.assert_array_equal(other[0], kept)


# ---------------------------------------------------------------------------------------------------------------
# Compilation cache and threads, each in a fresh process
# ---------------------------------------------------------------------------------------------------------------

SMOKE = textwrap.dedent("""
    import warnings
    warnings.simplefilter("always")
    import numpy as np
    from refimpl.attention import global_slots, sliding_window_attention
    from refimpl.backends.numba import NumbaBackend
    import numba
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((1, 2, 30, 8), dtype=np.float32) for _ in range(3))
    kind = np.ones((1, 30), np.int8)
    kind[0, 3] = 2
    gi, ng = global_slots(kind)
    context, _ = NumbaBackend().sliding_window_attention(q, k, v, kind, gi, ng, 4, False)
    reference, _ = sliding_window_attention(q, k, v, kind, gi, ng, 4)
    assert np.abs(context - reference).max() < 1e-5
    print("ok threads", numba.get_num_threads())
""")


def run_smoke(env, cwd):
    return subprocess.run([sys.executable, "-c", SMOKE], env={**os.environ, **env}, cwd=cwd, capture_output=True,
                          text=True, timeout=600)


@pytest.mark.slow
def test_no_writable_cache_folder_compiles_without_cache(tmp_path):
    """Where neither NUMBA_CACHE_DIR, nor the package folder, nor the home folder can be written, the kernels
    compile in the process with a warning instead of failing at import. Checked on a copy of the package whose
    __pycache__ is a file (so it holds for root too, who may write into read-only folders)."""
    shutil.copytree(REPO / "refimpl", tmp_path / "refimpl", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "refimpl" / "backends" / "__pycache__").write_text("not a folder")
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, so nothing can be created below it")
    result = run_smoke({"NUMBA_CACHE_DIR": str(blocker / "cache"), "HOME": str(blocker / "home"),
                        "XDG_CACHE_HOME": str(blocker / "xdg"), "PYTHONPATH": str(tmp_path)}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout
    assert "compiles in every process instead" in result.stderr


BOUNDS = textwrap.dedent("""
    import numpy as np
    from test_numba import KERNEL_CASES, attention_inputs, kinds
    from refimpl.backends.numba import NumbaBackend
    backend = NumbaBackend()
    for name, (B, H, N, D, W, pad, n_global) in KERNEL_CASES.items():
        rng = np.random.default_rng(len(name))
        inputs = attention_inputs(rng, B, H, N, D, kinds(rng, B, N, pad, n_global))
        for output_attentions in (False, True):
            backend.sliding_window_attention(*inputs, W, output_attentions)
    print("ok")
""")


@pytest.mark.slow
def test_kernels_index_inside_their_arrays(tmp_path):
    """Every kernel case again with Numba's bounds checking on (it is off in normal runs, where a read past the end
    of a buffer returns whatever lies there and usually goes unnoticed): an IndexError fails the test."""
    env = {"NUMBA_BOUNDSCHECK": "1", "NUMBA_CACHE_DIR": str(tmp_path / "cache"),
           "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests"), str(Path(__file__).parent)])}
    result = subprocess.run([sys.executable, "-c", BOUNDS], env={**os.environ, **env}, cwd=tmp_path,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ok" in result.stdout


@pytest.mark.slow
def test_thread_count_follows_numba_num_threads(tmp_path):
    result = run_smoke({"NUMBA_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "ok threads 1" in result.stdout


@pytest.mark.parametrize("G", [1, 5, 20])  # G*H < C (folded into the queries) for 1 and 5; 20*4 >= 64 falls back
def test_global_attention_folded_projections_equal_the_reference(G, numba_backend):
    """Would catch: a wrong head slice of key_global/value_global, or a lost bias term, in the folded pass 4."""
    from refimpl.attention import global_attention

    rng = np.random.default_rng(G)
    B, H, N, C = 2, 4, 45, 64
    q_g = rng.standard_normal((B, H, G, C // H)).astype(np.float32)
    hidden = rng.standard_normal((B, N, C)).astype(np.float32)
    kv_global = (rng.standard_normal((2 * C, C)).astype(np.float32) / 8, rng.standard_normal(2 * C).astype(np.float32))
    kind = np.ones((B, N), np.int8)
    kind[1, 30:] = 0
    slot_used = np.arange(G)[None, :] < np.array([[G], [max(G - 1, 1)]])
    expected = global_attention(q_g, hidden, kv_global, kind, slot_used)
    actual = numba_backend.global_attention(q_g, hidden, kv_global, kind, slot_used)
    assert_close(actual[0], expected[0], atol=ATOL, rtol=1e-5, what="context")
    assert_close(actual[1], expected[1], atol=PROBS_ATOL, rtol=PROBS_RTOL, what="probs")


OPENBLAS_PROBE = textwrap.dedent("""
    from refimpl.backends import get_backend
    from refimpl.backends.numba import openblas_thread_timeouts
    backend = get_backend("numba")
    for path, timeout in openblas_thread_timeouts():
        print("thread_timeout", timeout.value)
    print(backend.openblas)
""")


def openblas_is_pthreads() -> bool:
    threadpoolctl = pytest.importorskip("threadpoolctl")
    return any(lib.get("internal_api") == "openblas" and lib.get("threading_layer") == "pthreads"
               for lib in threadpoolctl.threadpool_info())


@pytest.mark.slow
@pytest.mark.parametrize("user_value", [None, "6"])
def test_backend_puts_openblas_idle_threads_to_sleep(user_value, tmp_path):
    """Would catch: NumPy's OpenBLAS threads left spinning 2^28 cycles after each product in a plain process (they
    took the cores from the kernels that follow), or a user's own OPENBLAS_THREAD_TIMEOUT overridden. In a fresh
    process, as a user's; only for NumPy on a pthreads OpenBLAS, the library this fix is for."""
    if not openblas_is_pthreads():
        pytest.skip("NumPy's BLAS here is not a pthreads OpenBLAS")
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    env["PYTHONPATH"] = str(REPO)
    if user_value:
        env["OPENBLAS_THREAD_TIMEOUT"] = user_value
    result = subprocess.run([sys.executable, "-c", OPENBLAS_PROBE], env=env, cwd=tmp_path, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    expected = 1 << int(user_value) if user_value else 16
    assert f"thread_timeout {expected}" in result.stdout, result.stdout


OPENMP_PROBE = textwrap.dedent("""
    import os, sys
    if sys.argv[1] == "torch first":
        import torch  # loads PyTorch's libgomp, which Numba's OpenMP layer then uses too
    import numpy as np
    import numba
    from refimpl.attention import global_slots, sliding_window_attention
    from refimpl.backends.numba import NumbaBackend
    backend = NumbaBackend()
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((1, 2, 30, 8), dtype=np.float32) for _ in range(3))
    kind = np.ones((1, 30), np.int8)
    kind[0, 3] = 2
    gi, ng = global_slots(kind)
    threads = len(os.listdir("/proc/self/task"))
    for _ in range(3):
        context, _ = backend.sliding_window_attention(q, k, v, kind, gi, ng, 4, False)
    reference, _ = sliding_window_attention(q, k, v, kind, gi, ng, 4)
    assert np.abs(context - reference).max() < 1e-5
    print(numba.threading_layer(), len(os.listdir("/proc/self/task")) - threads, backend.openmp)
""")


@pytest.mark.slow
@pytest.mark.parametrize("order, user_policy", [("torch first", None), ("torch first", "PASSIVE"), ("plain", None)])
def test_an_openmp_runtime_loaded_first_is_paused_after_each_kernel(order, user_policy, tmp_path):
    """Would catch: Numba's OpenMP threads left spinning ~3 ms after every kernel when `import torch` came first
    (its libgomp, loaded before the backend could set OMP_WAIT_POLICY, is the one Numba uses), or a pause where
    none is needed. A paused runtime's idle threads end: the kernel leaves no thread behind."""
    if sys.platform != "linux":
        pytest.skip("the OpenMP runtimes are found through /proc/self/maps")
    if order == "torch first":
        pytest.importorskip("torch")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env["PYTHONPATH"] = str(REPO)
    if user_policy:
        env["OMP_WAIT_POLICY"] = user_policy
    result = subprocess.run([sys.executable, "-c", OPENMP_PROBE, order], env=env, cwd=tmp_path, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    layer, new_threads, openmp = result.stdout.split(maxsplit=2)
    if layer != "omp":
        pytest.skip(f"Numba's threading layer here is {layer}, not OpenMP")
    paused = order == "torch first" and user_policy is None
    assert ("paused after each kernel" in openmp) == paused, openmp
    assert (int(new_threads) == 0) == paused, result.stdout  # Numba's worker threads: ended, or asleep and kept


WINDOW_CASES = {
    # name: (B, H, N, D, W, trailing padding, global tokens, dilation, autoregressive)
    "dilation 2, every head": (2, 2, 50, 16, 4, {1: 7}, {0: 2}, 2, False),
    "dilation per head, 1 2 3": (1, 3, 61, 8, 3, {}, {0: 1}, [1, 2, 3], False),
    "dilation wider than the input": (1, 2, 9, 8, 2, {}, {0: 1}, [1, 16], False),
    "dilated band beyond the sequence": (2, 2, 300, 64, 40, {1: 33}, {0: 3, 1: 1}, [4, 1], False),
    "autoregressive": (2, 2, 70, 16, 6, {1: 11}, {}, 1, True),
    "autoregressive and dilated": (1, 3, 97, 8, 5, {}, {}, [1, 2, 3], True),
}


@pytest.mark.parametrize("name", list(WINDOW_CASES))
def test_dilated_and_autoregressive_windows_equal_reference(name, numba_backend):
    """Would catch: a dilated subsequence written back to the wrong rows, the appended global keys leaking into a
    band, a global column pointing at the wrong key, or a causal band that still sees a later key (issue #15)."""
    B, H, N, D, W, pad, n_global, dilation, autoregressive = WINDOW_CASES[name]
    rng = np.random.default_rng(len(name))
    inputs = attention_inputs(rng, B, H, N, D, kinds(rng, B, N, pad, n_global))
    options = dict(dilation=dilation, autoregressive=autoregressive)
    ref_context, ref_probs = sliding_window_attention(*inputs, W, True, **options)
    context, probs = numba_backend.sliding_window_attention(*inputs, W, True, **options)
    assert probs.shape == ref_probs.shape
    assert_close(context, ref_context, atol=ATOL, rtol=0, what="context")
    assert_close(probs, ref_probs, atol=PROBS_ATOL, rtol=PROBS_RTOL, what="probs")
    alone, none = numba_backend.sliding_window_attention(*inputs, W, False, **options)
    assert none is None
    assert_close(alone, context, atol=0, rtol=0, what="context without probabilities")

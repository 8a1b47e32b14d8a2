"""The reference attention against the dense n x n oracle (refimpl/dense.py), which shares none of its band code.

This covers what transformers cannot run: windows that do not divide the length, window 2, windows wider than
the input, and a whole layer's global rows computed by the dense softmax.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from conftest import PROBS_ATOL, assert_close
from refimpl.attention import GLOBAL, LOCAL, PADDING, band_keys, band_mask, global_slots, sliding_window_attention
from refimpl.dense import dense_attention, dense_to_global, dense_to_local, longformer_mask, outputs_to_dense


def random_kind(rng, batch, n, pad_frac=0.2, global_frac=0.1):
    kind = np.full((batch, n), LOCAL, np.int8)
    for b in range(batch):
        keep = n - int(rng.integers(0, int(n * pad_frac) + 1)) if b % 2 else n
        kind[b, keep:] = PADDING
        count = int(rng.integers(0, int(keep * global_frac) + 2)) if b != 1 else 0
        kind[b, rng.choice(keep, size=min(count, keep), replace=False)] = GLOBAL
    return kind


@pytest.mark.parametrize("batch,heads,n,d,w", [
    (2, 3, 37, 8, 1),  # window 2: transformers' chunking fails on it
    (3, 2, 50, 4, 3),  # window 6 does not divide 50
    (2, 1, 9, 5, 16),  # window far wider than the input
    (1, 2, 1, 3, 2),  # a single token
    (2, 2, 64, 16, 8),  # length a multiple of the window
])
def test_sliding_window_attention_equals_dense_oracle(batch, heads, n, d, w):
    rng = np.random.default_rng(n * 31 + w)
    q, k, v = (rng.standard_normal((batch, heads, n, d)).astype(np.float32) for _ in range(3))
    kind = random_kind(rng, batch, n)
    global_index, n_global = global_slots(kind)
    context, probs = sliding_window_attention(q, k, v, kind, global_index, n_global, w, output_attentions=True)
    dense_context, dense_probs = dense_attention(q, k, v, q, k, v, kind, w)
    local_rows = (kind == LOCAL)[:, None, :, None]
    assert_close(np.where(local_rows, context, 0), np.where(local_rows, dense_context, 0), what="context")
    assert not context[np.broadcast_to(~local_rows, context.shape)].any(), "padding and global rows must be 0"
    assert_close(probs, dense_to_local(dense_probs, kind, w), atol=PROBS_ATOL, rtol=0, what="probs")


def test_a_whole_layer_with_global_rows_equals_the_dense_oracle(checkpoint_factory):
    """LongformerSelfAttention (projections, band, global columns and pass 4) against one dense softmax."""
    from refimpl import LongformerModel
    from refimpl.attention import LongformerSelfAttention

    directory, _ = checkpoint_factory("LongformerModel")
    model = LongformerModel.from_pretrained(directory)
    attention: LongformerSelfAttention = model.layers[0].attention
    rng = np.random.default_rng(0)
    batch, n, C, H = 2, 30, 32, 4
    hidden = rng.standard_normal((batch, n, C)).astype(np.float32)
    kind = random_kind(rng, batch, n, global_frac=0.2)
    kind[0, [3, 20]] = GLOBAL
    global_index, n_global = global_slots(kind)
    context, probs, global_probs = attention(hidden, kind, global_index, n_global, output_attentions=True)

    def proj(name):
        weight, bias = getattr(attention, name)
        return (hidden @ weight.T + bias).reshape(batch, n, H, C // H).transpose(0, 2, 1, 3)

    scale = 1 / math.sqrt(C // H)
    dense_context, dense_probs = dense_attention(
        proj("query") * scale, proj("key"), proj("value"),
        proj("query_global") * scale, proj("key_global"), proj("value_global"), kind, attention.w)
    dense_context = dense_context.transpose(0, 2, 1, 3).reshape(batch, n, C)
    rows = (kind != PADDING)[:, :, None]
    assert_close(np.where(rows, context, 0), np.where(rows, dense_context, 0), what="context")
    assert_close(probs, dense_to_local(dense_probs, kind, attention.w), atol=PROBS_ATOL, rtol=0, what="probs")
    assert_close(global_probs, dense_to_global(dense_probs, kind), atol=PROBS_ATOL, rtol=0, what="global probs")
    # and the app's converter puts the two outputs back into the dense matrix, row for row
    full = outputs_to_dense(probs, global_probs, kind, attention.w)
    assert_close(np.where(rows[:, None], full, 0), np.where(rows[:, None], dense_probs, 0), atol=PROBS_ATOL, rtol=0)


def test_band_mask_and_dilation_match_the_dense_rule():
    """The mask code the model and the pattern page share: slot t of query i is key i + dilation*(t - W)."""
    kind = np.array([[LOCAL] * 10 + [GLOBAL] + [LOCAL] * 5 + [PADDING] * 3])
    dense = longformer_mask(kind, 2)[0]
    key, inside = band_keys(19, 2)
    band = band_mask(kind, 2)[0]
    for i in np.flatnonzero(kind[0] == LOCAL):
        from_band = {int(key[i, t]) for t in range(5) if band[i, t]}
        assert from_band == {j for j in range(19) if dense[i, j] and kind[0, j] == LOCAL}
    key, inside = band_keys(12, 2, dilation=3)
    assert key[6].tolist() == [0, 3, 6, 9, 12] and inside[6].tolist() == [True, True, True, True, False]
    with pytest.raises(ValueError, match="window and the dilation must be >= 1"):
        band_keys(5, 0)

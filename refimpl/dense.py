"""The dense oracle: Longformer attention as one full N x N softmax with a mask. Obviously correct, O(N^2) memory.

It shares no code with `refimpl/attention.py` beyond the token kinds: the rules are written out again from the
paper, as comparisons of positions, so that the band code is checked by something independent. Tests use it as the
second oracle (after transformers); the app uses the converters below to draw the full matrix.

Legend: B batch, N sequence length, H heads, D head size, W one-sided window, G global tokens.
"""

from __future__ import annotations

import numpy as np

from refimpl.attention import GLOBAL, LOCAL, PADDING


def longformer_mask(kind, w, dilation=1, autoregressive=False):
    """(B, N) token kinds -> (B, N, N) bool (or (B, H, N, N) for one dilation per head): may query i attend to j?

    local query:  j is a local token with |i - j| <= W d and i - j a multiple of d (d = 1: the plain window),
                  and j <= i when autoregressive; or j is a global token
    global query: every token that is not padding
    padding:      nothing
    """
    kind = np.asarray(kind)
    if np.ndim(dilation) > 0:  # one mask per head
        return np.stack([longformer_mask(kind, w, int(d), autoregressive) for d in dilation], axis=1)
    n = kind.shape[1]
    i, j = np.arange(n)[:, None], np.arange(n)[None, :]  # (N, 1), (1, N)
    near = (np.abs(i - j) <= w * dilation) & ((i - j) % dilation == 0)  # (N, N)
    if autoregressive:
        near &= j <= i
    key_local, key_global = (kind == LOCAL)[:, None, :], (kind == GLOBAL)[:, None, :]  # (B, 1, N)
    local_row = (near[None] & key_local) | key_global  # (B, N, N)
    global_row = np.broadcast_to((kind != PADDING)[:, None, :], local_row.shape)  # (B, N, N)
    query = kind[:, :, None]  # (B, N, 1)
    return np.where(query == GLOBAL, global_row, np.where(query == LOCAL, local_row, False))


def dense_attention(q, k, v, q_global, k_global, v_global, kind, w, dilation=1, autoregressive=False):
    """Every query against every key, masked. All inputs (B, H, N, D) float; q and q_global already scaled.

    Local rows use the local projections (q, k, v), global rows the global ones. Returns context (B, H, N, D)
    and probabilities (B, H, N, N); rows of padding are 0. Computed in float64.
    """
    kind = np.asarray(kind)
    q, k, v, q_global, k_global, v_global = (np.asarray(a, np.float64) for a in (q, k, v, q_global, k_global, v_global))
    row_global = (kind == GLOBAL)[:, None, :, None]  # (B, 1, N, 1)
    scores = np.where(row_global, q_global @ k_global.swapaxes(-1, -2), q @ k.swapaxes(-1, -2))  # (B, H, N, N)
    allowed = longformer_mask(kind, w, dilation, autoregressive)  # (B, N, N) or (B, H, N, N)
    allowed = allowed[:, None] if allowed.ndim == 3 else allowed  # (B, 1 or H, N, N)
    top = np.where(allowed, scores, -np.inf).max(axis=-1, keepdims=True)  # (B, H, N, 1)
    e = np.where(allowed, np.exp(scores - np.where(np.isfinite(top), top, 0)), 0.0)  # (B, H, N, N)
    total = e.sum(axis=-1, keepdims=True)
    probs = np.divide(e, total, out=np.zeros_like(e), where=total > 0)  # (B, H, N, N)
    context = np.where(row_global, probs @ v_global, probs @ v)  # (B, H, N, D)
    return context, probs


# ---------------------------------------------------------------------------------------------------------------
# Between the dense (N x N) layout and the model's outputs (band + global columns, and global rows).
# ---------------------------------------------------------------------------------------------------------------

def dense_to_local(probs, kind, w, dilation=1, autoregressive=False):
    """Dense probabilities (B, H, N, N) -> the model's `attentions` layout (B, H, N, G + S).

    Global columns first (slot s = the s-th global token of the row), then band slot t = key i + d (t - W), S = 2W+1
    slots (W+1 when autoregressive); a band slot whose key is global stays 0 (that probability sits in the global
    column). Global and padding rows are 0. dilation: an int or one per head.
    """
    kind = np.asarray(kind)
    B, H, N, _ = probs.shape
    dilations = [dilation] * H if np.ndim(dilation) == 0 else list(dilation)
    G = int((kind == GLOBAL).sum(axis=1).max()) if B else 0
    S = w + 1 if autoregressive else 2 * w + 1
    out = np.zeros((B, H, N, G + S), dtype=probs.dtype)
    for b in range(B):
        glob = np.flatnonzero(kind[b] == GLOBAL)
        for i in np.flatnonzero(kind[b] == LOCAL):
            out[b, :, i, : len(glob)] = probs[b][:, i][:, glob]  # (H, globals of row b)
            for h, d in enumerate(dilations):
                for t in range(S):
                    j = i + d * (t - w)
                    if 0 <= j < N and kind[b, j] == LOCAL:
                        out[b, h, i, G + t] = probs[b, h, i, j]
    return out


def dense_to_global(probs, kind):
    """Dense probabilities (B, H, N, N) -> the model's `global_attentions` layout (B, H, N, G): column s holds the
    row of the s-th global token (what it attends to); slots past a row's own count are 0."""
    kind = np.asarray(kind)
    B, H, N, _ = probs.shape
    G = int((kind == GLOBAL).sum(axis=1).max()) if B else 0
    out = np.zeros((B, H, N, G), dtype=probs.dtype)
    for b in range(B):
        for s, g in enumerate(np.flatnonzero(kind[b] == GLOBAL)):
            out[b, :, :, s] = probs[b, :, g, :]
    return out


def outputs_to_dense(local_probs, global_probs, kind, w):
    """The model's two outputs for one layer -> the full (B, H, N, N) matrix (for drawing short inputs).

    local_probs (B, H, N, G + 2W + 1); global_probs (B, H, N, G) or None.
    """
    kind = np.asarray(kind)
    B, H, N, width = local_probs.shape
    G = width - (2 * w + 1)
    dense = np.zeros((B, H, N, N), dtype=local_probs.dtype)
    i = np.arange(N)
    for b in range(B):
        glob = np.flatnonzero(kind[b] == GLOBAL)
        for t in range(2 * w + 1):
            j = i + t - w
            ok = (j >= 0) & (j < N)
            dense[b, :, i[ok], j[ok]] += local_probs[b, :, i[ok], G + t]  # (in range, H)
        for s, g in enumerate(glob):
            dense[b, :, :, g] += local_probs[b, :, :, s]
            if global_probs is not None:
                dense[b, :, g, :] = global_probs[b, :, :, s]
    return dense

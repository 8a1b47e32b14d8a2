"""Longformer self-attention in NumPy: a sliding window around every token, plus a few global tokens.

Follows Beltagy, Peters & Cohan, "Longformer: The Long-Document Transformer" (2020, arXiv 2004.05150), section 3.1,
and equals transformers' `LongformerSelfAttention` (models/longformer/modeling_longformer.py) number for number.

Legend, used by every shape comment:
    B batch   N sequence length   H heads   D head size   C = H*D hidden size
    W one-sided window = attention_window // 2        G global tokens (the most that any row of the batch has)
    d dilation of a head (1: the plain window)       S band slots: 2W+1, or W+1 when autoregressive

Every token is one of three kinds (transformers' merged attention_mask, 0/1/2):
    PADDING  attends to nothing and is attended by nothing; its output rows are 0
    LOCAL    attends to the 2W+1 tokens around it (the band) and to every global token
    GLOBAL   attends to every token, and every token attends to it

The attention of one layer is four passes:
    pass 1  scores: each query against its 2W+1 band keys and against the G global keys (local projections)
    pass 2  one softmax over [global columns | band]; a column that is padding, global (it already has its own
            column), outside the sequence or a filler slot gets probability exactly 0
    pass 3  context: probabilities times values, band and global columns
    pass 4  the global tokens' rows: their own projections (query_global, key_global, value_global) attend densely
            to all N tokens, and the result replaces their rows

Memory is O(N * min(W, N)): nothing here is N x N. The band is stored as (B, H, N, 2W+1): slot t of query i is
key i + d (t - W). That is transformers' layout of `attentions` (where d = 1), with the G global columns in front.

The paper's three sliding windows (section 3.1, Figure 2), all on this one path:
    plain           d = 1: the 2W+1 tokens around i
    dilated         d > 1, per head: gaps of d - 1 tokens between the keys, a receptive field of 2 W d + 1 at
                    the cost of 2W+1 keys. The keys of query i are all congruent to i modulo d, so a dilated head's
                    band is the plain band of each of its d interleaved subsequences x[r::d]: passes 1 and 3 run on
                    those, with the same block code.
    autoregressive  a query sees only the keys j <= i: band slots t <= W, so `attentions` holds W+1 band slots
                    (slot t is key i + d (t - W), t = 0..W, the query itself last). Global attention has no causal
                    meaning (a global token reads every token, later ones included, and every token reads it), so
                    an autoregressive layer refuses global tokens with a ValueError.

Deliberately different from transformers:
  - No padding of the sequence to a multiple of the window: the band is defined for any N, so every window works,
    also ones transformers cannot run (a window that does not divide the padded length).
  - The band is computed block by block (W queries against the 3W keys they can see) rather than through
    transformers' chunk-and-diagonalise trick; both give the same numbers up to float32 summation order.
  - Masked columns get probability exactly 0 and rows of padding and global queries are 0, as in transformers.
  - A window wider than the input costs no more than one as wide as the input: keys farther than N - 1 never
    exist, so the band is computed for min(W, N - 1) and padded with zeros to its 2W+1 slots.
  - Dilation and the autoregressive window, which transformers does not have (allenai/longformer has them only
    in its TVM CUDA kernel).
"""

from __future__ import annotations

import itertools
import math

import numpy as np

PADDING, LOCAL, GLOBAL = 0, 1, 2

# A masked score. transformers adds finfo(float32).min (not -inf) so that a row whose columns are all masked
# (a padding query) softmaxes to a uniform row instead of NaN; that row is then zeroed. We do the same.
MASKED = np.finfo(np.float32).min


# ---------------------------------------------------------------------------------------------------------------
# Which keys a query may see. Shared by the model, the dense oracle's tests and the app's pattern pages.
# ---------------------------------------------------------------------------------------------------------------

def band_keys(n: int, w: int, dilation: int = 1):
    """Key position of every band slot, and whether it lies inside the sequence.

    Returns key (N, 2W+1) int64 with key[i, t] = i + dilation * (t - W), and inside (N, 2W+1) bool.
    The model uses dilation 1; the paper's dilated sliding window (Figure 2c) is dilation > 1.
    """
    if w < 1 or dilation < 1:
        raise ValueError(f"the one-sided window and the dilation must be >= 1, got w={w}, dilation={dilation}")
    i = np.arange(n)[:, None]  # (N, 1)
    t = np.arange(2 * w + 1)[None, :]  # (1, 2W+1)
    key = i + dilation * (t - w)  # (N, 2W+1)
    return key, (key >= 0) & (key < n)


def band_mask(kind, w: int, dilation: int = 1, autoregressive: bool = False):
    """(B, N) token kinds -> (B, N, 2W+1) bool: band slot t of query i is a key that i attends to locally.

    A band key must exist, must not be padding, and must not be global (global keys have their own columns);
    autoregressive: it must not lie after the query (slots t > W are never visible).
    """
    kind = np.asarray(kind)
    key, inside = band_keys(kind.shape[1], w, dilation)  # (N, 2W+1) each
    key_kind = kind[:, np.clip(key, 0, kind.shape[1] - 1)]  # (B, N, 2W+1)
    if autoregressive:
        inside = inside & (np.arange(2 * w + 1) <= w)[None, :]
    return inside[None] & (key_kind == LOCAL)


def head_dilations(dilation, H: int) -> tuple[int, ...]:
    """One dilation (an int) or one per head -> H ints >= 1, or a ValueError saying what is allowed."""
    values = (dilation,) * H if np.ndim(dilation) == 0 else tuple(np.asarray(dilation).tolist())
    if len(values) != H or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in values):
        raise ValueError(f"dilation must be an int >= 1 or a list of {H} such ints (one per head), got {dilation!r}")
    return values


def global_slots(kind):
    """Where the global tokens are: global_index (B, G) int64 ascending (filler 0), n_global (B,) int64."""
    kind = np.asarray(kind)
    is_global = kind == GLOBAL  # (B, N)
    n_global = is_global.sum(axis=1).astype(np.int64)  # (B,)
    G = int(n_global.max()) if kind.shape[0] else 0
    global_index = np.zeros((kind.shape[0], G), dtype=np.int64)  # (B, G)
    for b in range(kind.shape[0]):
        global_index[b, : n_global[b]] = np.flatnonzero(is_global[b])
    return global_index, n_global


def softmax(x, axis=-1):
    """Softmax along `axis`, in place: x is a fresh array of scores that the caller gives up. Returns x."""
    x -= x.max(axis=axis, keepdims=True)
    np.exp(x, out=x)
    x /= x.sum(axis=axis, keepdims=True)
    return x


# ---------------------------------------------------------------------------------------------------------------
# Passes 1-3: the local attention with its global columns. The kernel every backend re-implements.
# ---------------------------------------------------------------------------------------------------------------

def diagonals(block, width):
    """(..., W, M) -> the (..., W, width) view whose row r is block[..., r, r : r + width] (M >= W - 1 + width).

    A view, not a copy: stepping one row steps one row and one column of the block. Written through, it fills the
    band into the block."""
    *_, row_step, column_step = block.strides
    shape = block.shape[:-1] + (width,)
    return np.lib.stride_tricks.as_strided(block, shape, block.strides[:-2] + (row_step + column_step, column_step))


def band_scores(q, k, w):
    """Pass 1, band part: scores[b, h, i, t] = q_i . k_(i+t-W); keys outside the sequence score 0 (masked later).

    W queries at a time: the block of queries cW .. cW+W-1 sees keys cW-W .. cW+2W-1, three blocks of keys,
    so each block is one (W x D) @ (D x 3W) product, from which the band is read off diagonally.
    """
    B, H, N, D = q.shape
    n_blocks = -(-N // w)
    q = np.pad(q, [(0, 0), (0, 0), (0, n_blocks * w - N), (0, 0)])  # (B, H, n_blocks*W, D)
    k = np.pad(k, [(0, 0), (0, 0), (w, n_blocks * w - N + w), (0, 0)])  # (B, H, W + n_blocks*W + W, D)
    scores = np.empty((B, H, n_blocks * w, 2 * w + 1), dtype=q.dtype)  # (B, H, n_blocks*W, 2W+1)
    for c in range(n_blocks):
        q_block = q[:, :, c * w:(c + 1) * w]  # (B, H, W, D)
        k_block = k[:, :, c * w:(c + 3) * w]  # (B, H, 3W, D)
        block = q_block @ k_block.swapaxes(-1, -2)  # (B, H, W, 3W)
        # row r of a block is query cW+r; column m of its key block is key cW+m-W; slot t wants key cW+r+t-W: m = r+t
        scores[:, :, c * w:(c + 1) * w] = diagonals(block, 2 * w + 1)  # (B, H, W, 2W+1)
    return scores[:, :, :N]  # (B, H, N, 2W+1)


def band_context(probs, v, w):
    """Pass 3, band part: context[b, h, i] = sum_t probs[b, h, i, t] * v_(i+t-W). The transpose of band_scores."""
    B, H, N, D = v.shape
    n_blocks = -(-N // w)
    probs = np.pad(probs, [(0, 0), (0, 0), (0, n_blocks * w - N), (0, 0)])  # (B, H, n_blocks*W, 2W+1)
    v = np.pad(v, [(0, 0), (0, 0), (w, n_blocks * w - N + w), (0, 0)])  # (B, H, W + n_blocks*W + W, D)
    context = np.empty((B, H, n_blocks * w, D), dtype=v.dtype)  # (B, H, n_blocks*W, D)
    block = np.zeros((B, H, w, 3 * w), dtype=probs.dtype)  # (B, H, W, 3W): 0 off the band, in every block
    band = diagonals(block, 2 * w + 1)  # (B, H, W, 2W+1), a view into block
    for c in range(n_blocks):
        band[...] = probs[:, :, c * w:(c + 1) * w]
        context[:, :, c * w:(c + 1) * w] = block @ v[:, :, c * w:(c + 3) * w]  # (B, H, W, D)
    return context[:, :, :N]  # (B, H, N, D)


def gather_tokens(x, index):
    """x (B, H, N, D), index (B, G) -> (B, H, G, D): the rows of the given tokens."""
    return np.take_along_axis(x, index[:, None, :, None], axis=2)


def sliding_window_attention(q, k, v, kind, global_index, n_global, w, output_attentions=False, dilation=1,
                             autoregressive=False):
    """Passes 1-3 of the local attention. The contract every backend meets (refimpl/backends/base.py).

    q, k, v (B, H, N, D) float32 with q already scaled by 1/sqrt(D); kind (B, N); global_index (B, G);
    n_global (B,); w the one-sided window; dilation an int or one per head; autoregressive: keys j <= i only.
    Returns context (B, H, N, D) and, when asked, the probabilities (B, H, N, G + S): the G global columns first,
    then the S band slots (2W+1, or W+1 when autoregressive).
    """
    B, H, N, D = q.shape
    G = global_index.shape[1]
    kind = np.asarray(kind)
    dilations = head_dilations(dilation, H)
    if autoregressive and G > 0:
        raise ValueError("autoregressive attention has no global tokens: a global token reads every token, later "
                         "ones included, and every token reads it; drop the global_attention_mask")
    slot_used = np.arange(G)[None, :] < n_global[:, None]  # (B, G)

    # pass 1: scores against the global keys (the *local* key projection, as transformers) and against the band
    scores = np.zeros((B, H, N, G + 2 * w + 1), q.dtype)  # (B, H, N, G+2W+1): global columns, then the band
    visible = np.zeros((B, H, N, G + 2 * w + 1), bool)  # (B, H, N, G+2W+1)
    scores[..., :G] = q @ gather_tokens(k, global_index).swapaxes(-1, -2)  # (B, H, N, G)
    visible[..., :G] = slot_used[:, None, None, :]
    band, visible_band = scores[..., G:], visible[..., G:]  # (B, H, N, 2W+1) views
    for heads, rows, slots, w_sub in dilated_subsequences(dilations, N, w):
        # the d-dilated band of the rows r, r+d, r+2d, ... is the plain band of that subsequence
        band[:, heads, rows, slots] = band_scores(q[:, heads, rows], k[:, heads, rows], w_sub)
        visible_band[:, heads, rows, slots] = band_mask(kind[:, rows], w_sub)[:, None]
    if autoregressive:
        visible_band[..., w + 1:] = False  # keys after the query

    # pass 2: softmax over the columns each query may see
    np.copyto(scores, MASKED, where=~visible)
    probs = softmax(scores)  # (B, H, N, G+2W+1)
    probs *= (kind == LOCAL)[:, None, :, None]  # padding rows and global rows are 0

    # pass 3: weighted sum of the values, global columns and band
    context = probs[..., :G] @ gather_tokens(v, global_index)  # (B, H, N, D)
    for heads, rows, slots, w_sub in dilated_subsequences(dilations, N, w):
        context[:, heads, rows] += band_context(probs[..., G:][:, heads, rows, slots], v[:, heads, rows], w_sub)
    if not output_attentions:
        return context, None
    slots = G + (w + 1 if autoregressive else 2 * w + 1)  # autoregressive: the slots after the query are dropped
    return context, np.ascontiguousarray(probs[..., :slots])


def dilated_subsequences(dilations, N: int, w: int):
    """The pieces passes 1 and 3 run on, as slices (so that they index views, never copies): for each run of
    adjacent heads that share a dilation d and each residue r < d, those `heads`, the `rows` r, r+d, r+2d, ...,
    the window w_sub = min(W, rows - 1) that can exist among those rows (at least 1), and `slots`, where its
    2 w_sub + 1 slots sit in the 2W+1 band (centred: the slots farther out never hold a key)."""
    first = 0
    for d, run in itertools.groupby(dilations):
        last = first + len(list(run))
        for r in range(min(d, N)):
            w_sub = max(min(w, len(range(r, N, d)) - 1), 1)
            yield slice(first, last), slice(r, None, d), slice(w - w_sub, w + w_sub + 1), w_sub
        first = last


# ---------------------------------------------------------------------------------------------------------------
# Projections, and pass 4: the global tokens' rows. Written against the array module `xp`; a backend may replace
# project (the Numba backend adds the bias and splits the heads in one pass) and global_attention (it folds the
# projections into the few global queries).
# ---------------------------------------------------------------------------------------------------------------

def project(x, weight_bias, count, H, xp):
    """x (B, N, C) through a stacked (count*C, C) projection -> `count` arrays (B, H, N, D), contiguous."""
    weight, bias = weight_bias
    B, N, C = x.shape
    y = x @ weight.T  # (B, N, count*C)
    y += bias
    heads = y.reshape(B, N, count, H, C // H).transpose(2, 0, 3, 1, 4)  # (count, B, H, N, D)
    return [xp.ascontiguousarray(h) for h in heads]


def global_softmax(scores_g, kind, slot_used, xp):
    """Pass 4's softmax over all N keys of (B, H, G, N) scores: padding keys masked, filler slots 0."""
    scores_g = xp.where((kind == PADDING)[:, None, None, :], MASKED, scores_g)
    probs_g = xp.exp(scores_g - scores_g.max(axis=-1, keepdims=True))
    probs_g = probs_g / probs_g.sum(axis=-1, keepdims=True)  # (B, H, G, N)
    return xp.where(slot_used[:, None, :, None], probs_g, np.float32(0))


def global_attention(q_g, hidden, kv_global, kind, slot_used, xp=np):
    """Pass 4: the global queries q_g (B, H, G, D), already scaled, attend to every token through key_global and
    value_global (kv_global: their stacked (2C, C) weight and (2C,) bias). hidden (B, N, C); kind (B, N);
    slot_used (B, G). Returns context (B, H, G, D) and probabilities (B, H, G, N)."""
    k_g, v_g = project(hidden, kv_global, 2, q_g.shape[1], xp)  # (B, H, N, D) each
    probs_g = global_softmax(q_g @ k_g.swapaxes(-1, -2), kind, slot_used, xp)  # (B, H, G, N)
    return probs_g @ v_g, probs_g  # (B, H, G, D), (B, H, G, N)


# ---------------------------------------------------------------------------------------------------------------
# The layer: projections, passes 1-3 through the backend, pass 4, written once against the backend's array module.
# ---------------------------------------------------------------------------------------------------------------

class LongformerSelfAttention:
    """One layer's self-attention. Weights are PyTorch-layout (out, in) arrays on the backend's device."""

    def __init__(self, params: dict, config, layer: int, backend):
        self.backend = backend
        self.H, self.D = config.num_attention_heads, config.head_size
        self.w = config.window(layer) // 2  # W, one side
        self.dilation = list(config.dilation(layer))  # H ints
        self.autoregressive = config.autoregressive
        for name in ("query", "key", "value", "query_global", "key_global", "value_global"):
            setattr(self, name, (params[f"{name}.weight"], params[f"{name}.bias"]))
        # the projections that read every token, stacked so that each group is one matrix product (as nanoGPT's c_attn)
        xp = backend.xp
        self.qkv = tuple(xp.concatenate([p[i] for p in (self.query, self.key, self.value)]) for i in (0, 1))
        self.kv_global = tuple(xp.concatenate([p[i] for p in (self.key_global, self.value_global)]) for i in (0, 1))

    def project(self, x, weight_bias, count=1, scales=None):
        return self.backend.project(x, weight_bias, count, self.H, scales)

    def __call__(self, hidden, kind, global_index, n_global, output_attentions=False):
        """hidden (B, N, C); kind (B, N) and global_index (B, G), n_global (B,) on the backend's device.

        Returns context (B, N, C), local probabilities (B, H, N, G+2W+1) or None, global probabilities
        (B, H, N, G) or None (None also when no row has a global token).
        """
        xp, D = self.backend.xp, self.D
        B, N, C = hidden.shape
        G = global_index.shape[1]
        scale = np.float32(1.0 / math.sqrt(D))

        q, k, v = self.project(hidden, self.qkv, 3, scales=(scale, 1, 1))  # (B, H, N, D) each, q scaled
        context, probs = self.backend.sliding_window_attention(
            q, k, v, kind, global_index, n_global, self.w, output_attentions, self.dilation,
            self.autoregressive)  # (B, H, N, D), (B, H, N, G+S)

        global_probs = None
        if G > 0:
            # pass 4: each global token attends to all N tokens with its own projections
            slot_used = xp.arange(G)[None, :] < n_global[:, None]  # (B, G)
            hidden_global = xp.take_along_axis(hidden, global_index[:, :, None], axis=1)  # (B, G, C)
            [q_g] = self.project(hidden_global, self.query_global, scales=(scale,))  # (B, H, G, D), scaled
            context_g, probs_g = self.backend.global_attention(
                q_g, hidden, self.kv_global, kind, slot_used)  # (B, H, G, D), (B, H, G, N)
            # overwrite the global tokens' rows with their global context
            b, s = xp.nonzero(slot_used)  # used slots, as (row, slot) pairs
            context[b, :, global_index[b, s]] = context_g[b, :, s]  # (used slots, H, D)
            global_probs = probs_g.swapaxes(-1, -2)  # (B, H, N, G), transformers' layout

        context = context.transpose(0, 2, 1, 3).reshape(B, N, C)  # (B, N, C)
        return context, probs, global_probs

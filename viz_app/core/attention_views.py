"""The attention of one forward pass laid out for drawing: the full matrix (downsampled with the strongest pair of
each cell kept, or one region exactly), the model's band layout, one query's row, one key's column, every head at
once, a span's pairs for the head view, and differences. No streamlit here.

Nothing here is N x N except one head's matrix at a time (`dense_head`), which a 4096-token document can afford
(4096^2 float32 = 64 MB). The overview is block-max downsampled, so that a one-token-wide diagonal or global stripe
survives (a mean would fade it); each cell also keeps which pair held its maximum, so a hover can name it.

Band slots: slot t of query i in head h holds key i + d_h (t - W) (d_h the head's dilation; S = 2W + 1 slots, or
W + 1 in an autoregressive layer), read from `ForwardResult.offsets` and turned into keys here, in `layout_to_dense`,
`query_weights` and `key_weights` only. refimpl.dense.outputs_to_dense assumes dilation 1, so it is not used. With
heads of different dilations a slot is a different key in each head, so "mean over heads" averages the heads' rows
(or matrices), never their layouts.

Legend: N tokens, H heads, L layers, W one-sided window (window // 2), G global tokens, S band slots,
R x C cells drawn.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from viz_app.core.forward import ForwardResult

# the overview matrix is at most this many cells a side (block-max past it): each cell carries its hover text, and
# 128 x 128 of them is about 1.5 MB for the browser (256 x 256 was 11 MB, slow to draw)
OVERVIEW_CELLS = 128
EXACT_LIMIT = OVERVIEW_CELLS  # up to this many tokens the overview is already exact
REGION_LIMIT = 128  # a region drawn exactly, one cell per pair: at most this many tokens a side
MODEL_VIEW_LIMIT = 512  # the mosaic of every layer and head computes every N x N matrix: short inputs only
MODEL_VIEW_CELLS = 64  # each small multiple is at most this many cells a side
SPAN_LIMIT = 64  # the head view draws lines between the tokens of a span of at most this many tokens


def head_outputs(result: ForwardResult, layer: int, head) -> tuple[np.ndarray, np.ndarray | None]:
    """(local (N, G + S), glob (N, G) or None) of one head, or their mean over heads, as float32. The mean's band
    slots mix keys when the heads' dilations differ: use it only for drawing the layout itself (band_view)."""
    def pick(a):
        return a.mean(axis=0, dtype=np.float32) if head == "mean" else a[int(head)].astype(np.float32)

    glob = None if result.glob is None else pick(result.glob[layer])
    return pick(result.local[layer]), glob


def _heads(result: ForwardResult, head) -> list[int]:
    return list(range(result.num_heads)) if head == "mean" else [int(head)]


def layout_to_dense(local: np.ndarray, glob: np.ndarray | None, global_positions: np.ndarray,
                    offsets: np.ndarray) -> np.ndarray:
    """One head's (N, N) attention from its band layout: local (N, G + S), glob (N, G) or None, offsets (S,) the
    key - query of each band slot. A global query's row is its global column, not its (unused) band slots."""
    N = local.shape[0]
    G = len(global_positions)
    dense = np.zeros((N, N), np.float32)
    is_local = np.ones(N, bool)
    is_local[global_positions] = False
    i = np.flatnonzero(is_local)[:, None]  # (S_q, 1) local queries
    keys = i + offsets[None, :]  # (S_q, S)
    inside = (keys >= 0) & (keys < N)
    rows = np.broadcast_to(i, keys.shape)
    dense[rows[inside], keys[inside]] = local[:, G:][rows[inside], np.nonzero(inside)[1]]
    if G:
        dense[i, global_positions[None, :]] = local[i[:, 0], :G]  # a band slot on a global key holds 0
        if glob is not None:
            dense[global_positions] = glob.T  # (G, N)
    return dense


def dense_head(result: ForwardResult, layer: int, head) -> np.ndarray:
    """The full (N, N) attention of one head (or the mean over heads), from the model's two outputs."""
    offsets = result.offsets(layer)  # (H, S)
    heads = _heads(result, head)
    dense = np.zeros((result.n, result.n), np.float32)
    for h in heads:
        glob = None if result.glob is None else result.glob[layer][h].astype(np.float32)
        dense += layout_to_dense(result.local[layer][h].astype(np.float32), glob, result.global_positions,
                                 offsets[h])
    return dense / len(heads)


def block_max(a: np.ndarray, block: int, axes=(0, 1)) -> np.ndarray:
    """Max over block x block tiles (along `axes`; a ragged last tile is padded with 0, below any probability)."""
    if block == 1:
        return a
    pad = [(0, 0)] * a.ndim
    for ax in axes:
        pad[ax] = (0, -a.shape[ax] % block)
    a = np.pad(a, pad)
    shape = []
    for ax, size in enumerate(a.shape):
        shape += [size // block, block] if ax in axes else [size]
    reduce = tuple(i + 1 + k for k, i in enumerate(sorted(axes)))  # the inner axis of each split pair
    return a.reshape(shape).max(axis=reduce)


def block_size(n: int, cells: int) -> int:
    """Tokens per cell so that n tokens fit in at most `cells` cells."""
    return max(1, -(-n // cells))


@dataclass(frozen=True)
class Matrix:
    """A rectangle of the attention matrix as drawn: cell (r, c) covers queries rows[r]..rows[r+1]-1 and keys
    cols[c]..cols[c+1]-1, and z is the largest probability in it, held by query best_q and key best_k."""

    z: np.ndarray  # (R, C) float32
    rows: np.ndarray  # (R + 1,) first query of each row of cells, then the end
    cols: np.ndarray  # (C + 1,)
    best_q: np.ndarray  # (R, C) int64
    best_k: np.ndarray  # (R, C) int64
    block: int  # tokens per cell a side (1: exact)

    @property
    def exact(self) -> bool:
        return self.block == 1


def _blocks(dense: np.ndarray, q0: int, k0: int, block: int) -> Matrix:
    """`dense` (a rectangle starting at query q0, key k0) as block x block cells with the argmax of each."""
    nq, nk = dense.shape
    R, C = -(-nq // block), -(-nk // block)
    padded = np.zeros((R * block, C * block), np.float32)
    padded[:nq, :nk] = dense
    tiles = padded.reshape(R, block, C, block).transpose(0, 2, 1, 3).reshape(R, C, block * block)  # (R, C, b*b)
    arg = tiles.argmax(axis=2)  # (R, C)
    z = np.take_along_axis(tiles, arg[..., None], axis=2)[..., 0]
    best_q = q0 + np.arange(R)[:, None] * block + arg // block
    best_k = k0 + np.arange(C)[None, :] * block + arg % block
    rows = np.minimum(q0 + np.arange(R + 1) * block, q0 + nq)
    cols = np.minimum(k0 + np.arange(C + 1) * block, k0 + nk)
    return Matrix(z, rows, cols, best_q.astype(np.int64), best_k.astype(np.int64), block)


def overview(dense: np.ndarray, cells: int = OVERVIEW_CELLS) -> Matrix:
    """The whole (N, N) matrix: exact up to `cells` tokens, else block-max downsampled to at most cells x cells."""
    return _blocks(dense, 0, 0, block_size(len(dense), cells))


def region(dense: np.ndarray, queries: tuple[int, int], keys: tuple[int, int]) -> Matrix:
    """Queries q0..q1 and keys k0..k1 (inclusive), one cell per pair. ValueError past REGION_LIMIT a side."""
    (q0, q1), (k0, k1) = sorted(queries), sorted(keys)
    n = len(dense)
    q0, k0, q1, k1 = max(0, q0), max(0, k0), min(n - 1, q1), min(n - 1, k1)
    if q1 - q0 + 1 > REGION_LIMIT or k1 - k0 + 1 > REGION_LIMIT:
        raise ValueError(f"a region is drawn one cell per pair, so at most {REGION_LIMIT} tokens a side; this one "
                         f"is {q1 - q0 + 1} x {k1 - k0 + 1}: choose a smaller one")
    return _blocks(dense[q0:q1 + 1, k0:k1 + 1], q0, k0, 1)


def region_around(n: int, centre: int, size: int = 64) -> tuple[int, int]:
    """A range of `size` tokens around `centre`, inside 0..n-1."""
    size = min(size, n)
    lo = min(max(0, centre - size // 2), n - size)
    return lo, lo + size - 1


def band_view(result: ForwardResult, layer: int, head, rows: int = OVERVIEW_CELLS):
    """Longformer's own layout: (global columns (R, G), band (R, S), queries per row), with the queries
    block-max downsampled to at most `rows` rows. Band slot t of query i is key i + d_h (t - W)."""
    local, _ = head_outputs(result, layer, head)
    G = len(result.global_positions)
    block = block_size(result.n, rows)
    return block_max(local[:, :G], block, axes=(0,)), block_max(local[:, G:], block, axes=(0,)), block


def query_weights(result: ForwardResult, layer: int, head, query: int) -> tuple[np.ndarray, np.ndarray]:
    """How much `query` attends to each key: (local (N,), global (N,)); the mean over heads is the mean of rows.

    A local query spreads one softmax over its band (local) and the global tokens (global). A global query
    attends to every token with its own projections: that whole row is returned as global.
    """
    n, G = result.n, len(result.global_positions)
    offsets = result.offsets(layer)  # (H, S)
    local_w, global_w = np.zeros(n, np.float32), np.zeros(n, np.float32)
    hits = np.flatnonzero(result.global_positions == query)
    heads = _heads(result, head)
    for h in heads:
        local = result.local[layer][h]
        if len(hits):
            global_w += result.glob[layer][h][:, hits[0]]
            continue
        keys = query + offsets[h]  # (S,) key of each band slot
        inside = (keys >= 0) & (keys < n)
        local_w[keys[inside]] += local[query, G:][inside]
        global_w[result.global_positions] += local[query, :G]
    return local_w / len(heads), global_w / len(heads)


def key_weights(result: ForwardResult, layer: int, head, key: int) -> tuple[np.ndarray, np.ndarray]:
    """Who attends to `key`, and how much: (from local queries (N,), from global queries (N,)), i.e. column `key`
    of the matrix, read from the band layout in O(N) (O(S) for a local key). A local query reaches a key through
    its band (the slot t with query + d_h (t - W) = key) or, when the key is global, through its global column."""
    n, G = result.n, len(result.global_positions)
    offsets = result.offsets(layer)  # (H, S)
    from_local, from_global = np.zeros(n, np.float32), np.zeros(n, np.float32)
    is_local = result.kind == 1  # refimpl.attention.LOCAL
    hits = np.flatnonzero(result.global_positions == key)
    heads = _heads(result, head)
    for h in heads:
        local = result.local[layer][h]
        if len(hits):
            from_local[is_local] += local[is_local, hits[0]]
        else:
            queries = key - offsets[h]  # (S,) the query whose slot t holds this key
            inside = (queries >= 0) & (queries < n)
            q, t = queries[inside], np.flatnonzero(inside)
            keep = is_local[q]  # a global query's band slots are not its attention (its row is in glob)
            from_local[q[keep]] += local[q[keep], G + t[keep]]
        if result.glob is not None:
            from_global[result.global_positions] += result.glob[layer][h][key]  # global query s: glob[key, s]
    return from_local / len(heads), from_global / len(heads)


def model_view(result: ForwardResult, cells: int = MODEL_VIEW_CELLS) -> tuple[np.ndarray, int, int]:
    """Every layer x head as one mosaic (L*(c+1)-1, H*(c+1)-1) with NaN gutters, c cells a side for each head.
    Returns (mosaic, c, tokens per cell). Only for inputs up to MODEL_VIEW_LIMIT tokens."""
    if result.n > MODEL_VIEW_LIMIT:
        raise ValueError(f"The mosaic of every layer and head draws every head's full matrix, so it is for inputs "
                         f"of at most {MODEL_VIEW_LIMIT} tokens; this one has {result.n:,}. The statistics above "
                         "cover every head of any input.")
    block = block_size(result.n, cells)
    c = -(-result.n // block)
    L, H = result.num_layers, result.num_heads
    mosaic = np.full((L * (c + 1) - 1, H * (c + 1) - 1), np.nan, dtype=np.float32)
    for layer in range(L):
        for head in range(H):
            small = block_max(dense_head(result, layer, head), block)  # (c, c)
            mosaic[layer * (c + 1):layer * (c + 1) + c, head * (c + 1):head * (c + 1) + c] = small
    return mosaic, c, block


def difference(a: np.ndarray, b: np.ndarray, cells: int = OVERVIEW_CELLS) -> tuple[np.ndarray, int]:
    """a - b (two (N, N) matrices) downsampled to at most cells x cells, each cell keeping the signed difference
    of largest magnitude in it (so a one-token change is not averaged away). Returns (diff, tokens per cell)."""
    d = a.astype(np.float32) - b.astype(np.float32)
    block = block_size(len(d), cells)
    hi, lo = block_max(d, block), -block_max(-d, block)
    return np.where(hi >= -lo, hi, lo), block


@dataclass(frozen=True)
class Span:
    """The head view's data: the pairs among the tokens start..stop-1, and their attention to global tokens
    outside the span, drawn apart."""

    start: int
    stop: int
    inside: np.ndarray  # (S, S) query start+a attends to key start+b
    outside_keys: np.ndarray  # (G_out,) global tokens outside the span
    to_outside: np.ndarray  # (S, G_out)


def span_pairs(result: ForwardResult, layer: int, head, start: int, stop: int) -> Span:
    """Rows start..stop-1 restricted to the span, plus the columns of the global tokens outside it."""
    start, stop = max(0, start), min(result.n, stop)
    if not 0 < stop - start <= SPAN_LIMIT:
        raise ValueError(f"the head view draws a span of 1 to {SPAN_LIMIT} tokens; {start}..{stop - 1} is "
                         f"{stop - start}")
    outside = np.asarray([g for g in result.global_positions if not start <= g < stop], dtype=np.int64)
    rows = [sum(query_weights(result, layer, head, q)) for q in range(start, stop)]  # each (N,)
    full = np.stack(rows)  # (S, N)
    return Span(start, stop, full[:, start:stop], outside, full[:, outside])

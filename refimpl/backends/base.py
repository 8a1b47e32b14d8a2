"""The backend interface: every method the model calls, with its shapes and dtypes, and the one check of the
attention's inputs that every backend runs before its kernel.

The model (refimpl/model.py, refimpl/attention.py) is written once against `backend.xp`, the array module its arrays
live in, and calls the methods below where a backend may do better than plain array code. The NumPy reference
(refimpl/backends/numpy.py) defines each method's numbers; every other backend must equal it within the
tolerances of tests/conftest.py. tests/backends/test_conformance.py runs every method of every available backend
against it.

Legend: B batch, N sequence length, H heads, D head size, C = H*D hidden size, W one-sided window
(attention_window // 2), G global tokens (the most any row of the batch has).
"""

from __future__ import annotations

import abc
import math
import operator

import numpy as np

from refimpl import attention
from refimpl.attention import head_dilations


class Backend(abc.ABC):
    """What a backend supplies. Subclasses set `name` and `xp` and implement every abstract method."""

    name: str  # "numpy" | "numba" | "cupy" | "dense": the name it is registered under
    xp = np  # the array module of the model's arrays on this backend (numpy or cupy)

    def asarray(self, a):
        """A NumPy array (weights, inputs) onto the backend's device, dtype unchanged."""
        return self.xp.asarray(a)

    def asnumpy(self, a) -> np.ndarray:
        """A backend array back to a NumPy array on the host."""
        return np.asarray(a)

    @abc.abstractmethod
    def sliding_window_attention(self, q, k, v, kind, global_index, n_global, w, output_attentions, dilation=1,
                                 autoregressive=False):
        """Passes 1-3 of refimpl/attention.py: the local attention with the global columns.

        q, k, v       (B, H, N, D) float32; q already scaled by 1/sqrt(D). Any N >= 1.
        kind          (B, N) int8: 0 padding, 1 local token, 2 global token (refimpl.inputs.token_kind)
        global_index  (B, G) int64: positions of each row's global tokens, ascending; slots >= n_global[b] hold 0
        n_global      (B,) int64
        w             one-sided window, an int >= 1 (may exceed N)
        dilation      an int >= 1, or H of them (one per head): band slot t of query i is key i + d (t - W)
        autoregressive  only keys j <= i; then G must be 0 (the reference refuses global tokens)
        returns       context (B, H, N, D) float32 (any strides: the numba backend's is a view of (B, N, H, D)),
                      probs (B, H, N, G + S) float32 when output_attentions, else None; S = 2W+1 band slots,
                      or W+1 when autoregressive.

        Each local query i of row b attends, with one softmax, to the G global keys (slot order) and to the band
        keys j = i + d (t - W) that exist (0 <= j < N) and are local. Columns that do not exist, are padding, are
        global (they have their own column) or are filler slots get probability exactly 0. Rows of padding and of
        global queries are 0 in both outputs (the model overwrites the global rows with pass 4).
        Memory is O(B H N (G + min(W, N)) + the output).
        """

    @abc.abstractmethod
    def global_attention(self, q_g, hidden, kv_global, kind, slot_used):
        """Pass 4: the global tokens' rows, attending densely to all N tokens.

        q_g           (B, H, G, D) float32, already scaled: query_global of the global tokens
        hidden        (B, N, C) float32: the layer's input
        kv_global     (weight (2C, C), bias (2C,)): key_global and value_global stacked
        kind          (B, N) int8;  slot_used (B, G) bool: slot s of row b holds a global token
        returns       context (B, H, G, D) float32, probs (B, H, G, N) float32 (unused slots 0).
        """

    @abc.abstractmethod
    def layer_norm(self, x, weight, bias, eps):
        """LayerNorm over the last axis, torch's biased variance. x (..., C) float32; weight, bias (C,)."""

    def bias_gelu(self, x, bias, out=None):
        """gelu(x + bias): x (..., F) float32, bias (F,); out as for gelu (x itself allowed). A backend may add the
        bias in the GELU's own pass."""
        return self.gelu(x + bias, out=out)

    def project(self, x, weight_bias, count, H, scales=None):
        """x (B, N, C) float32 through `count` stacked projections, weight_bias = (weight (count*C, C), bias
        (count*C,)), each then multiplied by its number of `scales` (count numbers; None: all 1; the model scales
        the queries by 1/sqrt(D)) -> a list of `count` arrays (B, H, N, D), C-contiguous. A backend may fuse the
        bias, the scale and the split into heads."""
        heads = attention.project(x, weight_bias, count, H, self.xp)
        for head, scale in zip(heads, projection_scales(scales, count)):
            if scale != 1:
                head *= np.float32(scale)
        return heads

    def feed_forward_rows(self, n_tokens, width):
        """How many of the n_tokens the feed-forward block (width F) should take at a time when the config leaves
        it to the backend (chunk_size_feed_forward 0); None: all of them at once, as transformers does."""
        return None

    def residual_layer_norm(self, x, residual, weight, bias, eps, x_bias=None):
        """LayerNorm(x + x_bias + residual), summed in that order, shapes as layer_norm; x_bias (C,) or None: the
        bias of the product x (the model's dense layers leave it to the norm). A backend may fuse the sums into
        the norm."""
        if x_bias is not None:
            if x_bias.shape != x.shape[-1:]:  # refused, not broadcast: a (1,) bias would be added everywhere
                raise ValueError(f"x_bias must have shape ({x.shape[-1]},) (x's last axis), got {x_bias.shape}")
            x = x + x_bias
        return self.layer_norm(x + residual, weight, bias, eps)

    @abc.abstractmethod
    def gelu(self, x, out=None):
        """The exact (erf) GELU, elementwise, float32 of any shape. out: an array of x's shape and dtype to write
        the result into, x itself allowed (the model passes its FFN product, so that no second array is made);
        returns out, or a new array when out is None."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


def check_attention_inputs(q, k, v, kind, global_index, n_global, w, dilation=1, autoregressive=False):
    """The contract of sliding_window_attention, checked once for every backend.

    Returns (B, H, N, D, G, w) with w as a Python int. A wrong dtype is a TypeError (a caller's bug, never
    converted silently); a wrong shape or value a ValueError naming the argument.
    """
    for name, a in (("q", q), ("k", k), ("v", v)):
        if getattr(a, "dtype", None) != np.float32:
            raise TypeError(f"{name} must be float32, got {getattr(a, 'dtype', type(a).__name__)}")
    if q.ndim != 4 or k.shape != q.shape or v.shape != q.shape:
        raise ValueError(f"q, k, v must share one shape (B, H, N, D), got {q.shape}, {k.shape}, {v.shape}")
    B, H, N, D = q.shape
    try:
        w = operator.index(w)
    except TypeError:
        raise ValueError(f"the one-sided window must be an integer >= 1, got {w!r}") from None
    if w < 1:
        raise ValueError(f"the one-sided window must be >= 1, got {w}")
    if getattr(global_index, "ndim", None) != 2:
        raise ValueError(f"global_index must have shape (B, G), got {getattr(global_index, 'shape', None)}")
    G = int(global_index.shape[1])
    for name, a, shape in (("kind", kind, (B, N)), ("global_index", global_index, (B, G)),
                           ("n_global", n_global, (B,))):
        if tuple(a.shape) != shape:
            raise ValueError(f"{name} must have shape {shape} to match q's batch {B} and length {N}, got "
                             f"{tuple(a.shape)}")
    head_dilations(dilation, H)
    if not isinstance(autoregressive, (bool, np.bool_)):
        raise ValueError(f"autoregressive must be True or False, got {autoregressive!r}")
    if autoregressive and G > 0:
        raise ValueError("autoregressive attention has no global tokens: a global token reads every token, later "
                         "ones included, and every token reads it; drop the global_attention_mask")
    return B, H, N, D, G, w


def projection_scales(scales, count):
    """Backend.project's scales -> `count` Python floats (None: all 1), or a ValueError saying what is allowed."""
    if scales is None:
        return (1.0,) * count
    values = tuple(scales) if isinstance(scales, (tuple, list)) else ()
    if len(values) != count or not all(isinstance(s, (int, float, np.floating, np.integer))
                                       and not isinstance(s, bool) and math.isfinite(s) for s in values):
        raise ValueError(f"scales must be {count} finite numbers (one per projection) or None, got {scales!r}")
    return tuple(float(s) for s in values)

"""The backend seam: the model is written once; a backend supplies the array module and the kernels that differ.

A backend is a small object with:

    name                      "numpy" | "numba" | "cupy"
    xp                        the array module the model's arrays live in (numpy or cupy)
    asarray(a)                a NumPy array (weights, inputs) onto the backend's device
    asnumpy(a)                a backend array back to NumPy
    sliding_window_attention  the core of Longformer's local attention (contract below)
    global_attention          pass 4, the global tokens' rows (refimpl.attention.global_attention defines it)
    layer_norm, gelu          elementwise ops; the defaults below are written against `xp`
    residual_layer_norm       LayerNorm(x + residual), which a backend may fuse

The contract of `sliding_window_attention(q, k, v, kind, global_index, n_global, w, output_attentions)`:

    q, k, v       (B, H, N, D) float32, C-contiguous; q is already scaled by 1/sqrt(D). Any N >= 1.
    kind          (B, N) int8: 0 padding, 1 local token, 2 global token (transformers' merged attention_mask)
    global_index  (B, G) int64: positions of the global tokens of each row, ascending; slots >= n_global[b] hold 0
    n_global      (B,) int64
    w             one-sided window (attention_window // 2), w >= 1
    returns       context (B, H, N, D) float32,
                  probs (B, H, N, G + 2W + 1) float32 when output_attentions else None.

Each local query i of row b attends, with one softmax, to the G global keys (slot order) and to the band keys
j = i - W .. i + W that exist (0 <= j < N) and are local (kind 1). Columns that do not exist, are padding, are
global (they are reached through the global columns instead) or are filler slots get probability 0. Rows of padding
and of global queries are 0 in both outputs (the model overwrites global rows with the global pass). The NumPy
reference `refimpl.attention.sliding_window_attention` defines it; every other backend must equal it.

Nothing silently falls back: an unknown or unavailable backend raises with the reason and the available names.
"""

from __future__ import annotations

import importlib.util

import numpy as np


class NumpyBackend:
    """The reference: plain NumPy, readable first."""

    name = "numpy"
    xp = np

    def asarray(self, a):
        return np.asarray(a)

    def asnumpy(self, a):
        return np.asarray(a)

    def sliding_window_attention(self, q, k, v, kind, global_index, n_global, w, output_attentions):
        from refimpl.attention import sliding_window_attention

        return sliding_window_attention(q, k, v, kind, global_index, n_global, w, output_attentions)

    def layer_norm(self, x, weight, bias, eps):
        from refimpl.model import layer_norm

        return layer_norm(x, weight, bias, eps)

    def global_attention(self, q_g, hidden, kv_global, kind, slot_used):
        from refimpl.attention import global_attention

        return global_attention(q_g, hidden, kv_global, kind, slot_used, np)

    def residual_layer_norm(self, x, residual, weight, bias, eps):
        return self.layer_norm(x + residual, weight, bias, eps)

    def gelu(self, x):
        from refimpl.model import gelu

        return gelu(x)


def _numba_unavailable() -> str | None:
    if importlib.util.find_spec("numba") is None:
        return "numba is not installed (pip install 'longformer-lab[numba]')"
    return None


def _cupy_unavailable() -> str | None:
    from gpu.backend import unavailable_reason

    return unavailable_reason()


def _make_numba():
    from refimpl.numba_backend import NumbaBackend

    return NumbaBackend()


def _make_cupy():
    from gpu.backend import CupyBackend

    return CupyBackend()


# name -> (why it cannot run here, or None; constructor)
_REGISTRY = {
    "numpy": (lambda: None, NumpyBackend),
    "numba": (_numba_unavailable, _make_numba),
    "cupy": (_cupy_unavailable, _make_cupy),
}

_instances: dict[str, object] = {}


def available_backends() -> dict[str, str | None]:
    """Every known backend mapped to None when it runs here, or to the reason it does not."""
    return {name: why() for name, (why, _) in _REGISTRY.items()}


def get_backend(name):
    """The backend called `name` (or a backend object passed through). Raises ValueError with the reason."""
    if not isinstance(name, str):
        return name
    if name not in _REGISTRY:
        raise ValueError(f"unknown backend {name!r}; known backends: {', '.join(_REGISTRY)}")
    why, make = _REGISTRY[name]
    reason = why()
    if reason is not None:
        usable = [n for n, r in available_backends().items() if r is None]
        raise ValueError(f"backend {name!r} is not available: {reason}. Available here: {', '.join(usable)}")
    if name not in _instances:
        _instances[name] = make()
    return _instances[name]


def asnumpy(x):
    """Any output array (NumPy or CuPy) as a NumPy array; tuples and lists element-wise; None stays None."""
    if x is None:
        return None
    if isinstance(x, (tuple, list)):
        return type(x)(asnumpy(e) for e in x)
    if isinstance(x, np.ndarray):
        return x
    get = getattr(x, "get", None)  # cupy.ndarray.get() copies to the host
    return get() if callable(get) else np.asarray(x)

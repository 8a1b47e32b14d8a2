"""Backends, windows and the explorer's forward pass, with per-layer progress. No streamlit here.

The model (refimpl/model.py) gives, per layer,
    local   (H, N, G + S)       the G global columns first, then the S band slots: slot t of query i in head h
                                is key i + d_h (t - W), d_h that head's dilation; S = 2W + 1, or W + 1 when the
                                layer is autoregressive (slots t = 0..W, the query itself last)
    glob    (H, N, G) or None   column s: what the s-th global token attends to (its whole row)

Progress: LongformerModel has no per-layer hook, so `run_forward` runs the model's own forward on a shallow copy
whose layers report when each one is done. The computation is the model's, unchanged: the wrappers only watch.

Legend: N tokens, H heads, L layers, W one-sided window (window // 2), G global tokens, S band slots.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from refimpl.attention import GLOBAL, LOCAL
from refimpl.backends import asnumpy, available_backends, get_backend
from refimpl.config import LongformerConfig
from refimpl.model import LongformerModel

# full windows (both sides) offered by the window control; the checkpoint's own windows are added to these
WINDOW_CHOICES = (2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
FLOAT32_LIMIT = 1024  # results of longer inputs are kept as float16 (3 significant digits, plenty to draw)


def usable_backends() -> dict[str, str | None]:
    """Every backend mapped to None when it runs here, else the reason. Stricter than available_backends(): a
    backend whose module is present but fails to build is reported here, not when the user runs it."""
    usable = {}
    for name, reason in available_backends().items():
        if reason is None:
            try:
                get_backend(name)
            except Exception as e:  # an import error in a backend module is a reason like any other
                reason = f"{type(e).__name__}: {e}"
        usable[name] = reason
    return usable


def default_backend(usable: dict[str, str | None]) -> str:
    """The fastest backend that runs here."""
    return next(name for name in ("cupy", "numba", "numpy") if usable.get(name) is None)


def config_windows(config: LongformerConfig) -> tuple[int, ...]:
    """The checkpoint's full window of every layer."""
    return tuple(config.window(layer) for layer in range(config.num_hidden_layers))


def window_options(config: LongformerConfig) -> list[int]:
    return sorted(set(WINDOW_CHOICES) | set(config_windows(config)))


def parse_dilation(spec: str, heads: int) -> tuple[int, ...]:
    """The dilation field: one int for every head ("2") or one per head ("1,1,2,2") -> H ints >= 1, or a
    ValueError saying what is allowed."""
    parts = [p.strip() for p in str(spec).replace(";", ",").split(",") if p.strip()] or ["1"]
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise ValueError(f"a dilation is a whole number >= 1, or one per head separated by commas "
                         f"(e.g. {','.join(['1'] * (heads - heads // 2) + ['2'] * (heads // 2))}); got {spec!r}")
    if len(values) == 1:
        values = values * heads
    if len(values) != heads or min(values) < 1:
        raise ValueError(f"give one dilation >= 1, or {heads} of them (one per head); got {spec!r}")
    return tuple(values)


def config_dilations(config: LongformerConfig) -> tuple[tuple[int, ...], ...]:
    """The checkpoint's dilation of every head of every layer."""
    return tuple(config.dilation(layer) for layer in range(config.num_hidden_layers))


def model_with(base: LongformerModel, backend: str, windows: tuple[int, ...], dilations=None,
               autoregressive: bool = False) -> LongformerModel:
    """A model sharing `base`'s weights, on `backend`, with these per-layer windows, per-layer (per-head)
    dilations (None: the checkpoint's) and causal windows or not. `base` is left untouched (it may be shared
    between sessions), and nothing is copied on the CPU backends."""
    changes = {"attention_window": list(windows), "autoregressive": bool(autoregressive)}
    if dilations is not None:
        changes["attention_dilation"] = [list(d) if not isinstance(d, int) else d for d in dilations]
    return LongformerModel(base.config.copy(**changes), base.params, backend=backend)


@dataclass(frozen=True)
class Band:
    """The sliding windows the explorer runs: the full window of each layer, the dilation of each head of each
    layer, and whether the windows are causal. Hashable: it is part of the cache keys."""

    windows: tuple[int, ...]
    dilations: tuple[tuple[int, ...], ...]
    autoregressive: bool = False

    def describe(self) -> str:
        w = self.windows[0] if len(set(self.windows)) == 1 else list(self.windows)
        per_layer = [str(d[0]) if len(set(d)) == 1 else ",".join(map(str, d)) for d in self.dilations]
        dil = "" if set(per_layer) == {"1"} else (
            f" · dilation {per_layer[0]}" if len(set(per_layer)) == 1 else " · dilation per layer "
            + " / ".join(per_layer))
        return f"window {w}{dil}{' · autoregressive' if self.autoregressive else ''}"


@dataclass(frozen=True)
class ForwardResult:
    """One forward pass, kept for drawing. Arrays are NumPy, float32 (or float16 for long inputs)."""

    local: tuple  # per layer (H, N, G + S)
    glob: tuple | None  # per layer (H, N, G), None without global tokens
    global_positions: np.ndarray  # (G,) ascending
    windows: tuple[int, ...]  # full window of each layer
    input_ids: np.ndarray  # (N,)
    seconds: float
    backend: str
    dilations: tuple = ()  # per layer, the dilation of each head; () for dilation 1 everywhere
    autoregressive: bool = False  # causal windows: S = W + 1 band slots

    @property
    def n(self) -> int:
        return len(self.input_ids)

    @property
    def num_layers(self) -> int:
        return len(self.local)

    @property
    def num_heads(self) -> int:
        return self.local[0].shape[0]

    @property
    def kind(self) -> np.ndarray:
        kind = np.full(self.n, LOCAL, dtype=np.int64)  # (N,)
        kind[self.global_positions] = GLOBAL
        return kind

    def w(self, layer: int) -> int:
        return self.windows[layer] // 2

    def dilation(self, layer: int) -> tuple[int, ...]:
        """The dilation of each head of `layer`, H ints."""
        return tuple(self.dilations[layer]) if self.dilations else (1,) * self.num_heads

    def offsets(self, layer: int) -> np.ndarray:
        """(H, S) key - query of each band slot of each head: d_h (t - W) for t = 0..S-1. The one place that reads
        the band's layout; every view goes through it."""
        w = self.w(layer)
        t = np.arange(w + 1 if self.autoregressive else 2 * w + 1)  # (S,)
        return np.asarray(self.dilation(layer), dtype=np.int64)[:, None] * (t - w)[None, :]  # (H, S)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.local) + sum(a.nbytes for a in (self.glob or ()))


class _Watched:
    """A layer that calls `done(layer)` after it has run."""

    def __init__(self, layer, index: int, done: Callable[[int], None]):
        self.layer, self.index, self.done = layer, index, done

    def __call__(self, *args, **kwargs):
        out = self.layer(*args, **kwargs)
        self.done(self.index)
        return out


def run_forward(model: LongformerModel, input_ids: np.ndarray, global_positions,
                progress: Callable[[int, int], None] | None = None) -> ForwardResult:
    """One forward pass with attentions. input_ids (N,); global_positions: token positions given global attention.
    progress(layers done, layers) is called after each layer."""
    ids = np.asarray(input_ids, dtype=np.int64)[None]  # (1, N)
    glob_mask = np.zeros_like(ids)
    positions = np.asarray(sorted(set(int(p) for p in global_positions)), dtype=np.int64)  # (G,)
    glob_mask[0, positions] = 1
    if progress is not None:
        total = len(model.layers)
        model = copy.copy(model)  # the cached model is shared by sessions: watch a copy's list of layers
        model.layers = [_Watched(layer, i, lambda i: progress(i + 1, total)) for i, layer in enumerate(model.layers)]
        progress(0, total)
    t0 = time.perf_counter()
    out = model(ids, attention_mask=np.ones_like(ids), global_attention_mask=glob_mask, output_attentions=True)
    local = [asnumpy(a)[0] for a in out.attentions]  # per layer (H, N, G + S)
    seconds = time.perf_counter() - t0
    dtype = np.float32 if ids.shape[1] <= FLOAT32_LIMIT else np.float16
    glob = None
    if out.global_attentions is not None:
        glob = tuple(asnumpy(a)[0].astype(dtype) for a in out.global_attentions)  # per layer (H, N, G)
    return ForwardResult(
        local=tuple(a.astype(dtype) for a in local),
        glob=glob,
        global_positions=positions,
        windows=config_windows(model.config),
        input_ids=ids[0],
        seconds=seconds,
        backend=model.backend.name,
        dilations=config_dilations(model.config),
        autoregressive=model.config.autoregressive,
    )

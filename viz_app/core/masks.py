"""The attention patterns of the paper's Figure 2 and its causal window (Beltagy, Peters, Cohan 2020, arXiv 2004.05150), as N x N
boolean masks built from the code the model itself uses: `refimpl.attention.band_keys` (which key each band slot
holds, with dilation) and `band_mask` (which band slots a query may use), plus `global_slots` for the global tokens.

    full                     every query sees every key: N^2 pairs
    sliding window           key i + t - W for t = 0 .. 2W: about N (2W + 1) pairs
    dilated sliding window   key i + d (t - W): the same count, spread over a reach of d W on each side
    global + sliding         the sliding window, plus global tokens that see, and are seen by, every token
    autoregressive           the causal sliding window of the paper's language modelling (section 4): keys
                             i + d (t - W) for t = 0 .. W only, none after the query; about N (W + 1) pairs

The masks are drawn, so N stays small (at most a few hundred); nothing here is used by the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from refimpl.attention import GLOBAL, LOCAL, band_keys, band_mask, global_slots

MAX_LENGTH = 512  # the page draws five N x N masks


@dataclass(frozen=True)
class Pattern:
    key: str  # its name in downloads
    name: str
    mask: np.ndarray  # (N, N) bool: query i attends to key j

    @property
    def pairs(self) -> int:
        return int(self.mask.sum())

    @property
    def fraction(self) -> float:
        return self.pairs / self.mask.size


def band_to_dense(band: np.ndarray, key: np.ndarray, n: int) -> np.ndarray:
    """(N, 2W+1) band flags and their key positions (N, 2W+1) -> (N, N) mask."""
    dense = np.zeros((n, n), dtype=bool)
    rows = np.broadcast_to(np.arange(n)[:, None], key.shape)  # (N, 2W+1)
    dense[rows[band], key[band]] = True
    return dense


def sliding(n: int, w: int, dilation: int = 1, autoregressive: bool = False) -> np.ndarray:
    """The (dilated, causal) sliding window as an (N, N) mask, through the model's band_keys/band_mask."""
    kind = np.full((1, n), LOCAL)  # (1, N): every token local
    key, _ = band_keys(n, w, dilation)  # (N, 2W+1)
    return band_to_dense(band_mask(kind, w, dilation, autoregressive)[0], key, n)


def global_and_sliding(n: int, w: int, global_positions) -> np.ndarray:
    """Sliding window plus global tokens, as the model computes it: a local query uses its band (band_mask drops
    the band slots of global keys, which have their own columns) and every global column; a global query sees all."""
    kind = np.full((1, n), LOCAL)
    kind[0, list(global_positions)] = GLOBAL
    key, _ = band_keys(n, w)
    mask = band_to_dense(band_mask(kind, w)[0], key, n)  # (N, N) the band of every query
    global_index, n_global = global_slots(kind)  # (1, G), (1,)
    glob = global_index[0, : n_global[0]]
    mask[:, glob] = True  # every token attends to the global tokens ...
    mask[glob, :] = True  # ... and they attend to every token
    return mask


def figure2(n: int, window: int, dilation: int, global_positions) -> list[Pattern]:
    """The five patterns for length n, full window `window` (even; W = window // 2 on each side), dilation and
    global positions. ValueError for arguments that do not describe a pattern."""
    if not 2 <= n <= MAX_LENGTH:
        raise ValueError(f"the length must lie in 2..{MAX_LENGTH}, got {n}")
    if window < 2 or window % 2:
        raise ValueError(f"the window must be even and at least 2 (W = window // 2 on each side), got {window}")
    if dilation < 1:
        raise ValueError(f"the dilation must be at least 1, got {dilation}")
    bad = [p for p in global_positions if not 0 <= p < n]
    if bad:
        raise ValueError(f"global position {bad[0]} is outside the sequence (0..{n - 1})")
    w = window // 2
    return [
        Pattern("full", "Full n²", np.ones((n, n), dtype=bool)),
        Pattern("sliding", "Sliding window", sliding(n, w)),
        Pattern("dilated", f"Dilated sliding window (d={dilation})", sliding(n, w, dilation)),
        Pattern("global_sliding", "Global + sliding window", global_and_sliding(n, w, sorted(set(global_positions)))),
        Pattern("autoregressive", f"Autoregressive (causal, d={dilation})", sliding(n, w, dilation, True)),
    ]


def explorer_settings(pattern: str, window: int, dilation: int, global_spec: str, windows_offered) -> dict:
    """The explorer's state (its widgets' keys -> values) that runs `pattern` on the text: the nearest window the
    explorer offers, the dilation for every layer, causal or not, and the global tokens (typed positions, or none).
    ValueError for a pattern that has no window (full attention)."""
    if pattern not in ("sliding", "dilated", "global_sliding", "autoregressive"):
        raise ValueError(f"pattern {pattern!r} has no sliding window to run in the explorer")
    nearest = min(windows_offered, key=lambda o: (abs(o - window), o))
    return {
        "window": nearest, "window_per_layer": False,
        "dilation": str(dilation if pattern in ("dilated", "autoregressive") else 1), "dilation_per_layer": False,
        "autoregressive": pattern == "autoregressive",
        "global_preset": "none", "global_manual": (global_spec.strip() or "0") if pattern == "global_sliding" else "",
    }

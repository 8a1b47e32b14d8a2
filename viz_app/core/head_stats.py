"""Numbers about heads over the whole document, from the model's band layout in O(N (G + S)) per head: no
N x N matrix is formed. No streamlit here.

For every layer and head:
    entropy          -sum p log p of a query's attention (nats), averaged over every query (global rows too).
                     log(S + G) is a uniform row over the window; near 0, one key takes everything.
    distance         sum p |key - query|, in tokens, averaged over every query: how far the head looks.
    global share     the part of a local query's attention that goes to the global tokens, averaged over local
                     queries (undefined without global tokens).
    within ±8        the part of a local query's attention on keys at most LOCAL_REACH tokens away (band or
                     global), averaged over local queries.
A local query's row is its G global columns (keys at the global positions) and its S band slots (slot t: key
i + d_h (t - W), d_h the head's dilation; S = 2W + 1, or W + 1 when autoregressive); a global query's row is
column s of the global attention, over all N keys.

`global_profile`: for each layer, where the global tokens' own attention goes along the document (mean over heads
and global tokens, summed into bins of positions).

Legend: N tokens, H heads, L layers, W one-sided window, G global tokens, S band slots, Q the local queries.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

import numpy as np

from viz_app.core.forward import ForwardResult

LOCAL_REACH = 8
METRICS = {  # name -> (title, unit, how to read it)
    "entropy": ("attention entropy", "nats", "low: a few keys take the weight; high: spread out"),
    "distance": ("mean attention distance", "tokens", "how far a query looks, on average"),
    "global_share": ("share to global tokens", "of a local query's attention", "high: the head reads the globals"),
    "local_share": (f"share within ±{LOCAL_REACH} tokens", "of a local query's attention",
                    "high: the head is local"),
}


def _entropy(p: np.ndarray, axis: int) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.where(p > 0, p * np.log(p), 0.0).sum(axis=axis)


@dataclass(frozen=True)
class HeadStats:
    values: dict  # metric -> (L, H) float64

    def table(self) -> list[dict]:
        """One row per layer and head."""
        L, H = next(iter(self.values.values())).shape
        return [{"layer": layer, "head": head, **{m: float(v[layer, head]) for m, v in self.values.items()}}
                for layer in range(L) for head in range(H)]

    def csv(self) -> str:
        buf = io.StringIO()
        rows = self.table()
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
        return buf.getvalue()


def layer_stats(local: np.ndarray, glob: np.ndarray | None, global_positions: np.ndarray,
                offsets: np.ndarray) -> dict:
    """The four metrics of one layer's heads: local (H, N, G + S), glob (H, N, G) or None, offsets (H, S) the
    key - query of each band slot of each head (ForwardResult.offsets). metric -> (H,)."""
    H, N, _ = local.shape
    G = len(global_positions)
    is_global = np.zeros(N, bool)
    is_global[global_positions] = True
    queries = np.flatnonzero(~is_global)  # (Q,)
    p_glob = local[:, queries, :G].astype(np.float64)  # (H, Q, G)
    p_band = local[:, queries, G:].astype(np.float64)  # (H, Q, S)
    offset = np.abs(offsets)[:, None, :]  # (H, 1, S) |key - query| of each band slot
    dist_glob = np.abs(global_positions[None, :] - queries[:, None])  # (Q, G)

    entropy_rows = [_entropy(p_glob, 2) + _entropy(p_band, 2)]  # (H, Q)
    distance_rows = [(p_band * offset).sum(2) + (p_glob * dist_glob).sum(2)]
    if G and glob is not None:
        g = glob.astype(np.float64)  # (H, N, G): column s is global token s's row
        entropy_rows.append(_entropy(g, 1))  # (H, G)
        reach = np.abs(np.arange(N)[:, None] - global_positions[None, :])  # (N, G)
        distance_rows.append((g * reach).sum(1))
    entropy = np.concatenate(entropy_rows, axis=1).mean(axis=1)  # (H,)
    distance = np.concatenate(distance_rows, axis=1).mean(axis=1)
    if len(queries):
        global_share = p_glob.sum(2).mean(1) if G else np.full(H, np.nan)
        near = (p_band * (offset <= LOCAL_REACH)).sum(2) + (p_glob * (dist_glob <= LOCAL_REACH)).sum(2)
        local_share = near.mean(1)
    else:
        global_share = local_share = np.full(H, np.nan)
    return {"entropy": entropy, "distance": distance, "global_share": global_share, "local_share": local_share}


def head_stats(result: ForwardResult) -> HeadStats:
    per_layer = [layer_stats(result.local[layer], None if result.glob is None else result.glob[layer],
                             result.global_positions, result.offsets(layer)) for layer in range(result.num_layers)]
    return HeadStats({m: np.stack([s[m] for s in per_layer]) for m in METRICS})


def global_profile(result: ForwardResult, bins: int = 128) -> tuple[np.ndarray, int] | None:
    """(L, B) where the global tokens' rows put their attention, mean over heads and global tokens, summed over
    bins of `per_bin` positions; None without global tokens. Returns (profile, per_bin)."""
    if result.glob is None:
        return None
    per_bin = max(1, -(-result.n // bins))
    B = -(-result.n // per_bin)
    out = np.zeros((result.num_layers, B))
    for layer, g in enumerate(result.glob):
        row = g.astype(np.float64).mean(axis=(0, 2))  # (N,)
        out[layer] = np.pad(row, (0, B * per_bin - result.n)).reshape(B, per_bin).sum(1)
    return out, per_bin

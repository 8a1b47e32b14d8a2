"""The `dense` backend: passes 1-3 as one N x N masked softmax in float32, O(N^2) time and memory.

The plain formulation of the paper's attention, without the band: the mask of refimpl/dense.py (written from the
paper, independent of the band code) over the full score matrix. It serves the benchmark (the quadratic baseline
Longformer replaces) and the app's exact small matrices; its band-layout probabilities are read off the full matrix,
so it also checks the band layout of every other backend.
"""

from __future__ import annotations

import numpy as np

from refimpl import ops
from refimpl.attention import LOCAL, MASKED, global_attention, head_dilations
from refimpl.backends.base import Backend, check_attention_inputs
from refimpl.dense import longformer_mask

# the dense score matrix of one call is B*H*N*N float32; past this it is refused rather than swapped to death
MAX_DENSE_BYTES = 8 << 30


class DenseBackend(Backend):
    """NumPy arrays; the local attention as a full N x N masked softmax."""

    name = "dense"
    xp = np

    def sliding_window_attention(self, q, k, v, kind, global_index, n_global, w, output_attentions, dilation=1,
                                 autoregressive=False):
        B, H, N, D, G, w = check_attention_inputs(q, k, v, kind, global_index, n_global, w, dilation,
                                                  autoregressive)
        dilations = head_dilations(dilation, H)
        if 4 * B * H * N * N > MAX_DENSE_BYTES:
            raise ValueError(f"the dense backend holds a (B, H, N, N) = ({B}, {H}, {N}, {N}) float32 matrix, "
                             f"{4 * B * H * N * N / 2**30:.1f} GiB, over its limit of {MAX_DENSE_BYTES / 2**30:.0f} "
                             "GiB; use the numpy or numba backend for long inputs")
        kind = np.asarray(kind)
        scores = q @ k.swapaxes(-1, -2)  # (B, H, N, N)
        allowed = longformer_mask(kind, w, dilations if len(set(dilations)) > 1 else dilations[0], autoregressive)
        np.copyto(scores, MASKED, where=~(allowed if allowed.ndim == 4 else allowed[:, None]))
        scores -= scores.max(axis=-1, keepdims=True)
        np.exp(scores, out=scores)
        scores /= scores.sum(axis=-1, keepdims=True)
        scores *= (kind == LOCAL)[:, None, :, None]  # rows of padding and global queries are 0
        context = scores @ v  # (B, H, N, D)
        if not output_attentions:
            return context, None
        return context, self.to_band_layout(scores, kind, global_index, n_global, w, dilations, autoregressive)

    @staticmethod
    def to_band_layout(probs, kind, global_index, n_global, w, dilations, autoregressive):
        """Full probabilities (B, H, N, N) -> (B, H, N, G + S): global columns, then band slot t = key
        i + d (t - W), S = 2W+1 (W+1 autoregressive). A band slot whose key is outside, padding or global stays 0
        (a global key's weight is in its column)."""
        B, H, N, _ = probs.shape
        G = global_index.shape[1]
        slot_used = np.arange(G)[None, :] < np.asarray(n_global)[:, None]  # (B, G)
        columns = np.take_along_axis(probs, np.asarray(global_index)[:, None, None, :], axis=-1)  # (B, H, N, G)
        columns *= slot_used[:, None, None, :]
        S = w + 1 if autoregressive else 2 * w + 1
        d = np.asarray(dilations)[:, None, None]  # (H, 1, 1)
        key = np.arange(N)[None, :, None] + d * (np.arange(S)[None, None, :] - w)  # (H, N, S)
        inside = (key >= 0) & (key < N)
        key = np.clip(key, 0, N - 1)
        band = np.take_along_axis(probs, np.broadcast_to(key, (B, H, N, S)), axis=-1)  # (B, H, N, S)
        band *= inside[None] & (kind[:, key] == LOCAL).transpose(0, 1, 2, 3)  # kind[:, key]: (B, H, N, S)
        return np.concatenate([columns, band], axis=-1)

    def global_attention(self, q_g, hidden, kv_global, kind, slot_used):
        return global_attention(q_g, hidden, kv_global, kind, slot_used, np)

    def layer_norm(self, x, weight, bias, eps):
        return ops.layer_norm(x, weight, bias, eps)

    def gelu(self, x, out=None):
        return ops.written_to(ops.gelu(x), out)

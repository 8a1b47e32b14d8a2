"""Downloads: arrays as .npz with the tokens and their character offsets beside them, statistics as CSV (see
head_stats.HeadStats.csv). No streamlit here."""

from __future__ import annotations

import io

import numpy as np

from viz_app.core.forward import ForwardResult
from viz_app.core.text import Encoded


def npz_bytes(**arrays) -> bytes:
    """Arrays as the bytes of a compressed .npz file (None values left out)."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **{k: np.asarray(v) for k, v in arrays.items() if v is not None})
    return buf.getvalue()


def layer_npz(result: ForwardResult, enc: Encoded, layer: int) -> bytes:
    """One layer's attention, every head, in the model's layout, with what is needed to read it: the tokens, the
    characters each covers ([start, end) in its segment's text) and which text that is."""
    return npz_bytes(
        local_attention=result.local[layer],  # (H, N, G + S): global columns, then band slot t = key i + d_h (t - W)
        global_attention=None if result.glob is None else result.glob[layer],  # (H, N, G)
        global_positions=result.global_positions,
        input_ids=result.input_ids,
        tokens=np.asarray(enc.tokens, dtype=str),  # (N,) as the vocabulary writes them
        token_text=np.asarray(enc.surfaces, dtype=str),  # (N,) the characters they cover
        offsets=enc.offsets,  # (N, 2)
        segment=enc.segment,  # (N,) 0 the text, 1 the second text
        window=np.int64(result.windows[layer]),
        dilation=np.asarray(result.dilation(layer), dtype=np.int64),  # (H,) slot t of query i: key i + d_h (t - W)
        autoregressive=np.bool_(result.autoregressive),  # causal: S = W + 1 slots, else 2W + 1
        layer=np.int64(layer),
    )

"""Backend agreement, behind the Backend parity page: one input through every backend that runs here (and
transformers, when installed), each output compared with the NumPy reference, layer by layer.

Tolerances, mixed absolute + relative, stated once: an output passes when |x - x_ref| <= atol + rtol |x_ref|
everywhere. Hidden states use the tests' float32 tolerance (tests/conftest.py). Attention probabilities get 1e-5
absolute rather than the tests' 2e-6: a pretrained model's sharp softmax rows, six layers deep, differ by a few
1e-6 between summation orders (transformers against the reference measures up to about 6e-6 on the default model).
"""

from __future__ import annotations

import importlib.util
import time
from dataclasses import dataclass

import numpy as np

from refimpl.backends import asnumpy

TOLERANCES = {  # output -> (atol, rtol)
    "hidden state": (2e-5, 1e-4),
    "local attention": (1e-5, 1e-4),
    "global attention": (1e-5, 1e-4),
}
REFERENCE = "numpy"
TRANSFORMERS = "transformers"
# transformers' chunked band attention needs chunks of at least 2 tokens a side: window 2 (W = 1) fails inside it
# with a RuntimeError about expanded sizes, so it is not run there
TRANSFORMERS_MIN_WINDOW = 4


@dataclass(frozen=True)
class Outputs:
    """What one implementation gave, for batch row 0: NumPy float32 arrays."""

    hidden: tuple  # per layer (N, C): the hidden state after each layer
    local: tuple  # per layer (H, N, G + 2W + 1)
    glob: tuple | None  # per layer (H, N, G)
    seconds: float


def global_mask(n: int, positions) -> np.ndarray:
    mask = np.zeros((1, n), dtype=np.int64)  # (1, N)
    mask[0, list(positions)] = 1
    return mask


def run_refimpl(model, input_ids: np.ndarray, global_positions) -> Outputs:
    """input_ids (N,) through a refimpl model (any backend)."""
    ids = np.asarray(input_ids, dtype=np.int64)[None]  # (1, N)
    t0 = time.perf_counter()
    out = model(ids, attention_mask=np.ones_like(ids),
                global_attention_mask=global_mask(ids.shape[1], global_positions),
                output_attentions=True, output_hidden_states=True)
    hidden = tuple(asnumpy(h)[0] for h in out.hidden_states[1:])
    seconds = time.perf_counter() - t0
    glob = None if out.global_attentions is None else tuple(asnumpy(a)[0] for a in out.global_attentions)
    return Outputs(hidden, tuple(asnumpy(a)[0] for a in out.attentions), glob, seconds)


def transformers_unavailable() -> str | None:
    """None when transformers and torch can be imported, else why not."""
    missing = [m for m in ("torch", "transformers") if importlib.util.find_spec(m) is None]
    if not missing:
        return None
    return (f"{' and '.join(missing)} not installed; to compare with transformers too: "
            "`pip install torch --index-url https://download.pytorch.org/whl/cpu && pip install transformers` "
            "(or `pip install -e '.[test]'`)")


def transformers_window_problem(windows) -> str | None:
    """Why transformers cannot run these per-layer windows, or None."""
    small = sorted({w for w in windows if w < TRANSFORMERS_MIN_WINDOW})
    if not small:
        return None
    return (f"transformers' chunked attention needs a window of at least {TRANSFORMERS_MIN_WINDOW} (W ≥ 2); with "
            f"window {small[0]} it fails inside its own code, so it is left out here")


def load_transformers(model_dir, windows) -> object:
    """transformers' LongformerModel from the same folder, with the same per-layer windows."""
    import transformers

    return transformers.LongformerModel.from_pretrained(str(model_dir), attention_window=list(windows)).eval()


def run_transformers(model, input_ids: np.ndarray, global_positions) -> Outputs:
    """The same input through transformers. Its global attentions keep the rows it padded the input with (to a
    multiple of the window); only the first N are compared."""
    import torch

    n = len(input_ids)
    ids = torch.as_tensor(np.asarray(input_ids, dtype=np.int64)[None])  # (1, N)
    t0 = time.perf_counter()
    with torch.no_grad():
        out = model(ids, attention_mask=torch.ones_like(ids),
                    global_attention_mask=torch.as_tensor(global_mask(n, global_positions)),
                    output_attentions=True, output_hidden_states=True)
    seconds = time.perf_counter() - t0
    hidden = tuple(h[0, :n].numpy() for h in out.hidden_states[1:])
    local = tuple(a[0, :, :n].numpy() for a in out.attentions)
    glob = None
    if len(global_positions):
        glob = tuple(a[0, :, :n].numpy() for a in out.global_attentions)
    return Outputs(hidden, local, glob, seconds)


def difference(actual: np.ndarray, expected: np.ndarray, atol: float, rtol: float) -> tuple[float, bool]:
    """(largest |actual - expected|, whether every element is within atol + rtol |expected|)."""
    if actual.shape != expected.shape:
        return float("inf"), False
    diff = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
    return float(diff.max(initial=0.0)), bool((diff <= atol + rtol * np.abs(expected)).all())


def compare(outputs: dict[str, Outputs], reference: str = REFERENCE) -> list[dict]:
    """One row per layer and output: for each implementation other than `reference`, the largest difference
    (column named after it) and whether it is within tolerance (column "<name> ok")."""
    ref = outputs[reference]
    others = [name for name in outputs if name != reference]
    rows = []
    for layer in range(len(ref.hidden)):
        for output, field in (("hidden state", "hidden"), ("local attention", "local"), ("global attention", "glob")):
            ref_layers = getattr(ref, field)
            if ref_layers is None:
                continue
            atol, rtol = TOLERANCES[output]
            row = {"layer": layer, "output": output}
            for name in others:
                got = getattr(outputs[name], field)
                if got is None:
                    row[name], row[f"{name} ok"] = float("inf"), False
                else:
                    row[name], row[f"{name} ok"] = difference(got[layer], ref_layers[layer], atol, rtol)
            rows.append(row)
    return rows


def verdict(rows: list[dict], name: str) -> tuple[bool, float]:
    """(every output of `name` within tolerance, its largest difference)."""
    return all(row[f"{name} ok"] for row in rows), max((row[name] for row in rows), default=0.0)

"""Complexity scaling: time and peak memory against sequence length, for dense attention and every backend, from the
results `longformer-lab bench` committed (benchmarks/) or measured live (a small range) in this process.

The live measurement times the part of attention where dense and sliding-window attention differ: passes 1-3 of
refimpl/attention.py, called through the backend contract `sliding_window_attention(q, k, v, kind, ...)` on prepared
inputs, without probabilities. "dense" is the benchmark's DenseBackend (one masked N x N softmax: memory N^2), the
others are the backends (memory N (2W+1)). The shape is the app's default model's: 12 heads of 32, window 128
(W = 64), the first token global, batch 1. The projections around the passes cost the same O(N) for every method, so
the committed sweeps (whole layers at longformer-base's shape) show the N^2 only at longer lengths.
    time    the fastest of `repeat` calls after a warm-up call (as timeit advises: slower calls measure the machine's
            other work, not the code)
    memory  the peak that tracemalloc saw allocated during one call: NumPy's arrays, including those the Numba
            backend allocates around its kernels (its kernels' own scratch is a few KiB and not traced)
`measure_dilations` times one backend's passes 1-3 with the band dilated by d (key i + d (t - W)): the same 2W+1
keys per query, only farther apart, so the cost stays O(N W) and the lines share the slope 1.
Slopes are fitted as the benchmark fits them (`fitted_slope`): log y against log n over the larger half of the
lengths, where fixed costs no longer dominate. About 2 for dense, 1 for a sliding window.
"""

from __future__ import annotations

import json
import time
import tracemalloc
from pathlib import Path

import numpy as np

import benchmarks
from benchmarks.report import fitted_slope
from refimpl.attention import GLOBAL, LOCAL, global_slots
from refimpl.backends import get_backend

LIVE_LENGTHS = (256, 512, 1024, 2048)
HEADS, HEAD_SIZE, WINDOW = 12, 32, 128  # the default model's attention (all-MiniLM-L6-v2 as a Longformer)
# after the warm-up: where OpenBLAS's idle threads still spin after a product (the numba backend stops that when it
# is made; another method does not), a short pause keeps them from taking the cores from the method being timed
SETTLE_SECONDS = 0.1
DENSE = "dense"
METRICS = ("seconds", "peak_bytes")


# ---------------------------------------------------------------------------------------------------------------
# Committed results
# ---------------------------------------------------------------------------------------------------------------

WHAT = {"kernel": "the band kernel (passes 1-3)", "attention": "one attention layer",
        "model": "the whole model (12 layers)"}  # the benchmark's sweeps
TIMED = {"kernel": "one call of passes 1-3", "attention": "one attention call",
         "model": "one forward pass of the whole model"}  # what each call is


def results_dir() -> Path:
    """benchmarks/, where `longformer-lab bench` writes scaling_<what>.json."""
    return Path(benchmarks.__file__).resolve().parent


def find_results(folder: Path | None = None) -> list[Path]:
    """The benchmark's result files in `folder` (default benchmarks/): scaling_attention.json, scaling_model.json."""
    return sorted((results_dir() if folder is None else folder).glob("scaling_*.json"))


def load_results(path: Path) -> tuple[list[dict], dict]:
    """(records, metadata) of a results file. Records: {"method", "n", "seconds", "peak_bytes", "error"}, a value
    that was not measured being None. ValueError for a file that is not the benchmark's results."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"cannot read {path}: {e}") from None
    if not isinstance(data, dict) or not isinstance(data.get("results"), list) or not data["results"]:
        raise ValueError(f"{path} is not benchmark results: it needs a non-empty list under 'results'")
    records = []
    for row in data["results"]:
        if not isinstance(row, dict) or not {"method", "n"} <= set(row):
            raise ValueError(f"{path}: every result needs 'method' and 'n', got {row!r:.200}")
        records.append({
            "method": str(row["method"]),
            "n": int(row["n"]),
            "seconds": None if row.get("seconds") is None else float(row["seconds"]),
            "peak_bytes": None if row.get("peak_bytes") is None else float(row["peak_bytes"]),
            "error": row.get("error") or row.get("memory_error"),
        })
    return records, {k: v for k, v in data.items() if k != "results"}


# ---------------------------------------------------------------------------------------------------------------
# Series, slopes
# ---------------------------------------------------------------------------------------------------------------

def series(records: list[dict]) -> dict:
    """method -> {"n": [...], "seconds": [...], "peak_bytes": [...]}, sorted by n (dense first)."""
    out = {}
    for r in sorted(records, key=lambda r: (r["method"] != DENSE, r["method"], r["n"])):
        s = out.setdefault(r["method"], {"n": [], "seconds": [], "peak_bytes": []})
        s["n"].append(r["n"])
        s["seconds"].append(r["seconds"])
        s["peak_bytes"].append(r["peak_bytes"])
    return out


def fits(by_method: dict) -> dict:
    """(method, metric) -> fitted slope."""
    return {(m, metric): s for m, data in by_method.items() for metric in METRICS
            if (s := fitted_slope(data["n"], data[metric])) is not None}


# ---------------------------------------------------------------------------------------------------------------
# Live measurement
# ---------------------------------------------------------------------------------------------------------------

def lengths_up_to(n_max: int, n_min: int = LIVE_LENGTHS[0]) -> tuple[int, ...]:
    """n_min, 2 n_min, ... up to n_max."""
    out = []
    n = n_min
    while n <= n_max:
        out.append(n)
        n *= 2
    return tuple(out)


def attention_inputs(n: int, seed: int = 0):
    """q, k, v (1, H, N, D) float32 (q scaled by 1/sqrt(D)), kind (1, N) int8 with the first token global, and the
    global slots: the arguments of sliding_window_attention."""
    rng = np.random.default_rng(seed)
    q, k, v = (rng.standard_normal((1, HEADS, n, HEAD_SIZE), dtype=np.float32) for _ in range(3))
    q *= np.float32(HEAD_SIZE ** -0.5)
    kind = np.full((1, n), LOCAL, dtype=np.int8)  # (1, N)
    kind[0, 0] = GLOBAL
    global_index, n_global = global_slots(kind)  # (1, 1), (1,)
    return q, k, v, kind, global_index, n_global


def method_call(method: str, n: int, dilation: int = 1):
    """A no-argument function that runs passes 1-3 of `method` at length n (band dilated by `dilation`), on inputs
    prepared beforehand."""
    backend = get_backend(method)  # "dense" is the full n x n formulation, a backend like the others
    q, k, v, kind, global_index, n_global = (backend.asarray(a) for a in attention_inputs(n))

    def call():
        context, _ = backend.sliding_window_attention(q, k, v, kind, global_index, n_global, WINDOW // 2, False,
                                                      dilation, False)
        return backend.asnumpy(context[:, :, :1])  # on a GPU: waits for the kernels, copies one row

    return call


def measure_one(method: str, n: int, repeat: int = 3, dilation: int = 1) -> dict:
    """The fastest of `repeat` calls after a warm-up and a pause, and the traced peak of one more call."""
    call = method_call(method, n, dilation)
    call()  # warm-up: compilation, caches, first touch of memory
    time.sleep(SETTLE_SECONDS)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    tracemalloc.start()
    try:
        call()
        peak = float(tracemalloc.get_traced_memory()[1])
    finally:
        tracemalloc.stop()
    return {"method": method, "n": n, "seconds": float(min(times)), "peak_bytes": peak, "error": None}


def measure(methods, lengths=LIVE_LENGTHS, repeat: int = 3, progress=None, dilations=(1,)) -> list[dict]:
    """Measure every method at every length (and every dilation: then each record's method is "<method>, d = d");
    progress(fraction, message) is called before each measurement. A method that fails at a length gets a record
    with its error (and no numbers), as the benchmark records it."""
    jobs = [(m, n, d) for n in lengths for m in methods for d in dilations]
    records = []
    for k, (method, n, d) in enumerate(jobs):
        name = method if tuple(dilations) == (1,) else f"{method}, d = {d}"
        if progress is not None:
            progress(k / len(jobs), f"{name} at n = {n:,}")
        try:
            records.append({**measure_one(method, n, repeat, d), "method": name})
        except Exception as e:  # a failing method is a result to show, not the end of the measurement
            records.append({"method": name, "n": n, "seconds": None, "peak_bytes": None,
                            "error": f"{type(e).__name__}: {e}"})
    if progress is not None:
        progress(1.0, "done")
    return records


DILATIONS = (1, 2, 4)  # the dilation sweep's bands: same keys per query, 1, 2 and 4 tokens apart


def measure_dilations(method: str, lengths=LIVE_LENGTHS, dilations=DILATIONS, repeat: int = 3,
                      progress=None) -> list[dict]:
    """One backend's passes 1-3 at each length with each dilation: records named "<method>, d = d"."""
    return measure([method], lengths, repeat, progress, dilations)

"""Time and peak memory against sequence length: one attention layer and the whole model, for every implementation.

    longformer-lab bench                              both sweeps, the default lengths, every implementation here
    longformer-lab bench --quick                      a sweep of seconds, to check the wiring
    python -m benchmarks.scaling --what attention --lengths 4096,16384 --backends numba,transformers

The shape is longformer-base's: 12 layers, hidden 768, 12 heads of 64, attention window 512 (W = 256), intermediate
3072, vocabulary 50265; batch 1, the first token global, float32, random weights that every implementation shares
(transformers gets a copy of the same arrays, so all of them compute the same numbers; the largest difference to
transformers' output is recorded with each measurement).

Implementations ("methods"):
    dense         passes 1-3 as one masked N x N softmax in NumPy (the rules of refimpl/dense.py), the rest as ours
    numpy         the reference backend (refimpl/attention.py)
    numba         the Numba backend (refimpl/numba_backend.py)
    cupy          the CuPy backend, where a GPU is
    transformers  transformers' PyTorch LongformerSelfAttention / LongformerModel, torch.set_num_threads(cores)
"attention" is one layer's self-attention: the six projections, passes 1-4, hidden (1, N, 768) -> context (1, N, 768),
transformers' LongformerSelfAttention being the same scope. "model" is LongformerModel's forward from token ids.

Time: every size runs in one fresh process that builds all implementations, runs each once (warm-up: Numba's compile
or cache load, the check of the outputs), then `--repeats` rounds in which the implementations take turns, in a
rotating order; the median is reported. The model sweep also times NumPy's sgemm on the FFN shape in every round: the
"matmul floor" is the model's floating-point work (projections, FFN, band products, counted below) at that rate.

Memory: each (implementation, size) runs once more in its own fresh process: after a warm-up on 512 tokens, the
kernel's high-water mark of resident memory is reset (/proc/self/clear_refs) and read again after the call (VmHWM).
`peak_bytes` is that peak minus the resident memory just before the call: what the call itself needed, the weights
and the inputs (the same for all) and each library's import excluded; `peak_rss_bytes` is the whole process's peak.

The children run with OPENBLAS_THREAD_TIMEOUT=4: NumPy's OpenBLAS otherwise keeps its idle threads spinning for
2^28 cycles after every product, and on 2 cores they take a third of the CPU from the Numba kernel that follows
(measured: the band attention at 4096 tokens, 60 ms alone, 100 ms right after a product). OPENBLAS_CORETYPE and
OPENBLAS_L2_SIZE are removed in the children, so that OpenBLAS picks its kernel for this CPU (recorded). The Numba
backend itself sets OMP_WAIT_POLICY=PASSIVE for its OpenMP threads when it is imported; torch is imported before it
in the timing process, so transformers keeps PyTorch's default.

Writes, in --out: scaling_<what>.json ({"results": [{"method", "n", "seconds", "peak_bytes", ...}], meta}),
scaling_<what>.md (the table) and scaling_<what>.html (log-log plots with fitted slopes and n, n^2 guides).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

METHODS = ("dense", "numpy", "numba", "cupy", "transformers")
ATTENTION_LENGTHS = (512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072)
MODEL_LENGTHS = (512, 1024, 2048, 4096)
QUICK = {"attention": (512, 1024, 2048), "model": (512, 1024)}

# Longest input each method runs at by default (--no-caps lifts these). Memory on a 24 GiB machine shared with
# others, and the run time: dense needs 12 N^2 floats per layer (12.9 GB at 16384); the reference keeps about five
# (H, N, 2W+1) arrays (3 GB each at 131072), transformers about as much; the full sweep must fit in ~15 minutes.
MAX_LENGTH = {
    "attention": {"dense": 8192, "numpy": 16384, "transformers": 32768},
    "model": {"dense": 2048},
}

SHAPE = dict(vocab_size=50265, hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
             attention_window=512, layer_norm_eps=1e-5, pad_token_id=1, bos_token_id=0, eos_token_id=2,
             sep_token_id=2, type_vocab_size=1)
WARMUP_LENGTH = 512
CHILD_ENV = {"OPENBLAS_THREAD_TIMEOUT": "4"}
CHILD_ENV_REMOVED = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


# ---------------------------------------------------------------------------------------------------------------
# What is counted
# ---------------------------------------------------------------------------------------------------------------

def model_flops(n: int, layers: int = 12, C: int = 768, F: int = 3072, w: int = 256, G: int = 1) -> float:
    """Floating-point operations of the model's forward (multiply-add = 2), the products only:
    per layer q, k, v, key_global, value_global and the attention output over all N tokens (6 N C^2 products),
    the FFN (2 N C F), the band scores and context (2 N (2W+1) C), and the G global rows (2 G N C)."""
    per_layer = 2 * (6 * n * C * C + 2 * n * C * F + 2 * n * (2 * w + 1) * C + 2 * G * n * C)
    return float(layers * per_layer)


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


# ---------------------------------------------------------------------------------------------------------------
# The implementations (these run in the child processes)
# ---------------------------------------------------------------------------------------------------------------

class DenseBackend:
    """Passes 1-3 as one N x N masked softmax, in float32 NumPy, in place: O(N^2) memory, O(N^2 D) time."""

    name = "dense"
    xp = np

    def __init__(self):
        from refimpl.backends.numpy import NumpyBackend

        self._numpy = NumpyBackend()
        self.layer_norm, self.gelu, self.asarray, self.asnumpy = (
            self._numpy.layer_norm, self._numpy.gelu, self._numpy.asarray, self._numpy.asnumpy)

    def sliding_window_attention(self, q, k, v, kind, global_index, n_global, w, output_attentions):
        from refimpl.attention import LOCAL, MASKED
        from refimpl.dense import longformer_mask

        scores = q @ k.swapaxes(-1, -2)  # (B, H, N, N)
        np.copyto(scores, MASKED, where=~longformer_mask(kind, w)[:, None])
        scores -= scores.max(axis=-1, keepdims=True)
        np.exp(scores, out=scores)
        scores /= scores.sum(axis=-1, keepdims=True)
        scores *= (np.asarray(kind) == LOCAL)[:, None, :, None]  # rows of padding and global queries are 0
        return scores @ v, None  # (B, H, N, D); no band layout of the probabilities


def make_config(max_tokens: int, layers: int):
    from refimpl.config import LongformerConfig

    return LongformerConfig(**{**SHAPE, "num_hidden_layers": layers,
                               "max_position_embeddings": max(max_tokens, WARMUP_LENGTH) + 2})


def make_params(config, seed: int = 0) -> dict[str, np.ndarray]:
    """Random weights: N(0, 0.02) as transformers initialises them (biases too, so that a bias that is lost shows),
    LayerNorm weights 1."""
    from refimpl.io.checkpoint import encoder_shapes

    rng = np.random.default_rng(seed)
    return {name: np.ones(shape, np.float32) if name.endswith("LayerNorm.weight")
            else rng.standard_normal(shape, dtype=np.float32) * np.float32(0.02)
            for name, shape in encoder_shapes(config, pooler=True).items()}


def transformers_config(config):
    import transformers

    layers = config.num_hidden_layers
    return transformers.LongformerConfig(**{**SHAPE, "num_hidden_layers": layers,
                                            "attention_window": [SHAPE["attention_window"]] * layers,
                                            "max_position_embeddings": config.max_position_embeddings})


def torch_threads() -> None:
    import torch

    torch.set_num_threads(cores())


def uninitialised():
    """transformers' context that skips the random initialisation (the weights are loaded right after)."""
    try:
        from transformers.initialization import no_init_weights
    except ImportError:
        import contextlib

        return contextlib.nullcontext()
    return no_init_weights()


def make_backend(method):
    from refimpl.backends import get_backend

    return DenseBackend() if method == "dense" else get_backend(method)


def attention_runner(method: str, config, params: dict, n: int):
    """A function that runs one attention layer on fixed inputs of n tokens and returns its output (1, n, C)."""
    from refimpl.attention import GLOBAL, LOCAL, global_slots

    rng = np.random.default_rng(n)
    hidden = rng.standard_normal((1, n, config.hidden_size), dtype=np.float32)  # (1, N, C)
    kind = np.full((1, n), LOCAL, np.int8)
    kind[0, 0] = GLOBAL
    prefix = "encoder.layer.0.attention.self."
    layer_params = {k[len(prefix):]: v for k, v in params.items() if k.startswith(prefix)}

    if method == "transformers":
        import torch
        from transformers.models.longformer.modeling_longformer import LongformerSelfAttention as TorchAttention

        with uninitialised():
            module = TorchAttention(transformers_config(config), layer_id=0).eval()
        module.load_state_dict({k: torch.from_numpy(v) for k, v in layer_params.items()}, assign=True)
        mask = torch.zeros((1, n))
        mask[0, 0] = torch.finfo(torch.float32).max  # transformers' encoding of a global token
        hidden_t = torch.from_numpy(hidden)

        def run():
            with torch.inference_mode():
                out = module(hidden_t, attention_mask=mask, is_index_masked=mask < 0, is_index_global_attn=mask > 0,
                             is_global_attn=True)[0]
            return out.numpy()
        return run

    from refimpl.attention import LongformerSelfAttention

    backend = make_backend(method)
    layer = LongformerSelfAttention({k: backend.asarray(v) for k, v in layer_params.items()}, config, 0, backend)
    global_index, n_global = global_slots(kind)
    inputs = [backend.asarray(a) for a in (hidden, kind, global_index, n_global)]

    def run():
        context, _, _ = layer(*inputs)
        return backend.asnumpy(context)
    return run


def model_runner(method: str, config, params: dict, n: int):
    """A function that runs LongformerModel on fixed token ids of length n and returns last_hidden_state."""
    rng = np.random.default_rng(n)
    ids = rng.integers(3, config.vocab_size, size=(1, n))
    glob = np.zeros((1, n), np.int64)
    glob[0, 0] = 1

    if method == "transformers":
        import torch
        import transformers

        with uninitialised():
            model = transformers.LongformerModel(transformers_config(config)).eval()
        # assign=True: transformers' parameters are our arrays, not a copy (the same weights, the same memory)
        missing, unexpected = model.load_state_dict({k: torch.from_numpy(v) for k, v in params.items()},
                                                    strict=False, assign=True)
        if unexpected or any(not k.endswith("position_ids") for k in missing):
            raise RuntimeError(f"weights do not line up: missing {missing}, unexpected {unexpected}")
        ids_t, glob_t = torch.from_numpy(ids), torch.from_numpy(glob)

        def run():
            with torch.inference_mode():
                return model(input_ids=ids_t, global_attention_mask=glob_t).last_hidden_state.numpy()
        return run

    from refimpl.model import LongformerModel

    backend = make_backend(method)
    model = LongformerModel(config, params, backend=backend)

    def run():
        return backend.asnumpy(model(ids, global_attention_mask=glob).last_hidden_state)
    return run


RUNNERS = {"attention": attention_runner, "model": model_runner}


def sgemm_seconds(a, b) -> float:
    t = time.perf_counter()
    a @ b
    return time.perf_counter() - t


def blas_description() -> dict:
    """NumPy's BLAS: name and version from its build config and, for OpenBLAS, the kernel it chose at run time."""
    info = {}
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        info = {"name": blas.get("name"), "version": blas.get("version")}
    except Exception:  # an older NumPy or another build: the description is optional
        pass
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line.lower() and line.strip().endswith(".so")}
        for path in paths:
            lib = ctypes.CDLL(path)
            for symbol in ("scipy_openblas_get_corename64_", "openblas_get_corename64_", "openblas_get_corename"):
                if hasattr(lib, symbol):
                    getattr(lib, symbol).restype = ctypes.c_char_p
                    info["openblas_core"] = getattr(lib, symbol)().decode()
                    break
    except OSError:
        pass
    return info


def time_worker(spec: dict) -> dict:
    """One size, every method: warm-up, then `repeats` rounds in rotating order. Runs in a fresh process."""
    if "transformers" in spec["methods"]:
        torch_threads()
    what, n, methods, repeats = spec["what"], spec["n"], spec["methods"], spec["repeats"]
    config = make_config(n, 1 if what == "attention" else SHAPE["num_hidden_layers"])
    params = make_params(config)
    runners = {m: RUNNERS[what](m, config, params, n) for m in methods}
    outputs = {m: run() for m, run in runners.items()}  # warm-up
    reference = outputs.get("transformers", outputs.get("numpy"))
    max_diff = {m: float(np.abs(out - reference).max()) for m, out in outputs.items()} if reference is not None else {}
    del outputs
    a = np.ones((min(n, 4096), 768), np.float32)
    b = np.ones((768, 3072), np.float32)
    seconds = {m: [] for m in methods}
    sgemm = []
    for r in range(repeats):
        order = methods[r % len(methods):] + methods[:r % len(methods)]
        for m in order:
            t = time.perf_counter()
            runners[m]()
            seconds[m].append(time.perf_counter() - t)
        if what == "model":
            sgemm.append(2 * a.shape[0] * 768 * 3072 / sgemm_seconds(a, b))
    return {"seconds": seconds, "max_abs_diff": max_diff, "sgemm_flops_per_s": sgemm}


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def memory_worker(spec: dict) -> dict:
    """One method at one size, in a fresh process: the resident-memory peak of one call above what was resident
    before it. The warm-up's freed memory is handed back to the system first (malloc_trim), so that memory an
    allocator kept from the warm-up cannot hide part of the call's peak."""
    what, n, method = spec["what"], spec["n"], spec["method"]
    if method == "transformers":
        torch_threads()
    config = make_config(n, 1 if what == "attention" else SHAPE["num_hidden_layers"])
    params = make_params(config)
    RUNNERS[what](method, config, params, WARMUP_LENGTH)()  # compile, load caches, initialise libraries
    run = RUNNERS[what](method, config, params, n)
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the high-water mark VmHWM to the current resident size
    before = _status_kib("VmRSS")
    run()
    peak = _status_kib("VmHWM")
    return {"peak_bytes": (peak - before) * 1024, "peak_rss_bytes": peak * 1024}


# ---------------------------------------------------------------------------------------------------------------
# The parent: children, progress, results
# ---------------------------------------------------------------------------------------------------------------

def child_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in CHILD_ENV_REMOVED}
    env.update(CHILD_ENV)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


def run_child(spec: dict, timeout: float) -> dict:
    """Run a worker in a fresh Python; its last stdout line is its JSON answer."""
    try:
        result = subprocess.run([sys.executable, "-m", "benchmarks.scaling", "--worker", json.dumps(spec)],
                                env=child_env(), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"took longer than {timeout:.0f} s"}
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        return {"error": " | ".join(tail) or f"exit status {result.returncode}"}
    return json.loads(result.stdout.strip().splitlines()[-1])


def available_methods(requested) -> tuple[list[str], dict[str, str]]:
    """The requested methods that run here, and why the others do not."""
    import importlib.util

    from refimpl.backends import available_backends

    reasons = {name: r for name, r in available_backends().items() if name in METHODS}
    reasons["dense"] = None
    reasons["transformers"] = (None if importlib.util.find_spec("transformers") and importlib.util.find_spec("torch")
                               else "transformers and torch are not installed")
    wanted = list(requested) if requested else list(METHODS)
    unknown = [m for m in wanted if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    usable = [m for m in wanted if reasons[m] is None]
    skipped = {m: reasons[m] for m in wanted if reasons[m] is not None}
    return usable, skipped


def sweep(what: str, lengths, methods, repeats: int, caps: bool, progress) -> tuple[list[dict], dict]:
    records, notes = [], {}
    for n in lengths:
        here = [m for m in methods if not caps or n <= MAX_LENGTH[what].get(m, math.inf)]
        for m in set(methods) - set(here):
            notes[m] = f"not run above {MAX_LENGTH[what][m]} tokens (memory or time; --no-caps runs it)"
            if m == "dense":
                notes[m] += f"; at {n} its N x N scores alone would take {12 * n * n * 4 / 2**30:,.0f} GiB per layer"
        progress.set_description(f"{what} n={n}: time")
        timed = run_child({"role": "time", "what": what, "n": n, "methods": here, "repeats": repeats}, timeout=3600)
        progress.update(1)
        for m in here:
            progress.set_description(f"{what} n={n}: memory of {m}")
            memory = run_child({"role": "memory", "what": what, "n": n, "method": m}, timeout=1800)
            progress.update(1)
            rec = {"what": what, "method": m, "n": n, "seconds": None, "peak_bytes": memory.get("peak_bytes"),
                   "peak_rss_bytes": memory.get("peak_rss_bytes")}
            if "error" in timed:
                rec["error"] = timed["error"]
            else:
                times = timed["seconds"][m]
                rec.update(seconds=float(np.median(times)), all_seconds=times,
                           max_abs_diff=timed["max_abs_diff"].get(m))
                if what == "model" and timed["sgemm_flops_per_s"]:
                    rate = float(np.median(timed["sgemm_flops_per_s"]))
                    rec.update(flops=model_flops(n), sgemm_flops_per_s=rate, floor_seconds=model_flops(n) / rate)
            if "error" in memory:
                rec["memory_error"] = memory["error"]
            records.append(rec)
    return records, notes


def with_ratios(records: list[dict]) -> list[dict]:
    """Add speedup (transformers' time / this time) and memory_ratio (this peak / transformers') per size."""
    ref = {r["n"]: r for r in records if r["method"] == "transformers"}
    for r in records:
        t = ref.get(r["n"])
        if t and t.get("seconds") and r.get("seconds"):
            r["speedup_vs_transformers"] = t["seconds"] / r["seconds"]
        if t and t.get("peak_bytes") and r.get("peak_bytes") is not None:
            r["memory_vs_transformers"] = r["peak_bytes"] / t["peak_bytes"]
        if r.get("floor_seconds") and r.get("seconds"):
            r["fraction_of_floor"] = r["floor_seconds"] / r["seconds"]
    return records


def fitted_slope(ns, ys) -> float | None:
    """Slope of log y against log n over the larger half of the points (where fixed costs no longer dominate)."""
    pts = sorted((n, y) for n, y in zip(ns, ys) if y)
    if len(pts) < 2:
        return None
    pts = pts[-max(2, (len(pts) + 1) // 2):]
    return float(np.polyfit(np.log([p[0] for p in pts]), np.log([p[1] for p in pts]), 1)[0])


def markdown_table(what: str, records: list[dict], methods, notes: dict) -> str:
    mib = 1 << 20
    lines = [f"### {'One attention layer' if what == 'attention' else 'The whole model (12 layers)'}", ""]
    head = ["n"]
    for m in methods:
        head += [f"{m} s", f"{m} x"]
    lines += ["Time: median seconds, and transformers' time / this time (x > 1: faster than transformers).", "",
              "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    by = {(r["n"], r["method"]): r for r in records}
    lengths = sorted({r["n"] for r in records})
    for n in lengths:
        row = [str(n)]
        for m in methods:
            r = by.get((n, m))
            row.append(f"{r['seconds']:.3g}" if r and r.get("seconds") else "-")
            row.append(f"{r['speedup_vs_transformers']:.2f}" if r and r.get("speedup_vs_transformers") else "-")
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "Peak memory of the call: MiB above what was resident before it, and this / transformers'.", "",
              "| " + " | ".join(["n"] + [f"{m} {s}" for m in methods for s in ("MiB", "x")]) + " |",
              "|" + "---|" * (1 + 2 * len(methods))]
    for n in lengths:
        row = [str(n)]
        for m in methods:
            r = by.get((n, m))
            row.append(f"{r['peak_bytes'] / mib:.0f}" if r and r.get("peak_bytes") is not None else "-")
            row.append(f"{r['memory_vs_transformers']:.2f}" if r and r.get("memory_vs_transformers") else "-")
        lines.append("| " + " | ".join(row) + " |")
    if what == "model":
        lines += ["", "Against the matmul floor (the products' FLOPs at NumPy's sgemm rate, measured in the same "
                  "rounds): floor seconds / this time.", "",
                  "| n | GFLOP | sgemm GFLOP/s | floor s | " + " | ".join(methods) + " |",
                  "|" + "---|" * (4 + len(methods))]
        for n in lengths:
            first = next((by[(n, m)] for m in methods if (n, m) in by and by[(n, m)].get("floor_seconds")), None)
            if first is None:
                continue
            row = [str(n), f"{first['flops'] / 1e9:.0f}", f"{first['sgemm_flops_per_s'] / 1e9:.0f}",
                   f"{first['floor_seconds']:.2f}"]
            row += [f"{by[(n, m)]['fraction_of_floor']:.0%}" if (n, m) in by and by[(n, m)].get("fraction_of_floor")
                    else "-" for m in methods]
            lines.append("| " + " | ".join(row) + " |")
    slopes = []
    for m in methods:
        rs = [r for r in records if r["method"] == m]
        st, sm = fitted_slope([r["n"] for r in rs], [r.get("seconds") for r in rs]), \
            fitted_slope([r["n"] for r in rs], [r.get("peak_bytes") for r in rs])
        slopes.append(f"{m}: time {st:.2f}" if st is not None else f"{m}: time -")
        slopes[-1] += f", memory {sm:.2f}" if sm is not None else ""
    lines += ["", "Fitted log-log slopes (larger half of the lengths): " + "; ".join(slopes) + "."]
    diffs = [f"{r['method']} {r['max_abs_diff']:.1e}" for r in records
             if r.get("max_abs_diff") is not None and r["n"] == lengths[0] and r["method"] != "transformers"]
    if diffs:
        lines.append(f"Largest |output - transformers'| at n={lengths[0]}: " + ", ".join(diffs) + ".")
    for m, note in notes.items():
        lines.append(f"- {m}: {note}")
    errors = [f"- {r['method']} at {r['n']}: {r.get('error') or r.get('memory_error')}" for r in records
              if r.get("error") or r.get("memory_error")]
    lines += errors
    return "\n".join(lines) + "\n"


def write_plot(path: Path, what: str, records: list[dict], methods) -> str | None:
    """Log-log time and memory against n, fitted slopes in the legend, dashed n and n^2 guides. plotly -> HTML."""
    try:
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots
    except ImportError:
        return None
    fig = make_subplots(rows=1, cols=2, subplot_titles=("time (s)", "peak memory of the call (bytes)"))
    for col, metric in ((1, "seconds"), (2, "peak_bytes")):
        anchor = None
        for m in methods:
            pts = sorted((r["n"], r[metric]) for r in records if r["method"] == m and r.get(metric))
            if not pts:
                continue
            s = fitted_slope(*zip(*pts))
            name = f"{m} (slope {s:.2f})" if s is not None else m
            fig.add_trace(go.Scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], mode="lines+markers", name=name,
                                     legendgroup=m, showlegend=col == 1), row=1, col=col)
            anchor = anchor or pts[0]
        if anchor:
            n0, y0 = anchor
            ns = sorted({r["n"] for r in records})
            for power, label in ((1, "n"), (2, "n^2")):
                fig.add_trace(go.Scatter(x=ns, y=[y0 * (n / n0) ** power for n in ns], mode="lines", name=label,
                                         line=dict(dash="dash", color="gray" if power == 1 else "silver"),
                                         legendgroup=label, showlegend=col == 1), row=1, col=col)
    fig.update_xaxes(type="log", title_text="sequence length n")
    fig.update_yaxes(type="log")
    fig.update_layout(title=f"Longformer {what}: scaling with sequence length (longformer-base shape)")
    fig.write_html(path, include_plotlyjs="cdn")
    return str(path)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--what", choices=("attention", "model", "both"), default="both",
                        help="one attention layer, the whole model, or both (default)")
    parser.add_argument("--lengths", help="comma-separated sequence lengths (default: attention "
                        f"{','.join(map(str, ATTENTION_LENGTHS))}; model {','.join(map(str, MODEL_LENGTHS))})")
    parser.add_argument("--backends", help=f"comma-separated methods out of {', '.join(METHODS)} "
                        "(default: every one that runs here)")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds per size after the warm-up (default 3)")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent),
                        help="folder for the JSON, Markdown and HTML results (default: benchmarks/)")
    parser.add_argument("--quick", action="store_true", help="a few small lengths and one round: checks the wiring")
    parser.add_argument("--no-caps", action="store_true", help="run every method at every length (see MAX_LENGTH)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)


def run(args) -> int:
    if args.worker:  # a child: one measurement, answered as one JSON line
        spec = json.loads(args.worker)
        print(json.dumps({"time": time_worker, "memory": memory_worker, "probe": probe}[spec["role"]](spec)))
        return 0
    from tqdm import tqdm

    if args.repeats < 1:
        raise ValueError(f"--repeats must be >= 1, got {args.repeats}")
    whats = ("attention", "model") if args.what == "both" else (args.what,)
    methods, skipped = available_methods(args.backends.split(",") if args.backends else None)
    if not methods:
        raise ValueError(f"none of the requested methods runs here: {skipped}")
    repeats = 1 if args.quick else args.repeats
    plan = {}
    for what in whats:
        if args.lengths:
            lengths = sorted({int(x) for x in args.lengths.split(",")})
        else:
            lengths = QUICK[what] if args.quick else (ATTENTION_LENGTHS if what == "attention" else MODEL_LENGTHS)
        if "transformers" in methods and any(n % SHAPE["attention_window"] for n in lengths) and what == "attention":
            raise ValueError("transformers' attention layer needs lengths that are multiples of the window (512)")
        plan[what] = lengths
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    steps = sum(len(ls) * (1 + len(methods)) for ls in plan.values())
    meta = {"command": " ".join(["longformer-lab", *sys.argv[1:]]) if sys.argv[0].endswith("longformer-lab")
            else " ".join(["python -m benchmarks.scaling", *sys.argv[1:]]),
            "machine": f"{platform.machine()}, {cores()} cores, {platform.processor() or platform.platform()}",
            "child_env": CHILD_ENV, "child_env_removed": list(CHILD_ENV_REMOVED), "repeats": repeats,
            "skipped": skipped, "shape": SHAPE, "numpy": np.__version__}
    meta.update(run_child({"role": "probe"}, timeout=600))
    written = []
    with tqdm(total=steps, unit="run") as progress:
        for what, lengths in plan.items():
            records, notes = sweep(what, lengths, methods, repeats, not args.no_caps, progress)
            records = with_ratios(records)
            table = markdown_table(what, records, methods, notes)
            (out / f"scaling_{what}.json").write_text(
                json.dumps({**meta, "what": what, "notes": notes, "results": records}, indent=1) + "\n")
            (out / f"scaling_{what}.md").write_text(table)
            written += [out / f"scaling_{what}.json", out / f"scaling_{what}.md"]
            html = write_plot(out / f"scaling_{what}.html", what, records, methods)
            if html:
                written.append(Path(html))
            tqdm.write(table)
    for m, why in skipped.items():
        print(f"skipped {m}: {why}")
    print("wrote " + ", ".join(map(str, written)))
    return 0


def probe(spec=None) -> dict:
    """Versions, threads and the BLAS kernel, as the children see them."""
    import importlib

    info = {"blas": blas_description(), "cores": cores()}
    for name in ("numba", "torch", "transformers"):
        try:
            info[name] = importlib.import_module(name).__version__
        except ImportError:
            pass
    try:
        import numba

        info["numba_threads"] = numba.config.NUMBA_NUM_THREADS
    except ImportError:
        pass
    return info


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scaling", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

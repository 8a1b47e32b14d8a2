"""Where the whole model's time goes on the numba backend: seconds and GFLOP/s of each part of one forward.

    python -m benchmarks.profile [--n 4096] [--rounds 2]

Two columns, measured in one process, the forwards alternating: "spinning", with NumPy's OpenBLAS idle threads
left at the library's default (they spin 2^28 cycles after every product, what users got before the numba backend
set them to sleep), and "as shipped", what the numba backend sets when it is created (refimpl/backends/numba.py,
Threads). Each part is timed by wrapping the model's layers in this process (the library is not changed): the
q, k, v projections (the backend's project: products, bias, the split into heads), the three other products
(refimpl.model.Linear.product, without their biases: the GELU adds the FFN's first, the LayerNorms after them the
attention output's and the FFN's second), the backend's kernels; "the rest" is the forward's time outside them
(embeddings, q scaling, pass 4's gathers, Python). Per forward, the median over the rounds. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict

import numpy as np

from benchmarks.measurement import sgemm_rate
from benchmarks.methods import SHAPE, W, make_config, make_params

C, F, H = SHAPE["hidden_size"], SHAPE["intermediate_size"], SHAPE["num_attention_heads"]


NORMS = "LayerNorm (2, bias and residual fused)"


def part_flops(n: int, G: int = 1) -> dict[str, float]:
    """FLOPs of each part, per layer (multiply-add = 2)."""
    return {"q, k, v projections": 2 * n * C * 3 * C, "attention output": 2 * n * C * C,
            "FFN in": 2 * n * C * F, "FFN out": 2 * n * F * C,
            "band kernel (passes 1-3)": 2 * 2 * n * (2 * W + 1 + G) * C, "pass 4 (global rows)": 4 * G * H * n * C,
            "GELU": 0, NORMS: 0}


class Timed:
    """A callable that adds its wall time to totals[name]."""

    def __init__(self, name, fn, totals):
        self.name, self.fn, self.totals = name, fn, totals

    def __call__(self, *args, **kwargs):
        t = time.perf_counter()
        out = self.fn(*args, **kwargs)
        self.totals[self.name] += time.perf_counter() - t
        return out


def instrumented_model(config, params, totals):
    from refimpl.backends.numba import NumbaBackend
    from refimpl.model import LongformerModel

    backend = NumbaBackend()
    model = LongformerModel(config, params, backend=backend)
    for name in ("sliding_window_attention", "global_attention"):
        label = "band kernel (passes 1-3)" if name == "sliding_window_attention" else "pass 4 (global rows)"
        setattr(backend, name, Timed(label, getattr(backend, name), totals))
    for layer in model.layers:
        layer.attention.project = Timed("q, k, v projections", layer.attention.project, totals)
        layer.attention_output.product = Timed("attention output", layer.attention_output.product, totals)
        layer.intermediate.product = Timed("FFN in", layer.intermediate.product, totals)  # its bias: in the GELU
        layer.output.product = Timed("FFN out", layer.output.product, totals)  # its bias: in the LayerNorm
        layer.act = Timed("GELU", layer.act, totals)
        layer.attention_norm = Timed(NORMS, layer.attention_norm, totals)
        layer.output_norm = Timed(NORMS, layer.output_norm, totals)
    return model


def profile(n: int, rounds: int) -> tuple[dict, dict]:
    """{setting: {part: [seconds per forward]}}, and the sgemm rate measured between the forwards."""
    from refimpl.backends.numba import OPENBLAS_TIMEOUT_CYCLES, openblas_thread_timeouts

    config = make_config(n, SHAPE["num_hidden_layers"])
    params = make_params(config)
    rng = np.random.default_rng(n)
    ids = rng.integers(3, config.vocab_size, size=(1, n))
    glob = np.zeros((1, n), np.int64)
    glob[0, 0] = 1
    totals = defaultdict(float)
    model = instrumented_model(config, params, totals)
    timeouts = [t for _, t in openblas_thread_timeouts() if t is not None]
    if not timeouts:
        raise RuntimeError("no pthreads OpenBLAS with a reachable thread_timeout here: nothing to compare")
    settings = {"spinning": 1 << 28, "as shipped": OPENBLAS_TIMEOUT_CYCLES}  # OpenBLAS's default, the backend's
    model(ids[:, :512], global_attention_mask=glob[:, :512])  # warm-up: compile or load the kernels
    results = {s: defaultdict(list) for s in settings}
    a, b = np.ones((4096, C), np.float32), np.ones((C, F), np.float32)
    sgemm = []
    for _ in range(rounds):
        for setting, cycles in settings.items():
            for t in timeouts:
                t.value = cycles
            totals.clear()
            start = time.perf_counter()
            model(ids, global_attention_mask=glob)
            total = time.perf_counter() - start
            for part, seconds in totals.items():
                results[setting][part].append(seconds)
            results[setting]["the rest"].append(total - sum(totals.values()))
            results[setting]["whole forward"].append(total)
        sgemm.append(sgemm_rate(a, b))
    for t in timeouts:
        t.value = OPENBLAS_TIMEOUT_CYCLES
    return results, {"sgemm_flops_per_s": float(np.median(sgemm))}


def table(results: dict, n: int, sgemm: float) -> str:
    layers = SHAPE["num_hidden_layers"]
    flops = {part: layers * f for part, f in part_flops(n).items()}
    flops["whole forward"] = sum(flops.values())
    settings = list(results)
    head = ["part"] + [f"{s} {c}" for s in settings for c in ("s", "GFLOP/s")]
    lines = [f"Whole model, {n} tokens, numba backend, per forward (NumPy sgemm {sgemm / 1e9:.0f} GFLOP/s in the "
             "same rounds):", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for part in [*part_flops(n), "the rest", "whole forward"]:
        row = [part]
        for s in settings:
            sec = float(np.median(results[s][part])) if results[s].get(part) else 0.0
            rate = f"{flops[part] / sec / 1e9:.0f}" if flops.get(part) and sec else "-"
            row += [f"{sec:.3f}", rate]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile", description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=4096, help="tokens (default 4096)")
    parser.add_argument("--rounds", type=int, default=2, help="forwards per setting (default 2)")
    args = parser.parse_args(argv)
    results, extra = profile(args.n, args.rounds)
    print(table(results, args.n, extra["sgemm_flops_per_s"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())

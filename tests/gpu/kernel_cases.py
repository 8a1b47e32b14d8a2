"""Inputs for the attention kernels of gpu/kernels, shared by the GPU tests (test_backend.py) and the CPU runs of
the same kernels (test_cpu_runtime.py): named cases that stress the index arithmetic, random ones, and the
reference on inputs rounded as the tensor-core kernel rounds them."""

from __future__ import annotations

import numpy as np
from conftest import random_inputs

from refimpl import attention
from refimpl.attention import global_slots

# (B, H, N, D, W, padded length per row, global tokens per row): each case names what it would catch.
CASES = {
    "one token": (1, 1, 1, 8, 1, {}, {}),
    "N below one block, W > N": (2, 2, 37, 16, 50, {1: 20}, {0: 2}),
    "N = block": (1, 2, 64, 32, 8, {}, {0: 1}),
    "N = block + 1": (1, 1, 65, 32, 8, {}, {}),
    "no globals, several tiles": (2, 3, 200, 64, 40, {1: 150}, {}),
    "globals > one key tile": (2, 2, 211, 24, 12, {0: 190}, {0: 70, 1: 3}),
    "ragged globals, filler slots": (3, 2, 130, 48, 5, {2: 61}, {0: 4, 2: 1}),
    "D = 128, W = 256": (1, 2, 300, 128, 256, {}, {0: 5}),
    "D = 100 (padded to 128)": (1, 1, 97, 100, 7, {}, {0: 2}),
    "all padding but one row": (2, 1, 70, 16, 3, {1: 1}, {}),
}


def attention_inputs(B, H, N, D, W, pad_rows, n_glob, seed):
    """q, k, v (B, H, N, D) float32 (q scaled by 1/sqrt(D)), kind (B, N) int8, global_index, n_global, W."""
    rng = np.random.default_rng(seed)
    _, mask, glob = random_inputs(rng, B, N, pad_rows=pad_rows, n_global=n_glob)
    kind = mask * (glob + 1)  # (B, N) 0 padding, 1 local, 2 global
    global_index, n_global = global_slots(kind)  # (B, G), (B,)
    q, k, v = (rng.standard_normal((B, H, N, D), dtype=np.float32) for _ in range(3))  # (B, H, N, D)
    q *= np.float32(1 / np.sqrt(D))
    return q, k, v, kind.astype(np.int8), global_index, n_global, W


def make_case(name, seed=0):
    return attention_inputs(*CASES[name], seed=seed)


def random_case(seed):
    """Batch 1-2, N 1..300, a head size the kernels support (1..128, often at the 32/64/128 instance edges),
    W from 1 to past N, ragged padding, 0-3 global tokens per row; every third case a dilation per head (1-4) and
    every fourth autoregressive (then no global tokens). Returns (description, inputs, window options)."""
    rng = np.random.default_rng(1000 + seed)
    B, H = int(rng.integers(1, 3)), int(rng.integers(1, 3))
    N = int(rng.choice([1, 2, 63, 64, 65, 127, 128, 129, int(rng.integers(1, 301))]))
    D = int(rng.choice([1, 31, 32, 33, 64, 65, 100, 128, int(rng.integers(1, 129))]))
    W = int(rng.integers(1, N + 12))
    pad_rows = {b: int(rng.integers(1, N + 1)) for b in range(B) if rng.random() < 0.5}
    n_glob = {b: int(rng.integers(0, min(3, pad_rows.get(b, N)) + 1)) for b in range(B)}
    window = {}
    if seed % 3 == 1:
        window["dilation"] = [int(d) for d in rng.integers(1, 5, size=H)]
    if seed % 4 == 3:
        window["autoregressive"] = True
        n_glob = {}
    description = f"B={B} H={H} N={N} D={D} W={W} padded={pad_rows} globals={n_glob} {window}"
    return description, attention_inputs(B, H, N, D, W, pad_rows, n_glob, seed), window


def round_float16(a):
    return np.asarray(a, np.float32).astype(np.float16).astype(np.float32)


def round_bfloat16(a):
    """float32 -> bfloat16 -> float32, round to nearest even (as __float2bfloat16_rn); inputs are finite."""
    u = np.asarray(a, np.float32).view(np.uint32).astype(np.uint64)
    u = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16
    return u.astype(np.uint32).view(np.float32)


ROUNDING = {"float32": lambda a: np.asarray(a, np.float32), "float16": round_float16, "bfloat16": round_bfloat16}


def reference(q, k, v, kind, global_index, n_global, w, precision="float32", **window):
    """The NumPy reference (context, probs) on inputs rounded as the kernel rounds them (a no-op for float32);
    window: dilation, autoregressive."""
    rnd = ROUNDING[precision]
    return attention.sliding_window_attention(rnd(q), rnd(k), rnd(v), kind, global_index, n_global, w, True,
                                              **window)

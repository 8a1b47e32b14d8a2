"""How the benchmark measures: time and peak memory, each in a fresh Python process that sees what a user's does.

Time: every (scope, length) runs in one fresh process that builds all its methods, runs each once (warm-up: Numba's
compile or cache load, torch.compile for FlexAttention, the check of the outputs), then `repeats` rounds in which
the methods take turns, in a rotating order; the median is reported. Every round also times NumPy's sgemm on the
FFN shape (4096 x 768 @ 768 x 3072), three products (their median), the rate each method's GFLOP/s is compared
with.

Memory: each (scope, method, length) runs once more in its own fresh process: after a warm-up on 512 tokens, the
kernel's high-water mark of resident memory is reset (/proc/self/clear_refs) and read again after the call (VmHWM).
`peak_bytes` is that peak minus the resident memory just before the call: what the call itself needed, the weights
and the inputs (the same for all) and each library's import excluded; `peak_rss_bytes` is the whole process's peak.

The children get the parent's environment unchanged (only PYTHONPATH gains the repository), so they measure what a
user's plain `python` gets: no OPENBLAS_THREAD_TIMEOUT or other variable that the library does not set itself. The
variables that change threading (OPENBLAS_*, OMP_*, NUMBA_*, MKL_*) are recorded with the results.

A child is `python -m benchmarks.measurement '<spec as JSON>'`; its last stdout line is its JSON answer.
"""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.methods import RUNNERS, SHAPE, WARMUP_LENGTH, cores, make_config, make_params, torch_threads

THREADING_VARIABLES = ("OPENBLAS_", "OMP_", "NUMBA_", "MKL_", "GOMP_", "KMP_")
SGEMM_SHAPE = (4096, 768, 3072)  # the FFN's first product at 4096 tokens: (M, K) @ (K, N)


def sgemm_rate(a, b, products: int = 3) -> float:
    """FLOP/s of a @ b: the median of `products` products in a row, written into one array made beforehand. One
    product alone read as little as half the rate when it came right after a PyTorch method, whose OpenMP threads
    spin for a while after each operation; a new (4096, 3072) result each time is 48 MiB of fresh pages, which read
    the rate ~4% low (292 vs 305 GFLOP/s, one after the other): the floor is the product's, not the page faults'."""
    out = np.empty((a.shape[0], b.shape[1]), np.result_type(a, b))
    rates = []
    for _ in range(products):
        t = time.perf_counter()
        np.matmul(a, b, out=out)
        rates.append(2 * a.shape[0] * a.shape[1] * b.shape[1] / (time.perf_counter() - t))
    return float(np.median(rates))


def blas_description() -> dict:
    """NumPy's BLAS as threadpoolctl sees it at run time: library, version, the kernel (architecture) it chose,
    threading layer and threads; and NumPy's build-time BLAS name."""
    info = {}
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        info = {"name": blas.get("name"), "version": blas.get("version")}
    except Exception:  # an older NumPy or another build: the description is optional
        pass
    try:
        import threadpoolctl
    except ImportError:
        info["threadpoolctl"] = "not installed: the BLAS kernel in use is unknown"
        return info
    info["threadpools"] = [{k: lib.get(k) for k in ("internal_api", "version", "architecture", "threading_layer",
                                                    "num_threads", "filepath")}
                           for lib in threadpoolctl.threadpool_info()]
    return info


def probe(spec=None) -> dict:
    """Versions, threads, the BLAS kernel and the threading variables, as a child sees them."""
    import importlib

    # as the child started, before any library (numba sets OMP_WAIT_POLICY when it is imported)
    info = {"env": {k: v for k, v in os.environ.items() if k.startswith(THREADING_VARIABLES)},
            "cores": cores(), "numpy": np.__version__}
    for name in ("numba", "torch", "transformers"):
        try:
            info[name] = importlib.import_module(name).__version__
        except ImportError:
            pass
    try:
        import numba

        info["numba_threads"] = numba.config.NUMBA_NUM_THREADS
        from refimpl.backends import get_backend

        info["numba_openblas"] = get_backend("numba").openblas  # what the backend did to OpenBLAS's idle threads
        numba.njit(parallel=True)(lambda x: x + 1)(np.zeros(4))
        info["numba_threading_layer"] = numba.threading_layer()
    except (ImportError, ValueError):
        pass
    info["blas"] = blas_description()
    return info


def time_worker(spec: dict) -> dict:
    """One scope at one length, every method: warm-up, then `repeats` rounds in rotating order."""
    scope, n, methods, repeats = spec["scope"], spec["n"], spec["methods"], spec["repeats"]
    layers = spec.get("layers") or (SHAPE["num_hidden_layers"] if scope == "model" else 1)
    if "transformers" in methods or "flex" in methods:
        torch_threads()
    config = make_config(n, layers)
    params = make_params(config) if scope != "kernel" else {}
    runners = {m: RUNNERS[scope](m, config, params, n) for m in methods}
    outputs = {m: run() for m, run in runners.items()}  # warm-up
    reference = next((outputs[m] for m in ("transformers", "numpy") if m in outputs), None)
    max_diff = {m: float(np.abs(out - reference).max()) for m, out in outputs.items()} if reference is not None else {}
    del outputs
    M, K, N = SGEMM_SHAPE
    a, b = np.ones((M, K), np.float32), np.ones((K, N), np.float32)
    seconds = {m: [] for m in methods}
    sgemm = []
    for r in range(repeats):
        order = methods[r % len(methods):] + methods[:r % len(methods)]
        for m in order:
            t = time.perf_counter()
            runners[m]()
            seconds[m].append(time.perf_counter() - t)
        sgemm.append(sgemm_rate(a, b))
    return {"seconds": seconds, "max_abs_diff": max_diff, "sgemm_flops_per_s": sgemm}


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def memory_worker(spec: dict) -> dict:
    """One method at one length: the resident-memory peak of one call above what was resident before it. The
    warm-up's freed memory is handed back to the system first (malloc_trim), so that memory an allocator kept from
    the warm-up cannot hide part of the call's peak."""
    scope, n, method = spec["scope"], spec["n"], spec["method"]
    layers = spec.get("layers") or (SHAPE["num_hidden_layers"] if scope == "model" else 1)
    if method in ("transformers", "flex"):
        torch_threads()
    config = make_config(n, layers)
    params = make_params(config) if scope != "kernel" else {}
    RUNNERS[scope](method, config, params, WARMUP_LENGTH)()  # compile, load caches, initialise libraries
    run = RUNNERS[scope](method, config, params, n)
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the high-water mark VmHWM to the current resident size
    before = _status_kib("VmRSS")
    run()
    peak = _status_kib("VmHWM")
    return {"peak_bytes": (peak - before) * 1024, "peak_rss_bytes": peak * 1024}


WORKERS = {"time": time_worker, "memory": memory_worker, "probe": probe}


def child_env() -> dict:
    """The parent's environment, with the repository on PYTHONPATH: nothing else added or removed."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


def run_child(spec: dict, timeout: float) -> dict:
    """Run a worker in a fresh Python; its last stdout line is its JSON answer, or {"error": ...}."""
    try:
        result = subprocess.run([sys.executable, "-m", "benchmarks.measurement", json.dumps(spec)],
                                env=child_env(), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"took longer than {timeout:.0f} s"}
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        return {"error": " | ".join(tail) or f"exit status {result.returncode}"}
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        raise SystemExit("usage: python -m benchmarks.measurement '<spec as JSON>' (run by benchmarks.cli)")
    spec = json.loads(argv[0])
    print(json.dumps(WORKERS[spec["role"]](spec)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Two versions of the numba backend's band kernel, timed in one process with their calls alternating.

    python -m benchmarks.paired OLD.py NEW.py [--n 4096] [--rounds 20]

OLD.py and NEW.py are copies of refimpl/backends/numba.py (`git show HEAD~1:refimpl/backends/numba.py > old.py`).
Both are loaded side by side as modules of their own (each compiles its kernels once, cached beside a copy of it),
then called on the same inputs as the benchmark's kernel sweep (benchmarks.methods.kernel_inputs: 12 heads of 64,
W = 256, the first token global), taking turns. Prints the largest difference between their outputs and the median of
the per-round ratios NEW / OLD. On this shared VM the drift between separate runs of the same code (5-10%) was larger
than most single changes to the kernel; a paired ratio is not.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.methods import W, kernel_inputs


def load(path: str):
    """The file at `path` as a module of its own, loaded from a copy named after its contents.

    Numba caches a kernel beside its source file, under the file's name, with the name of the module that compiled
    it; loading refimpl/backends/numba.py itself under another name would leave cache entries that the library's
    own import then fails to load. The copy keeps each version's cache apart (and reused by the next run)."""
    if not Path(path).is_file():
        raise SystemExit(f"{path}: no such file (give two copies of refimpl/backends/numba.py)")
    source = Path(path).read_bytes()
    name = f"paired_numba_{hashlib.sha1(source).hexdigest()[:12]}"
    copy = Path(tempfile.gettempdir()) / "longformer-lab-paired" / f"{name}.py"
    copy.parent.mkdir(parents=True, exist_ok=True)
    if not copy.is_file() or copy.read_bytes() != source:
        copy.write_bytes(source)
    spec = importlib.util.spec_from_file_location(name, copy)
    if spec is None or spec.loader is None:
        raise SystemExit(f"{path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def paired(old_path: str, new_path: str, n: int, rounds: int) -> dict:
    """{"max_abs_diff", "old_s", "new_s", "ratio"}: medians over the rounds, ratio the median of new / old."""
    backends = [load(path).NumbaBackend() for path in (old_path, new_path)]
    q, k, v, kind, global_index, n_global = kernel_inputs(n)

    def run(backend):
        return backend.sliding_window_attention(q, k, v, kind, global_index, n_global, W, False)[0]

    old_out, new_out = (run(b) for b in backends)  # compiles (or loads the cache) and warms up
    seconds = [[], []]
    for r in range(rounds):
        for i in (0, 1) if r % 2 == 0 else (1, 0):
            t = time.perf_counter()
            run(backends[i])
            seconds[i].append(time.perf_counter() - t)
    old_s, new_s = (np.array(s) for s in seconds)
    return {"max_abs_diff": float(np.abs(new_out - old_out).max()), "old_s": float(np.median(old_s)),
            "new_s": float(np.median(new_s)), "ratio": float(np.median(new_s / old_s))}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.paired", description=__doc__.splitlines()[0])
    parser.add_argument("old", help="a copy of refimpl/backends/numba.py")
    parser.add_argument("new", help="another copy")
    parser.add_argument("--n", type=int, default=4096, help="tokens (default 4096)")
    parser.add_argument("--rounds", type=int, default=20, help="calls of each (default 20)")
    args = parser.parse_args(argv)
    if args.n < 1 or args.rounds < 1:
        parser.error("--n and --rounds must be >= 1")
    result = paired(args.old, args.new, args.n, args.rounds)
    print(f"n={args.n}: old {result['old_s'] * 1e3:.1f} ms, new {result['new_s'] * 1e3:.1f} ms, new / old "
          f"{result['ratio']:.3f} (median of {args.rounds} paired rounds); largest |new - old| "
          f"{result['max_abs_diff']:.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`python -m benchmarks.scaling [options]`: the same as `longformer-lab bench [options]` (benchmarks/cli.py).

The benchmark is four modules: benchmarks/methods.py (what runs), measurement.py (time and memory, in fresh
processes), report.py (ratios, GFLOP/s, slopes, tables, plots) and cli.py (the sweep and its progress bar).
`fitted_slope` and `make_backend` are importable from here for the app's scaling page (viz_app/core/timing.py).
"""

from __future__ import annotations

import sys

from benchmarks.cli import main
from benchmarks.report import fitted_slope
from refimpl.backends import get_backend as make_backend

__all__ = ["main", "fitted_slope", "make_backend"]

if __name__ == "__main__":
    sys.exit(main())

"""`python -m benchmarks.scaling [options]`: the same as `longformer-lab bench [options]` (benchmarks/cli.py).

The benchmark is four modules: benchmarks/methods.py (what runs), measurement.py (time and memory, in fresh
processes), report.py (ratios, GFLOP/s, slopes, tables, plots) and cli.py (the sweep and its progress bar).
"""

from __future__ import annotations

import sys

from benchmarks.cli import main

if __name__ == "__main__":
    sys.exit(main())

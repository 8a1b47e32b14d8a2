"""`make app` installs `.[app]` only: what pip would install for it, resolved as on a fresh machine.

pip resolves `.[app]` with --dry-run --ignore-installed --report: nothing is installed, and what is already in this
environment is ignored, so the report lists what a fresh virtual environment would download. It needs the package
index (PyPI), so it is marked slow and skips, saying so, when the index cannot be reached.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
NOT_FOR_THE_APP = ("torch", "transformers", "cupy", "nvidia-", "pytest", "playwright", "hypothesis", "triton")


def test_the_app_extra_does_not_pull_torch_or_the_test_tools(tmp_path):
    """Would catch: .[app] growing a dependency on torch (3 GB of CUDA wheels on Linux), transformers, CuPy or
    the test tools, which `make app` would then download for nothing."""
    report = tmp_path / "report.json"
    run = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
                          "--report", str(report), f"{ROOT}[app]"], capture_output=True, text=True, timeout=600)
    if run.returncode != 0:
        if "Could not find a version" in run.stderr or "connection" in run.stderr.lower():
            pytest.skip(f"the package index cannot be reached: {run.stderr[-300:]}")
        pytest.fail(run.stderr[-2000:])
    names = sorted(item["metadata"]["name"].lower() for item in json.loads(report.read_text())["install"])
    assert "streamlit" in names and "plotly" in names and "numpy" in names
    unwanted = [n for n in names if n.startswith(NOT_FOR_THE_APP)]
    assert not unwanted, f".[app] would install {unwanted}"

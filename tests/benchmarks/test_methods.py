"""Smoke test of the benchmark: every method at every scope it runs at, once, at a tiny length, and its output
checked against the reference of that scope; then the measuring and reporting path on one tiny sweep.

Would catch: a method that no longer builds or runs against the current backends (the benchmark once carried its own
copy of the dense backend, which fell behind the model's calls and printed AttributeError for every method), a
method that computes something else (its output against the numpy reference, or transformers', at the tolerances of
tests/conftest.py), or a worker/report that breaks on the records. Methods that cannot run here (cupy without a GPU,
torch not installed) are skipped with the reason. Timings are not checked: they live in benchmarks/.
"""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import measurement, methods, report
from conftest import BACKEND_ATOL, HIDDEN_ATOL, HIDDEN_RTOL, assert_close

REASONS = methods.unavailable_reasons()
# transformers' attention needs a multiple of its window (512); the kernel runs at any length (W = 256 > N here)
LENGTH = {"kernel": 64, "attention": 512, "model": 512}
CASES = [(scope, m) for scope in methods.SCOPES for m in methods.SCOPE_METHODS[scope]]


@pytest.fixture(scope="module")
def reference_outputs():
    """The numpy reference's output per scope (one layer for the model)."""
    return {scope: methods.make_runner(scope, "numpy", LENGTH[scope], layers=1)() for scope in methods.SCOPES}


@pytest.mark.parametrize("scope, method", CASES, ids=[f"{s}-{m}" for s, m in CASES])
def test_method_runs_and_equals_the_reference(scope, method, reference_outputs):
    if REASONS[method] is not None:
        pytest.skip(f"{method}: {REASONS[method]}")
    out = methods.make_runner(scope, method, LENGTH[scope], layers=1)()
    expected = reference_outputs[scope]
    assert out.shape == expected.shape and out.dtype == np.float32
    if method == "transformers":
        assert_close(out, expected, atol=HIDDEN_ATOL, rtol=HIDDEN_RTOL, what=f"{method} {scope}")
    else:
        assert_close(out, expected, atol=BACKEND_ATOL, rtol=0, what=f"{method} {scope}")


def test_method_at_a_scope_it_does_not_have_is_refused():
    with pytest.raises(ValueError, match="does not run at the model scope"):
        methods.make_runner("model", "flex", 64)


def test_model_flops_count_what_the_numba_backend_computes():
    """Would catch a term lost from the count: at 4096 tokens the projections, FFN and band are issue #13's 773
    GFLOP, the global columns and the folded pass 4 (one global token) add 1.8."""
    global_parts = 12 * (4 * 4096 * 768 + 4 * 12 * 4096 * 768)
    assert abs((methods.model_flops(4096) - global_parts) / 1e9 - 773.2) < 0.1


def test_time_worker_and_report_on_a_tiny_sweep(tmp_path):
    """The path `longformer-lab bench` takes, in this process: the time worker, ratios, tables and the plot."""
    usable = [m for m in ("numpy", "numba") if REASONS[m] is None]
    timed = measurement.time_worker({"scope": "kernel", "n": 64, "methods": usable, "repeats": 1})
    memory = measurement.memory_worker({"scope": "kernel", "n": 64, "method": "numpy"})
    assert memory["peak_bytes"] >= 0
    records = [{"what": "kernel", "method": m, "n": 64, "seconds": timed["seconds"][m][0],
                "flops": methods.kernel_flops(64), "sgemm_flops_per_s": timed["sgemm_flops_per_s"][0],
                "max_abs_diff": timed["max_abs_diff"][m]} for m in usable]
    records = report.with_ratios(records, "kernel")
    assert all(0 < r["fraction_of_sgemm"] for r in records)
    table = report.markdown_table("kernel", records, usable, {})
    assert "GFLOP/s" in table and "| 64 |" in table
    report.write_plot(tmp_path / "plot.html", "kernel", records, usable)


def test_paired_timing_of_two_kernel_versions(tmp_path, capsys, monkeypatch):
    """benchmarks.paired on the backend file against a copy with a deliberate change: the outputs' difference is
    reported (0 for the same code, > 0 for the changed one), and the ratio of the two medians. The library's own
    kernels, cached in the same (empty) cache folder, still load in a fresh process afterwards."""
    numba = pytest.importorskip("numba")
    import os
    import subprocess
    import sys
    from pathlib import Path

    cache = tmp_path / "numba-cache"
    monkeypatch.setattr(numba.core.config, "CACHE_DIR", str(cache))  # where the modules paired loads cache

    from benchmarks import paired

    source = Path(__file__).resolve().parents[2] / "refimpl" / "backends" / "numba.py"
    text = source.read_text()
    same, changed = tmp_path / "same.py", tmp_path / "changed.py"
    same.write_text(text)
    assert "out_row[d] = group_row[d] * scale" in text  # the context's last step, pass 2's division
    changed.write_text(text.replace("out_row[d] = group_row[d] * scale", "out_row[d] = group_row[d] * scale * 2"))
    result = paired.paired(str(source), str(same), n=96, rounds=2)
    assert result["max_abs_diff"] == 0 and result["old_s"] > 0 and result["new_s"] > 0 and result["ratio"] > 0
    assert paired.paired(str(source), str(changed), n=96, rounds=2)["max_abs_diff"] > 0.01
    assert paired.main([str(source), str(same), "--n", "64", "--rounds", "2"]) == 0
    assert "new / old" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="no such file"):
        paired.main([str(source), str(tmp_path / "missing.py")])
    # the library's own file was loaded from a copy: its cache still serves the library's import
    script = ("from benchmarks.methods import W, kernel_inputs; from refimpl.backends.numba import NumbaBackend; "
              "print(NumbaBackend().sliding_window_attention(*kernel_inputs(64), W, False)[0].sum())")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=source.parents[2],
                         env={**os.environ, "NUMBA_CACHE_DIR": str(cache)}, timeout=600)
    assert run.returncode == 0, run.stderr


def test_profile_times_every_part_of_the_forward():
    """benchmarks.profile wraps the model's parts in place: every part it names is reached by a forward (a wrapper
    the model no longer calls would read 0 s), and the parts add up to the whole forward."""
    pytest.importorskip("numba")
    from benchmarks import profile

    try:
        results, extra = profile.profile(n=64, rounds=1)
    except RuntimeError as e:  # no pthreads OpenBLAS whose thread timeout can be set: nothing to compare
        pytest.skip(str(e))
    for setting, parts in results.items():
        for part in profile.part_flops(64):
            assert parts[part] and parts[part][0] > 0, f"{setting}: {part} was never timed"
        total = sum(parts[part][0] for part in [*profile.part_flops(64), "the rest"])
        assert total == pytest.approx(parts["whole forward"][0], rel=1e-6)
    table = profile.table(results, 64, extra["sgemm_flops_per_s"])
    assert "| attention output | " in table and "| whole forward | " in table


def test_sgemm_rate_is_the_products_flop_rate():
    """The floor's rate: 2 M K N FLOPs over each product's time, the median of three, all written into one array."""
    import time as time_module

    a, b = np.ones((64, 32), np.float32), np.ones((32, 48), np.float32)
    calls = []
    real_matmul = np.matmul

    def matmul(x, y, out=None):
        calls.append(out)
        return real_matmul(x, y, out=out)

    ticks = iter([0.0, 1.0, 10.0, 13.0, 20.0, 22.0])  # products of 1, 3 and 2 seconds: the median is 2
    clock = lambda: next(ticks)  # noqa: E731
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(measurement.np, "matmul", matmul)
        mp.setattr(time_module, "perf_counter", clock)
        rate = measurement.sgemm_rate(a, b)
    assert rate == 2 * 64 * 32 * 48 / 2
    assert len(calls) == 3 and all(out is calls[0] and out.shape == (64, 48) for out in calls)

"""The part of RESULTS.md that `longformer-lab bench` writes.

Would catch: a rerun of the bench that wipes the hand-written analysis around the tables, a second copy of the
tables appended on each run, or a generated part that no longer names the command, the machine or the BLAS kernel.
"""

from __future__ import annotations

from benchmarks.report import GENERATED_BEGIN, GENERATED_END, results_section, update_results

META = {"command": "longformer-lab bench", "repeats": 5, "machine": "x86_64, 2 cores, Some CPU",
        "blas": {"name": "scipy-openblas", "version": "0.3.31",
                 "threadpools": [{"internal_api": "openblas", "version": "0.3.31", "architecture": "SkylakeX",
                                  "threading_layer": "pthreads", "num_threads": 2, "filepath": "/x/libopenblas.so"}]},
        "numpy": "2.4", "numba": "0.68", "torch": "2.13", "transformers": "5.23", "numba_threads": 2,
        "numba_threading_layer": "omp", "numba_openblas": ["libopenblas.so: thread_timeout 268435456 -> 16 cycles"],
        "skipped": {"cupy": "no GPU"}, "env": {"OPENBLAS_CORETYPE": "Haswell"}}


def test_results_section_names_command_machine_and_blas():
    section = results_section(META, ["### table one\n| a |\n", "### table two\n"], "2026-12-02 01:08 UTC", 11.2)
    assert section.startswith(GENERATED_BEGIN) and section.endswith(GENERATED_END)
    for text in ("`longformer-lab bench`", "5 timed rounds", "took 11.2 min", "Some CPU", "SkylakeX, pthreads",
                 "libopenblas.so: openblas (0.3.31", "thread_timeout 268435456 -> 16 cycles", "cupy (no GPU)",
                 "inherited from the environment (as a measuring process started): OPENBLAS_CORETYPE=Haswell.",
                 "### table one", "### table two"):
        assert text in section, text
    assert "from the environment (as a measuring process started): none (OPENBLAS_*" in results_section(
        {**META, "env": {}}, [], "now", 1.0)


def test_update_results_replaces_only_its_part(tmp_path):
    path = tmp_path / "RESULTS.md"
    update_results(path, results_section(META, ["### first run\n"], "then", 1.0))  # a new file
    assert "### first run" in path.read_text()
    path.write_text("# Results\n\nprose before\n\n" + path.read_text().split("\n\n", 1)[1] + "\n\nprose after\n")
    update_results(path, results_section(META, ["### second run\n"], "now", 2.0))
    text = path.read_text()
    assert "prose before" in text and "prose after" in text and "### second run" in text
    assert "### first run" not in text and text.count(GENERATED_BEGIN) == text.count(GENERATED_END) == 1


def test_bench_writes_results_md(tmp_path):
    """The CLI end to end at one tiny size: its RESULTS.md names the command and holds the table; --quick leaves it."""
    from benchmarks.cli import main

    assert main(["--what", "kernel", "--lengths", "64", "--backends", "numpy", "--repeats", "1",
                 "--out", str(tmp_path)]) == 0
    text = (tmp_path / "RESULTS.md").read_text()
    assert "--what kernel --lengths 64" in text and "### The band kernel" in text and "| 64 |" in text
    assert main(["--quick", "--what", "kernel", "--backends", "numpy", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "RESULTS.md").read_text() == text

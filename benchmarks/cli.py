"""`longformer-lab bench`: time, peak memory and GFLOP/s against sequence length, every method at every scope.

    longformer-lab bench                    the three sweeps (kernel, attention, model), every method that runs here
    longformer-lab bench --quick            a sweep of seconds, to check the wiring
    longformer-lab bench --what kernel --lengths 4096,16384 --backends numba,flex

(`python -m benchmarks.scaling` is the same command.) What is run is benchmarks/methods.py, how it is measured
benchmarks/measurement.py, what is written benchmarks/report.py. Writes, in --out: scaling_<what>.json
({"results": [{"method", "n", "seconds", "peak_bytes", "flops_per_s", "fraction_of_sgemm", ...}], metadata}),
scaling_<what>.md (the tables) and scaling_<what>.html (log-log plots with fitted slopes and n, n^2 guides), and
(but for --quick) the part of RESULTS.md between its markers: the command, the machine, the BLAS kernel, the tables.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.measurement import run_child
from benchmarks.methods import FLOPS, METHODS, SCOPE_METHODS, SCOPES, SHAPE, available_methods, cores
from benchmarks.report import markdown_table, results_section, update_results, with_ratios, write_plot

LENGTHS = {
    "kernel": (1024, 4096, 16384),
    "attention": (1024, 4096, 16384, 65536, 131072),
    "model": (512, 1024, 2048, 4096),
}
QUICK = {"kernel": (512, 1024), "attention": (512, 1024), "model": (512,)}

# Longest input each method runs at by default (--no-caps lifts these): memory on a 24 GiB machine shared with
# others, and the run time (the whole default run must take <= 15 minutes on 2 cores). dense holds 12 N^2 floats
# per layer (0.8 GB at 4096, 12.9 GB at 16384); the reference and transformers about five (H, N, 2W+1) arrays.
MAX_LENGTH = {
    "kernel": {"dense": 4096},
    "attention": {"dense": 4096, "numpy": 16384, "transformers": 16384},
    "model": {"dense": 2048},
}
MEMORY_SCOPES = ("attention", "model")  # the kernel scope is timed only; its memory is the attention layer's part


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.platform()


def sweep(scope: str, lengths, methods, repeats: int, caps: bool, progress) -> tuple[list[dict], dict]:
    records, notes = [], {}
    for n in lengths:
        here = [m for m in methods if not caps or n <= MAX_LENGTH[scope].get(m, math.inf)]
        for m in set(methods) - set(here):
            notes[m] = f"not run above {MAX_LENGTH[scope][m]} tokens (memory or time; --no-caps runs it)"
            if m == "dense":
                notes[m] += f"; at {n} its N x N scores alone would take {12 * n * n * 4 / 2**30:,.0f} GiB per layer"
        progress.set_description(f"{scope} n={n}: time")
        timed = run_child({"role": "time", "scope": scope, "n": n, "methods": here, "repeats": repeats},
                          timeout=3600)
        progress.update(1)
        for m in here:
            rec = {"what": scope, "method": m, "n": n, "seconds": None, "peak_bytes": None, "flops": FLOPS[scope](n)}
            if scope in MEMORY_SCOPES:
                progress.set_description(f"{scope} n={n}: memory of {m}")
                memory = run_child({"role": "memory", "scope": scope, "n": n, "method": m}, timeout=1800)
                progress.update(1)
                rec.update(peak_bytes=memory.get("peak_bytes"), peak_rss_bytes=memory.get("peak_rss_bytes"))
                if "error" in memory:
                    rec["memory_error"] = memory["error"]
            if "error" in timed:
                rec["error"] = timed["error"]
            else:
                times = timed["seconds"][m]
                rec.update(seconds=float(np.median(times)), all_seconds=times,
                           max_abs_diff=timed["max_abs_diff"].get(m),
                           sgemm_flops_per_s=float(np.median(timed["sgemm_flops_per_s"])))
            records.append(rec)
    return records, notes


def plan_lengths(args, scopes) -> dict[str, tuple[int, ...]]:
    plan = {}
    for scope in scopes:
        if args.lengths:
            lengths = tuple(sorted({int(x) for x in args.lengths.split(",")}))
        else:
            lengths = QUICK[scope] if args.quick else LENGTHS[scope]
        if any(n < 1 for n in lengths):
            raise ValueError(f"lengths must be >= 1, got {lengths}")
        plan[scope] = lengths
    return plan


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--what", choices=(*SCOPES, "all"), default="all",
                        help="the band kernel (passes 1-3), one attention layer, the whole model, or all (default)")
    parser.add_argument("--lengths", help="comma-separated sequence lengths (default: " + "; ".join(
        f"{s} {','.join(map(str, LENGTHS[s]))}" for s in SCOPES) + ")")
    parser.add_argument("--backends", help=f"comma-separated methods out of {', '.join(METHODS)} "
                        "(default: every one that runs here)")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds per size after the warm-up (default 5)")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent),
                        help="folder for the JSON, Markdown and HTML results (default: benchmarks/)")
    parser.add_argument("--quick", action="store_true", help="a few small lengths and one round: checks the wiring")
    parser.add_argument("--no-caps", action="store_true", help="run every method at every length (see MAX_LENGTH)")


def run_bench(args) -> int:
    from tqdm import tqdm

    if args.repeats < 1:
        raise ValueError(f"--repeats must be >= 1, got {args.repeats}")
    scopes = SCOPES if args.what == "all" else (args.what,)
    methods, skipped = available_methods(args.backends.split(",") if args.backends else None, scopes)
    if not methods:
        raise ValueError(f"none of the requested methods runs here: {skipped}")
    repeats = 1 if args.quick else args.repeats
    plan = plan_lengths(args, scopes)
    if "transformers" in methods and "attention" in plan and any(n % SHAPE["attention_window"]
                                                                 for n in plan["attention"]):
        raise ValueError("transformers' attention layer needs lengths that are multiples of the window (512)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    scope_methods = {s: [m for m in methods if m in SCOPE_METHODS[s]] for s in scopes}
    steps = sum(len(ls) * (1 + (len(scope_methods[s]) if s in MEMORY_SCOPES else 0)) for s, ls in plan.items())
    command = getattr(args, "bench_command", None) or (
        " ".join(["longformer-lab bench", *sys.argv[2:]]) if Path(sys.argv[0]).name == "longformer-lab"
        else " ".join(["python -m benchmarks.scaling", *sys.argv[1:]]))
    meta = {"command": command,
            "machine": f"{platform.machine()}, {cores()} cores, {cpu_model()}",
            "repeats": repeats, "skipped": skipped, "shape": SHAPE}
    meta.update(run_child({"role": "probe"}, timeout=600))
    started, start = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), time.perf_counter()
    written, tables = [], []
    with tqdm(total=steps, unit="run") as progress:
        for scope, lengths in plan.items():
            ms = scope_methods[scope]
            if not ms:
                continue
            records, notes = sweep(scope, lengths, ms, repeats, not args.no_caps, progress)
            records = with_ratios(records, scope)
            table = markdown_table(scope, records, ms, notes)
            (out / f"scaling_{scope}.json").write_text(
                json.dumps({**meta, "what": scope, "notes": notes, "results": records}, indent=1) + "\n")
            (out / f"scaling_{scope}.md").write_text(table)
            tables.append(table)
            written += [out / f"scaling_{scope}.json", out / f"scaling_{scope}.md"]
            html = write_plot(out / f"scaling_{scope}.html", scope, records, ms)
            if html:
                written.append(Path(html))
            tqdm.write(table)
    if not args.quick:  # a quick run only checks the wiring: it leaves RESULTS.md's tables alone
        update_results(out / "RESULTS.md", results_section(meta, tables, started, (time.perf_counter() - start) / 60))
        written.append(out / "RESULTS.md")
    for m, why in skipped.items():
        print(f"skipped {m}: {why}")
    print("wrote " + ", ".join(map(str, written)))
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scaling", description=__doc__.split("\n\n")[0])
    add_bench_arguments(parser)
    try:
        args = parser.parse_args(argv)
        if argv is not None:  # called from Python: the command is these arguments, not the process's
            args.bench_command = " ".join(["python -m benchmarks.scaling", *argv])
        return run_bench(args)
    except ValueError as e:
        parser.error(str(e))


if __name__ == "__main__":
    sys.exit(main())

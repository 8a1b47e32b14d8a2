"""What the benchmark writes: ratios, GFLOP/s against the measured sgemm rate, fitted slopes, tables and plots.

Each record is {"what": scope, "method", "n", "seconds", "peak_bytes", "peak_rss_bytes", "flops",
"sgemm_flops_per_s", ...}; `with_ratios` adds the ratios the tables show.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmarks.measurement import THREADING_VARIABLES
from benchmarks.methods import BASELINE

TITLES = {"kernel": "The band kernel (passes 1-3: band and global columns, 12 heads of 64, W = 256)",
          "attention": "One attention layer (projections, passes 1-4)",
          "model": "The whole model (12 layers)"}


def with_ratios(records: list[dict], scope: str) -> list[dict]:
    """Add, per length: speedup (the scope's baseline time / this time), memory_ratio (this peak / baseline's),
    GFLOP/s and its fraction of NumPy's sgemm rate measured in the same rounds (= the floor time / this time)."""
    baseline = BASELINE[scope]
    ref = {r["n"]: r for r in records if r["method"] == baseline}
    for r in records:
        t = ref.get(r["n"])
        if t and t.get("seconds") and r.get("seconds"):
            r[f"speedup_vs_{baseline}"] = t["seconds"] / r["seconds"]
        if t and t.get("peak_bytes") and r.get("peak_bytes") is not None:
            r[f"memory_vs_{baseline}"] = r["peak_bytes"] / t["peak_bytes"]
        if r.get("flops") and r.get("seconds"):
            r["flops_per_s"] = r["flops"] / r["seconds"]
            if r.get("sgemm_flops_per_s"):
                r["fraction_of_sgemm"] = r["flops_per_s"] / r["sgemm_flops_per_s"]
                r["floor_seconds"] = r["flops"] / r["sgemm_flops_per_s"]
    return records


def fitted_slope(ns, ys) -> float | None:
    """Slope of log y against log n over the larger half of the points (where fixed costs no longer dominate)."""
    pts = sorted((n, y) for n, y in zip(ns, ys) if y)
    if len(pts) < 2:
        return None
    pts = pts[-max(2, (len(pts) + 1) // 2):]
    return float(np.polyfit(np.log([p[0] for p in pts]), np.log([p[1] for p in pts]), 1)[0])


def _possessive(name: str) -> str:
    return name + ("'" if name.endswith("s") else "'s")


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(r) + " |" for r in rows]


def markdown_table(scope: str, records: list[dict], methods, notes: dict) -> str:
    """The scope's tables: time and speedup, memory, GFLOP/s against sgemm; slopes, differences, notes, errors."""
    baseline = BASELINE[scope]
    mib = 1 << 20
    by = {(r["n"], r["method"]): r for r in records}
    lengths = sorted({r["n"] for r in records})

    def cell(n, m, key, fmt):
        r = by.get((n, m))
        return fmt(r[key]) if r and r.get(key) is not None else "-"

    lines = [f"### {TITLES[scope]}", "",
             f"Time: median seconds, and {_possessive(baseline)} time / this time (x > 1: faster than {baseline}).", ""]
    lines += _table(["n"] + [f"{m} {s}" for m in methods for s in ("s", "x")],
                    [[str(n)] + [c for m in methods for c in (cell(n, m, "seconds", "{:.3g}".format),
                                                               cell(n, m, f"speedup_vs_{baseline}", "{:.2f}".format))]
                     for n in lengths])
    if any(r.get("peak_bytes") is not None for r in records):
        lines += ["", "Peak memory of the call: MiB above what was resident before it, and this / "
                  f"{_possessive(baseline)}.", ""]
        lines += _table(["n"] + [f"{m} {s}" for m in methods for s in ("MiB", "x")],
                        [[str(n)] + [c for m in methods for c in (
                            cell(n, m, "peak_bytes", lambda b: f"{b / mib:.0f}"),
                            cell(n, m, f"memory_vs_{baseline}", "{:.2f}".format))] for n in lengths])
    lines += ["", "Useful GFLOP/s (the scope's products, counted once for all methods) and, in brackets, the fraction "
              "of NumPy's sgemm rate measured in the same rounds (= the sgemm floor's time / this time).", ""]
    rows = []
    for n in lengths:
        first = next((by[(n, m)] for m in methods if (n, m) in by and by[(n, m)].get("sgemm_flops_per_s")), None)
        if first is None:
            continue
        rows.append([str(n), f"{first['flops'] / 1e9:.1f}", f"{first['sgemm_flops_per_s'] / 1e9:.0f}",
                     f"{first['flops'] / first['sgemm_flops_per_s']:.3g}"]
                    + [f"{by[(n, m)]['flops_per_s'] / 1e9:.0f} ({by[(n, m)]['fraction_of_sgemm']:.0%})"
                       if (n, m) in by and by[(n, m)].get("fraction_of_sgemm") else "-" for m in methods])
    lines += _table(["n", "GFLOP", "sgemm GFLOP/s", "floor s"] + list(methods), rows)
    slopes = []
    for m in methods:
        rs = [r for r in records if r["method"] == m]
        st = fitted_slope([r["n"] for r in rs], [r.get("seconds") for r in rs])
        sm = fitted_slope([r["n"] for r in rs], [r.get("peak_bytes") for r in rs])
        slopes.append(f"{m}: time {st:.2f}" if st is not None else f"{m}: time -")
        slopes[-1] += f", memory {sm:.2f}" if sm is not None else ""
    lines += ["", "Fitted log-log slopes (larger half of the lengths): " + "; ".join(slopes) + "."]
    diffs = [f"{r['method']} {r['max_abs_diff']:.1e}" for r in records
             if r.get("max_abs_diff") is not None and r["n"] == lengths[0] and r["method"] not in ("transformers",)]
    if diffs:
        against = "transformers'" if scope != "kernel" else "the numpy reference's"
        lines.append(f"Largest |output - {against}| at n={lengths[0]}: " + ", ".join(diffs) + ".")
    lines += [f"- {m}: {note}" for m, note in notes.items()]
    lines += [f"- {r['method']} at {r['n']}: {r.get('error') or r.get('memory_error')}" for r in records
              if r.get("error") or r.get("memory_error")]
    return "\n".join(lines) + "\n"


def write_plot(path: Path, scope: str, records: list[dict], methods) -> str | None:
    """Log-log time and memory against n, fitted slopes in the legend, dashed n and n^2 guides. plotly -> HTML."""
    try:
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots
    except ImportError:
        return None
    fig = make_subplots(rows=1, cols=2, subplot_titles=("time (s)", "peak memory of the call (bytes)"))
    for col, metric in ((1, "seconds"), (2, "peak_bytes")):
        anchor = None
        for m in methods:
            pts = sorted((r["n"], r[metric]) for r in records if r["method"] == m and r.get(metric))
            if not pts:
                continue
            s = fitted_slope(*zip(*pts))
            name = f"{m} (slope {s:.2f})" if s is not None else m
            fig.add_trace(go.Scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], mode="lines+markers", name=name,
                                     legendgroup=m, showlegend=col == 1), row=1, col=col)
            anchor = anchor or pts[0]
        if anchor:
            n0, y0 = anchor
            ns = sorted({r["n"] for r in records})
            for power, label in ((1, "n"), (2, "n^2")):
                fig.add_trace(go.Scatter(x=ns, y=[y0 * (n / n0) ** power for n in ns], mode="lines", name=label,
                                         line=dict(dash="dash", color="gray" if power == 1 else "silver"),
                                         legendgroup=label, showlegend=col == 1), row=1, col=col)
    fig.update_xaxes(type="log", title_text="sequence length n")
    fig.update_yaxes(type="log")
    fig.update_layout(title=f"Longformer {TITLES[scope]}: scaling with sequence length (longformer-base shape)")
    fig.write_html(path, include_plotlyjs="cdn")
    return str(path)


# RESULTS.md: the bench rewrites the part between these markers and leaves the prose around it alone
GENERATED_BEGIN = "<!-- written by `longformer-lab bench`: begin (the bench replaces what is between the markers) -->"
GENERATED_END = "<!-- written by `longformer-lab bench`: end -->"


def results_section(meta: dict, tables: list[str], started: str, minutes: float) -> str:
    """The generated part of RESULTS.md: the exact command, when and how long, the machine, the BLAS kernel in use
    (threadpoolctl, in the measuring process), the versions, what the numba backend tuned, and the tables."""
    blas = meta.get("blas") or {}
    pools = []
    for pool in blas.get("threadpools", []):
        details = [str(x) for x in (pool.get("version"), pool.get("architecture"), pool.get("threading_layer")) if x]
        details.append(f"{pool.get('num_threads')} threads")
        pools.append(f"{Path(pool.get('filepath') or '?').name}: {pool.get('internal_api')} ({', '.join(details)})")
    lines = [
        GENERATED_BEGIN, "",
        f"Command: `{meta.get('command')}` ({meta.get('repeats')} timed round{'s' * (meta.get('repeats') != 1)} "
        "per size after a warm-up); "
        f"started {started}, took {minutes:.1f} min.", "",
        f"- Machine: {meta.get('machine')}.",
        f"- NumPy's BLAS: {blas.get('name', '?')} {blas.get('version', '')}; thread pools in the measuring process: "
        + ("; ".join(pools) or "none found") + ".",
        f"- Versions: numpy {meta.get('numpy')}, numba {meta.get('numba')} (threading layer "
        f"{meta.get('numba_threading_layer')}, {meta.get('numba_threads')} threads), torch {meta.get('torch')}, "
        f"transformers {meta.get('transformers')}.",
        "- Threading and BLAS variables inherited from the environment (as a measuring process started): "
        + (", ".join(f"{k}={v}" for k, v in sorted((meta.get("env") or {}).items()))
           or f"none ({', '.join(v + '*' for v in THREADING_VARIABLES)})") + ".",
        f"- Set by the numba backend itself: {'; '.join(meta.get('numba_openblas') or ['nothing'])}.",
        "- Skipped: " + ("; ".join(f"{m} ({why})" for m, why in (meta.get("skipped") or {}).items()) or "nothing")
        + ".", "",
    ]
    return "\n".join(lines + [t.strip() + "\n" for t in tables] + [GENERATED_END])


def update_results(path: Path, section: str) -> None:
    """Put `section` between the markers of the RESULTS.md at `path` (a new file, or one without the markers, gets
    it at its end)."""
    text = path.read_text() if path.exists() else "# Benchmark results\n\n"
    if GENERATED_BEGIN in text and GENERATED_END in text:
        head, rest = text.split(GENERATED_BEGIN, 1)
        text = head + section + rest.split(GENERATED_END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)

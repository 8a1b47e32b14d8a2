"""Plotly figures for every page. Functions take NumPy arrays and return `plotly.graph_objects.Figure`; no streamlit.

Attention is drawn on a log10 colour scale by default: a pretrained head puts most of a row's weight on a few keys,
and on a linear scale the rest of the band (the part Longformer computes) would look empty. Pairs that are never
computed have probability exactly 0; on the log scale they stay blank, so the pattern itself is visible.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

LOG_FLOOR = -5.0  # log10 of the smallest probability the colour scale shows; smaller (and 0) is blank
SCALES = ("log", "linear")
COLORSCALE = "Viridis"
LOCAL_COLOR, GLOBAL_COLOR = "rgb(31,119,180)", "rgb(230,110,0)"  # as explore.LOCAL_RGB, GLOBAL_RGB


def png_config(filename: str) -> dict:
    """plotly config: the modebar's camera button saves a PNG named `filename` at twice the screen size."""
    return {"displaylogo": False, "toImageButtonOptions": {"format": "png", "filename": filename, "scale": 2}}


def colour(z: np.ndarray, scale: str) -> tuple[np.ndarray, dict]:
    """(values to colour, colour bar settings) for probabilities z on the chosen scale."""
    z = np.asarray(z, dtype=np.float32)
    if scale == "log":
        with np.errstate(divide="ignore", invalid="ignore"):
            shown = np.where(z > 10 ** LOG_FLOOR, np.log10(z), np.nan).astype(np.float32)
        ticks = np.arange(LOG_FLOOR, 0.5, 1.0)
        return shown, dict(zmin=LOG_FLOOR, zmax=0.0, colorbar=dict(
            title="p", tickvals=ticks, ticktext=[f"1e{int(t)}" if t else "1" for t in ticks]))
    return z, dict(zmin=0.0, zmax=float(np.nanmax(z)) if z.size and np.isfinite(z).any() else 1.0,
                   colorbar=dict(title="p"))


def _global_markers(fig, positions, edge):
    """Orange triangles at `edge`, just outside the matrix, that point at the global tokens' columns and rows."""
    positions = np.asarray(positions)
    if not len(positions):
        return
    hover = [f"global token {p}" for p in positions]
    marker = dict(color=GLOBAL_COLOR, size=7)
    fig.add_trace(go.Scatter(x=positions, y=np.full(len(positions), edge), mode="markers", name="global column",
                             marker=dict(symbol="triangle-down", **marker), hovertext=hover, hoverinfo="text",
                             showlegend=False))
    fig.add_trace(go.Scatter(x=np.full(len(positions), edge), y=positions, mode="markers", name="global row",
                             marker=dict(symbol="triangle-right", **marker), hovertext=hover, hoverinfo="text",
                             showlegend=False))


def matrix_figure(z: np.ndarray, block: int, n: int, global_positions, scale: str = "log", title: str = "",
                  tokens=None) -> go.Figure:
    """The full N x N attention (z: exact, or block-max downsampled with `block` tokens per cell). Axes count
    tokens either way; global rows and columns are marked by orange triangles outside the matrix."""
    shown, cbar = colour(z, scale)
    centre = (block - 1) / 2
    what = "p" if block == 1 else f"max p over {block}x{block} tokens"
    fig = go.Figure(go.Heatmap(
        z=shown, customdata=np.asarray(z, np.float32), x0=centre, dx=block, y0=centre, dy=block,
        colorscale=COLORSCALE,
        hovertemplate=f"query %{{y}}<br>key %{{x}}<br>{what} = %{{customdata:.3g}}<extra></extra>",
        **cbar))
    edge = -max(1.5, 0.02 * n)
    _global_markers(fig, global_positions, edge)
    fig.update_xaxes(title="key position", range=[2 * edge, n - 0.5], constrain="domain")
    fig.update_yaxes(title="query position", range=[n - 0.5, 2 * edge], scaleanchor="x", constrain="domain")
    if tokens is not None and block == 1 and n <= 48:
        ticks = dict(tickvals=list(range(n)), ticktext=list(tokens), tickfont=dict(size=9))
        fig.update_xaxes(tickangle=-60, **ticks)
        fig.update_yaxes(**ticks)
    fig.update_layout(title=title, height=620, margin=dict(l=10, r=10, t=50, b=10))
    return fig


def band_figure(global_cols: np.ndarray, band: np.ndarray, block: int, n: int, w: int, global_positions,
                scale: str = "log", title: str = "") -> go.Figure:
    """Longformer's own layout: query x relative offset (-W .. W), with the G global columns beside it.
    Rows are queries (block-max over `block` queries per row when the input is long)."""
    G = global_cols.shape[1]
    centre = (block - 1) / 2
    band_shown, cbar = colour(band, scale)
    panels = 2 if G else 1
    fig = make_subplots(rows=1, cols=panels, shared_yaxes=True, horizontal_spacing=0.02,
                        column_widths=[max(G, 0.12 * (2 * w + 1)), 2 * w + 1] if G else None,
                        subplot_titles=(["global columns", f"band: key = query + offset (W = {w})"] if G
                                        else [f"band: key = query + offset (W = {w})"]))
    what = "p" if block == 1 else f"max p over {block} queries"
    if G:
        g_shown, _ = colour(global_cols, scale)
        fig.add_trace(go.Heatmap(
            z=g_shown, customdata=np.asarray(global_cols, np.float32), x=[str(p) for p in global_positions],
            y0=centre, dy=block, colorscale=COLORSCALE, showscale=False, zmin=cbar["zmin"], zmax=cbar["zmax"],
            hovertemplate=f"query %{{y}}<br>global token %{{x}}<br>{what} = %{{customdata:.3g}}<extra></extra>"),
            row=1, col=1)
        fig.update_xaxes(title="global token", type="category", row=1, col=1,
                         showticklabels=G <= 24)
    fig.add_trace(go.Heatmap(
        z=band_shown, customdata=np.asarray(band, np.float32), x0=-w, dx=1, y0=centre, dy=block,
        colorscale=COLORSCALE, **cbar,
        hovertemplate=f"query %{{y}}<br>offset %{{x}}<br>{what} = %{{customdata:.3g}}<extra></extra>"),
        row=1, col=panels)
    fig.update_xaxes(title="offset t - W (key - query)", row=1, col=panels)
    fig.update_yaxes(title="query position", autorange="reversed", row=1, col=1)
    fig.update_layout(title=title, height=620, margin=dict(l=10, r=10, t=70, b=10))
    return fig


def query_figure(local_w: np.ndarray, global_w: np.ndarray, query: int, n: int, w: int, title: str = "") -> go.Figure:
    """How much one query attends to each key: local (band) in blue, global in orange. Only non-zero keys.
    A local query's chart opens on its window (twice as wide); double-click it to see every key."""
    fig = go.Figure()
    for weights, name, color in ((local_w, "local (band)", LOCAL_COLOR), (global_w, "global", GLOBAL_COLOR)):
        keys = np.flatnonzero(weights)
        fig.add_trace(go.Bar(x=keys, y=weights[keys], name=name, marker_color=color, marker_line_width=0,
                             hovertemplate="key %{x}: %{y:.4f}<extra>" + name + "</extra>"))
    fig.add_vline(x=query, line=dict(color="#d62728", dash="dot", width=1), annotation_text=f"query {query}")
    fig.update_layout(title=title, height=300, barmode="overlay", bargap=0, margin=dict(l=10, r=10, t=50, b=10),
                      xaxis=dict(title="key position", range=[max(-0.5, query - 2 * w - 0.5),
                                                             min(n - 0.5, query + 2 * w + 0.5)]
                                 if local_w.any() else [-0.5, n - 0.5]),  # a global query: every key
                      yaxis=dict(title="attention"),
                      legend=dict(orientation="h", y=1.02, x=1, xanchor="right", yanchor="bottom"))
    return fig


def model_view_figure(mosaic: np.ndarray, cells: int, block: int, scale: str = "log", title: str = "") -> go.Figure:
    """Small multiples: one full attention matrix per layer (rows) and head (columns), tiled into one heatmap."""
    shown, cbar = colour(mosaic, scale)
    L = (mosaic.shape[0] + 1) // (cells + 1)
    H = (mosaic.shape[1] + 1) // (cells + 1)

    def centres(k):  # the middle of each of k tiles
        return [i * (cells + 1) + (cells - 1) / 2 for i in range(k)]

    fig = go.Figure(go.Heatmap(z=shown, colorscale=COLORSCALE, hoverinfo="skip", **cbar))
    fig.update_xaxes(tickvals=centres(H), ticktext=[f"head {h}" for h in range(H)], side="top", showgrid=False,
                     zeroline=False)
    fig.update_yaxes(tickvals=centres(L), ticktext=[f"layer {layer}" for layer in range(L)], autorange="reversed",
                     showgrid=False, zeroline=False, scaleanchor="x")
    note = "" if block == 1 else f" (block-max, {block} tokens per cell)"
    # square cells: the mosaic is L x H matrices, about 820 px wide on a wide page
    fig.update_layout(title=title + note, height=140 + int(820 * L / H), margin=dict(l=10, r=10, t=80, b=10))
    return fig


def patterns_figure(patterns) -> go.Figure:
    """The four masks of the paper's Figure 2 side by side, each titled with its count of computed pairs."""
    titles = [f"{p.name}<br>{p.pairs:,} pairs = {p.fraction:.1%} of n²" for p in patterns]
    fig = make_subplots(rows=1, cols=len(patterns), subplot_titles=titles, horizontal_spacing=0.03)
    for k, p in enumerate(patterns, start=1):
        fig.add_trace(go.Heatmap(z=p.mask.astype(np.uint8), colorscale=[[0, "#f4f4f4"], [1, "#1f3b73"]],
                                 zmin=0, zmax=1, showscale=False,
                                 hovertemplate="query %{y}<br>key %{x}<br>computed: %{z}<extra></extra>"),
                      row=1, col=k)
        fig.update_yaxes(autorange="reversed", scaleanchor=f"x{k if k > 1 else ''}", row=1, col=k,
                         showticklabels=k == 1, title="query" if k == 1 else None)
        fig.update_xaxes(title="key", row=1, col=k, constrain="domain")
    fig.update_layout(height=430, margin=dict(l=10, r=10, t=90, b=10), font=dict(size=11))
    fig.update_annotations(font_size=12)
    return fig


def scaling_figure(series: dict, fits: dict, title: str = "") -> go.Figure:
    """Log-log time and peak memory against sequence length, one line per method, with n and n^2 guides.

    series: method -> {"n": [...], "seconds": [...], "peak_bytes": [...]} ; fits: (method, metric) -> slope.
    """
    fig = make_subplots(rows=1, cols=2, subplot_titles=["time per attention call", "peak memory"],
                        horizontal_spacing=0.1)
    palette = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2"]
    all_n = sorted({n for s in series.values() for n in s["n"]})
    for col, metric, unit in ((1, "seconds", 1.0), (2, "peak_bytes", 2.0 ** 20)):
        lowest = []
        for k, (method, s) in enumerate(series.items()):
            n = np.asarray(s["n"], dtype=float)
            y = np.asarray(s.get(metric) or [np.nan] * len(n), dtype=float) / unit
            ok = np.isfinite(y) & (y > 0)
            if not ok.any():
                continue
            slope = fits.get((method, metric))
            label = method + ("" if slope is None else f" (slope {slope:.2f})")
            fig.add_trace(go.Scatter(x=n[ok], y=y[ok], mode="lines+markers", name=label,
                                     legendgroup=f"{metric}", legendgrouptitle_text=("time" if col == 1 else "memory"),
                                     line=dict(color=palette[k % len(palette)])), row=1, col=col)
            lowest.append((n[ok][0], y[ok][0]))
        if lowest and len(all_n) > 1:
            n0, y0 = min(lowest, key=lambda p: (p[0], p[1]))
            grid = np.asarray([all_n[0], all_n[-1]], dtype=float)
            for power, dash in ((1, "dot"), (2, "dash")):
                fig.add_trace(go.Scatter(x=grid, y=y0 * (grid / n0) ** power, mode="lines",
                                         name=f"∝ n{'²' if power == 2 else ''}", legendgroup=f"{metric}",
                                         line=dict(color="gray", dash=dash, width=1), showlegend=col == 1),
                              row=1, col=col)
        fig.update_xaxes(type="log", title="sequence length n", row=1, col=col)
        fig.update_yaxes(type="log", title="seconds" if col == 1 else "MiB", row=1, col=col)
    fig.update_layout(title=title, height=480, margin=dict(l=10, r=10, t=70, b=10))
    return fig


def parity_figure(rows: list[dict], names: list[str], tolerances: dict) -> go.Figure:
    """Largest difference from the reference per layer, one panel per output, with each output's atol."""
    outputs = list(dict.fromkeys(row["output"] for row in rows))
    fig = make_subplots(rows=1, cols=len(outputs), subplot_titles=outputs, shared_yaxes=True,
                        horizontal_spacing=0.04)
    palette = ["#1f77b4", "#2ca02c", "#9467bd", "#8c564b"]
    for col, output in enumerate(outputs, start=1):
        mine = [row for row in rows if row["output"] == output]
        layers = [row["layer"] for row in mine]
        for k, name in enumerate(names):
            y = [max(row[name], 1e-10) for row in mine]  # an exact 0 cannot sit on a log axis
            fig.add_trace(go.Scatter(x=layers, y=y, mode="lines+markers", name=name, legendgroup=name,
                                     showlegend=col == 1, line=dict(color=palette[k % len(palette)])), row=1, col=col)
        atol = tolerances[output][0]
        fig.add_trace(go.Scatter(x=[min(layers) - 0.3, max(layers) + 0.3], y=[atol, atol], mode="lines",
                                 name="atol", legendgroup="atol", showlegend=col == 1,
                                 line=dict(color="gray", dash="dash", width=1)), row=1, col=col)
        fig.update_xaxes(title="layer", dtick=1, row=1, col=col)
    fig.update_yaxes(type="log")
    fig.update_yaxes(title="max |x − x_ref|", row=1, col=1)
    fig.update_layout(height=360, margin=dict(l=10, r=10, t=60, b=10))
    return fig

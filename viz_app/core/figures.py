"""Plotly figures for every page. Functions take NumPy arrays (and the tokens, to name them) and return
`plotly.graph_objects.Figure`; no streamlit.

Attention is drawn on a log10 colour scale by default: a pretrained head puts most of a row's weight on a few keys,
and on a linear scale the rest of the band (the part Longformer computes) would look empty. Pairs that are never
computed have probability exactly 0: on either scale they stay blank, so the pattern itself is visible.

Clicks: traces a user can click carry customdata (kind, value) on each point, e.g. ("query", 1960) on the matrix's
row strip or ("head", 3002) on a tile (layer 3, head 2); viz_app/core/links.py reads them back.
"""

from __future__ import annotations

import html

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

LOG_FLOOR = -5.0  # log10 of the smallest probability the colour scale shows; smaller (and 0) is blank
SCALES = ("log", "linear")
COLORSCALE = "Viridis"
LOCAL_COLOR, GLOBAL_COLOR, QUERY_COLOR = "rgb(31,119,180)", "rgb(230,110,0)", "#d62728"
LOCAL_RGB, GLOBAL_RGB = (31, 119, 180), (230, 110, 0)
MATRIX_HEIGHT = 860  # the matrix fills the page's width; this is its height in pixels
TICK_LABELS = 48  # at most this many token labels on an axis


def esc(s: str) -> str:
    """Text for plotly's hover and labels, which read HTML: <, > and & escaped (quotes stay readable)."""
    return html.escape(s, quote=False)


def png_config(filename: str) -> dict:
    """plotly config: the modebar's camera button saves a PNG named `filename` at twice the screen size."""
    return {"displaylogo": False, "toImageButtonOptions": {"format": "png", "filename": filename, "scale": 2}}


def colour(z: np.ndarray, scale: str) -> tuple[np.ndarray, dict]:
    """(values to colour, colour bar settings) for probabilities z on the chosen scale; 0 (never computed) is NaN,
    which plotly leaves blank."""
    z = np.asarray(z, dtype=np.float32)
    if scale == "log":
        with np.errstate(divide="ignore", invalid="ignore"):
            shown = np.where(z > 10 ** LOG_FLOOR, np.log10(z), np.nan).astype(np.float32)
        ticks = np.arange(LOG_FLOOR, 0.5, 1.0)
        return shown, dict(zmin=LOG_FLOOR, zmax=0.0, colorbar=dict(
            title="p", tickvals=ticks, ticktext=[f"1e{int(t)}" if t else "1" for t in ticks]))
    shown = np.where(z > 0, z, np.nan).astype(np.float32)
    top = float(np.nanmax(shown)) if np.isfinite(shown).any() else 1.0
    return shown, dict(zmin=0.0, zmax=top, colorbar=dict(title="p"))


def short(s: str, limit: int = 14) -> str:
    s = s.replace("\n", "⏎")
    return s if len(s) <= limit else s[:limit - 1] + "…"


def token_ticks(lo: int, hi: int, surfaces, limit: int = TICK_LABELS) -> dict:
    """Axis ticks naming tokens lo..hi-1: every token when they fit, else every k-th, as 'position text'."""
    step = max(1, -(-(hi - lo) // limit))
    vals = list(range(lo, hi, step))
    text = [short(surfaces[j], 12) if step == 1 and hi - lo <= 64 else f"{j:,} {short(surfaces[j], 10)}"
            for j in vals]
    return dict(tickvals=vals, ticktext=text, tickfont=dict(size=9 if step == 1 else 10))


def _range_name(a: int, b: int, surfaces) -> str:
    """Tokens a..b-1 named: '1,952–1,967 “the Rabbit-hole…”'."""
    if b - a == 1:
        return f"{a:,} {esc(repr(surfaces[a]))}"
    text = esc(short(" ".join(surfaces[a:min(b, a + 5)]).strip() or surfaces[a], 18))
    return f"{a:,}–{b - 1:,} “{text}”"


def matrix_hover(m, surfaces) -> list[list[str]]:
    """One hover text per cell: exact, the pair by name; downsampled, the token ranges it covers and the strongest
    pair in it, by name (kept short: 128 x 128 cells each carry one)."""
    if m.exact:
        rows = [_range_name(int(a), int(a) + 1, surfaces) for a in m.rows[:-1]]
        cols = [_range_name(int(a), int(a) + 1, surfaces) for a in m.cols[:-1]]
        return [[f"{row} → {col}<br>p = {m.z[r, c]:.3g}" if m.z[r, c] > 0 else f"{row} → {col}<br>never computed"
                 for c, col in enumerate(cols)] for r, row in enumerate(rows)]
    rows = [f"{int(a):,}–{int(b) - 1:,}" for a, b in zip(m.rows[:-1], m.rows[1:], strict=True)]
    cols = [f"{int(a):,}–{int(b) - 1:,}" for a, b in zip(m.cols[:-1], m.cols[1:], strict=True)]
    names = {}

    def name(j):
        if j not in names:
            names[j] = f"{j:,} {esc(repr(surfaces[j]))}"
        return names[j]

    return [[f"max {m.z[r, c]:.3g}: {name(int(m.best_q[r, c]))} → {name(int(m.best_k[r, c]))}<br>q {row} · k {col}"
             if m.z[r, c] > 0 else f"q {row} · k {col}<br>never computed" for c, col in enumerate(cols)]
            for r, row in enumerate(rows)]


def _strips(fig, m, surfaces, edge_x, edge_y):
    """Clickable strips beside the matrix: a marker per row of cells (left, makes it the query) and per column
    (top, makes it the key whose attention is shown)."""
    rc = [(int(m.rows[r]) + int(m.rows[r + 1]) - 1) / 2 for r in range(len(m.rows) - 1)]
    cc = [(int(m.cols[c]) + int(m.cols[c + 1]) - 1) / 2 for c in range(len(m.cols) - 1)]
    rq = [int(m.rows[r]) + (int(m.rows[r + 1]) - int(m.rows[r])) // 2 for r in range(len(rc))]
    ck = [int(m.cols[c]) + (int(m.cols[c + 1]) - int(m.cols[c])) // 2 for c in range(len(cc))]
    style = dict(symbol="square", size=7, color="rgba(120,120,120,0.35)")
    fig.add_trace(go.Scatter(x=np.full(len(rc), edge_x), y=rc, mode="markers", marker=style, name="rows",
                             customdata=[["query", q] for q in rq], showlegend=False,
                             hovertext=[f"query {_range_name(int(m.rows[r]), int(m.rows[r + 1]), surfaces)}"
                                        "<br>click: make it the query" for r in range(len(rc))],
                             hoverinfo="text"))
    fig.add_trace(go.Scatter(x=cc, y=np.full(len(cc), edge_y), mode="markers", marker=style, name="columns",
                             customdata=[["key", k] for k in ck], showlegend=False,
                             hovertext=[f"key {_range_name(int(m.cols[c]), int(m.cols[c + 1]), surfaces)}"
                                        "<br>click: who attends to it" for c in range(len(cc))],
                             hoverinfo="text"))


def _global_markers(fig, positions, lo_q, hi_q, lo_k, hi_k, edge_x, edge_y):
    """Orange triangles just outside the matrix that point at the global tokens' columns and rows."""
    positions = np.asarray(positions)
    marker = dict(color=GLOBAL_COLOR, size=8)
    cols = positions[(positions >= lo_k) & (positions < hi_k)]
    rows = positions[(positions >= lo_q) & (positions < hi_q)]
    if len(cols):
        fig.add_trace(go.Scatter(x=cols, y=np.full(len(cols), edge_y), mode="markers", name="global column",
                                 marker=dict(symbol="triangle-down", **marker), showlegend=False,
                                 hovertext=[f"global token {p}" for p in cols], hoverinfo="text"))
    if len(rows):
        fig.add_trace(go.Scatter(x=np.full(len(rows), edge_x), y=rows, mode="markers", name="global row",
                                 marker=dict(symbol="triangle-right", **marker), showlegend=False,
                                 hovertext=[f"global token {p}" for p in rows], hoverinfo="text"))


def matrix_figure(m, surfaces, global_positions, scale: str = "log", title: str = "", query: int | None = None,
                  key: int | None = None, height: int = MATRIX_HEIGHT) -> go.Figure:
    """A rectangle of the attention matrix (views.Matrix: the whole of it downsampled, or a region exactly). Axes
    count tokens and name them where they fit; every hover names the tokens; global rows and columns are marked by
    orange triangles; the query's row and the chosen key's column are outlined in red."""
    shown, cbar = colour(m.z, scale)
    lo_q, hi_q, lo_k, hi_k = int(m.rows[0]), int(m.rows[-1]), int(m.cols[0]), int(m.cols[-1])
    fig = go.Figure(go.Heatmap(
        z=shown, x=np.asarray(m.cols, float) - 0.5, y=np.asarray(m.rows, float) - 0.5, colorscale=COLORSCALE,
        text=matrix_hover(m, surfaces), hovertemplate="%{text}<extra></extra>", **cbar))
    pad_k, pad_q = max(0.8, 0.012 * (hi_k - lo_k)), max(0.8, 0.012 * (hi_q - lo_q))
    edge_x, edge_y = lo_k - 0.5 - pad_k, lo_q - 0.5 - pad_q
    _strips(fig, m, surfaces, edge_x - pad_k, edge_y - pad_q)
    _global_markers(fig, global_positions, lo_q, hi_q, lo_k, hi_k, edge_x, edge_y)
    for pos, lo, hi, axis in ((query, lo_q, hi_q, "y"), (key, lo_k, hi_k, "x")):
        if pos is not None and lo <= pos < hi:
            line = dict(color=QUERY_COLOR, width=1.5)
            if axis == "y":
                fig.add_shape(type="rect", x0=lo_k - 0.5, x1=hi_k - 0.5, y0=pos - 0.5, y1=pos + 0.5, line=line)
            else:
                fig.add_shape(type="rect", y0=lo_q - 0.5, y1=hi_q - 0.5, x0=pos - 0.5, x1=pos + 0.5, line=line)
    fig.update_xaxes(title="key", range=[edge_x - 2 * pad_k, hi_k - 0.5], side="top", showgrid=False,
                     zeroline=False, **token_ticks(lo_k, hi_k, surfaces))
    fig.update_yaxes(title="query", range=[hi_q - 0.5, edge_y - 2 * pad_q], showgrid=False, zeroline=False,
                     **token_ticks(lo_q, hi_q, surfaces))
    if hi_k - lo_k <= 64:
        fig.update_xaxes(tickangle=-60)
    fig.update_layout(title=dict(text=title, y=0.995, yanchor="top"), height=height, dragmode="select",
                      margin=dict(l=10, r=10, t=110, b=10), clickmode="event+select")
    return fig


def band_figure(global_cols: np.ndarray, band: np.ndarray, block: int, n: int, w: int, global_positions, surfaces,
                scale: str = "log", title: str = "", query: int | None = None, dilation: int | None = 1) -> go.Figure:
    """Longformer's own layout: query x band slot t - W (-W .. W, or -W .. 0 when autoregressive: band has S
    columns), with the G global columns beside it. Slot t holds key query + d (t - W); dilation None: the heads
    shown have different dilations (a mean), so a slot names no single key.
    Rows are queries (block-max over `block` queries per row when the input is long). Global queries' rows are
    blank here (they attend to every token, through their own projections) and marked in orange."""
    G = global_cols.shape[1]
    R, S = band.shape
    band_shown, cbar = colour(band, scale)
    what = ("key = query + offset" if dilation == 1 else f"key = query + {dilation}·offset" if dilation
            else "key = query + d·offset, d per head")
    band_title = f"band: {what} (W = {w}{', causal' if S == w + 1 else ''})"
    panels = 2 if G else 1
    fig = make_subplots(rows=1, cols=panels, shared_yaxes=True, horizontal_spacing=0.02,
                        column_widths=[max(G, 0.12 * S), S] if G else None,
                        subplot_titles=(["global columns", band_title] if G else [band_title]))
    row_start = np.arange(R) * block
    row_names = [_range_name(int(a), int(min(a + block, n)), surfaces) for a in row_start]
    y = row_start + (block - 1) / 2
    if G:
        g_shown, _ = colour(global_cols, scale)
        gnames = [_range_name(int(p), int(p) + 1, surfaces) for p in global_positions]
        text = [[f"query {row_names[r]}<br>global key {gnames[s]}<br>p = {global_cols[r, s]:.3g}"
                 for s in range(G)] for r in range(R)]
        fig.add_trace(go.Heatmap(
            z=g_shown, x=[str(p) for p in global_positions], y=y, colorscale=COLORSCALE, showscale=False,
            zmin=cbar["zmin"], zmax=cbar["zmax"], text=text, hovertemplate="%{text}<extra></extra>"), row=1, col=1)
        fig.update_xaxes(title="global token", type="category", row=1, col=1, showticklabels=G <= 24)
    offsets = np.arange(S) - w  # (S,) t - W
    text = []
    for r, a in enumerate(row_start):
        line = []
        for t, off in enumerate(offsets):
            key = int(a) + int(off) * (dilation or 0)
            kname = (f"{key:,} {surfaces[key]!r}" if dilation and block == 1 and 0 <= key < n
                     else f"offset {off:+d}")
            line.append(f"q {row_names[r]}<br>k {esc(kname)}: {band[r, t]:.3g}")
        text.append(line)
    fig.add_trace(go.Heatmap(z=band_shown, x=offsets, y=y, colorscale=COLORSCALE, text=text,
                             hovertemplate="%{text}<extra></extra>", **cbar), row=1, col=panels)
    # a clickable strip of rows on the left of the band, and the global queries' rows marked
    fig.add_trace(go.Scatter(x=np.full(R, -w - 1.5), y=y, mode="markers", showlegend=False, name="rows",
                             marker=dict(symbol="square", size=6, color="rgba(120,120,120,0.35)"),
                             customdata=[["query", int(a + block // 2)] for a in row_start],
                             hovertext=[f"query {r}<br>click: make it the query" for r in row_names],
                             hoverinfo="text"), row=1, col=panels)
    gp = np.asarray(global_positions)
    if len(gp):
        fig.add_trace(go.Scatter(x=np.full(len(gp), S - w + 0.5), y=gp, mode="markers", showlegend=False,
                                 name="global row", marker=dict(symbol="triangle-left", size=8, color=GLOBAL_COLOR),
                                 hovertext=[f"global token {p}: its row attends to every token, so it is not in "
                                            "the band (see the matrix)" for p in gp], hoverinfo="text"),
                      row=1, col=panels)
    if query is not None:
        fig.add_hline(y=query, line=dict(color=QUERY_COLOR, width=1, dash="dot"), row=1, col=panels)
    fig.update_xaxes(title="band slot t - W (key - query, times the dilation)", range=[-w - 2.5, S - w + 1.5],
                     row=1, col=panels)
    fig.update_yaxes(title="query", autorange="reversed", row=1, col=1, **token_ticks(0, n, surfaces))
    fig.update_layout(title=title, height=MATRIX_HEIGHT, margin=dict(l=10, r=10, t=70, b=10), dragmode="select",
                      clickmode="event+select")
    return fig


def weights_figure(from_local: np.ndarray, from_global: np.ndarray, centre: int, w: int, surfaces, side: str,
                   title: str = "") -> go.Figure:
    """One row (side "key": what `centre` attends to) or one column (side "query": who attends to `centre`) as
    bars: blue through the band (or from local queries), orange global. Clicking a bar makes that token the query.
    The chart opens on the window around `centre` (twice as wide); double-click it to see every token."""
    n = len(from_local)
    fig = go.Figure()
    names = ("local (band)", "global") if side == "key" else ("from local queries", "from global queries")
    for weights, name, color in ((from_local, names[0], LOCAL_COLOR), (from_global, names[1], GLOBAL_COLOR)):
        pos = np.flatnonzero(weights)
        fig.add_trace(go.Bar(x=pos, y=weights[pos], name=name, marker_color=color, marker_line_width=0,
                             customdata=[["query", int(j)] for j in pos],
                             hovertext=[f"{side} {j:,} {esc(repr(surfaces[j]))}" for j in pos],
                             hovertemplate="%{hovertext}: %{y:.4f}<extra>" + name + "</extra>"))
    fig.add_vline(x=centre, line=dict(color=QUERY_COLOR, dash="dot", width=1),
                  annotation_text=f"{centre:,} {short(surfaces[centre])!r}")
    near = from_local.any() and w < n
    fig.update_layout(title=title, height=300, barmode="overlay", bargap=0, margin=dict(l=10, r=10, t=50, b=10),
                      xaxis=dict(title=f"{side} position", range=[max(-0.5, centre - 2 * w - 0.5),
                                                                min(n - 0.5, centre + 2 * w + 0.5)]
                                 if near else [-0.5, n - 0.5]),
                      yaxis=dict(title="attention"), clickmode="event+select",
                      legend=dict(orientation="h", y=1.02, x=1, xanchor="right", yanchor="bottom"))
    if near and 4 * w + 1 <= 64:
        fig.update_xaxes(**token_ticks(max(0, centre - 2 * w), min(n, centre + 2 * w + 1), surfaces), tickangle=-60)
    return fig


TOKENS_PER_LINE = 16


def token_grid_figure(surfaces, lo: int, hi: int, local_w: np.ndarray, global_w: np.ndarray, query: int,
                      global_positions, hits=()) -> go.Figure:
    """The tokens lo..hi-1 in lines of TOKENS_PER_LINE, each shaded by the query's attention (blue local, orange
    global), the query outlined in red, search hits underlined. Click a token to make it the query."""
    idx = np.arange(lo, hi)
    col, line = (idx - lo) % TOKENS_PER_LINE, (idx - lo) // TOKENS_PER_LINE
    top = max(float(local_w.max()), float(global_w.max()), 1e-12)
    is_g = global_w[idx] > 0
    weight = np.where(is_g, global_w[idx], local_w[idx])
    alpha = np.sqrt(weight / top)
    colors = [f"rgba({r},{g},{b},{a:.3f})" for a, (r, g, b) in
              zip(alpha, [GLOBAL_RGB if x else LOCAL_RGB for x in is_g], strict=True)]
    gset, hitset = set(int(p) for p in global_positions), set(hits)
    border = [QUERY_COLOR if j == query else ("#222" if j in hitset else "rgba(0,0,0,0.08)") for j in idx]
    widths = [3 if j == query or j in hitset else 1 for j in idx]
    fig = go.Figure(go.Scatter(
        x=col, y=line, mode="markers+text", text=[esc(short(surfaces[j], 11)) for j in idx],
        textfont=dict(size=11), customdata=[["query", int(j)] for j in idx],
        marker=dict(symbol="square", size=34, color=colors, line=dict(color=border, width=widths)),
        hovertext=[f"{j:,} {esc(repr(surfaces[j]))}{' (global)' if j in gset else ''}: "
                   f"{weight[k]:.4f}" for k, j in enumerate(idx)], hoverinfo="text", showlegend=False))
    lines = int(line.max()) + 1 if len(idx) else 1
    fig.update_xaxes(visible=False, range=[-0.6, TOKENS_PER_LINE - 0.4])
    fig.update_yaxes(visible=False, range=[lines - 0.5, -0.5])
    fig.update_layout(height=60 + 40 * lines, margin=dict(l=5, r=5, t=10, b=5), clickmode="event+select",
                      plot_bgcolor="white", dragmode=False)
    # marker squares are 34 px; at the page's width a column is about 80 px, so the text fits its square loosely
    return fig


def tiles_figure(values: np.ndarray, title: str, unit: str, layer: int | None, head, fmt: str = ".3g",
                 colorscale: str = "Viridis") -> go.Figure:
    """A layers x heads heatmap of one number per head, each tile clickable (opens that layer and head), the
    chosen one outlined."""
    L, H = values.shape
    fig = go.Figure(go.Heatmap(z=values, x=list(range(H)), y=list(range(L)), colorscale=colorscale,
                               colorbar=dict(title=unit), hoverinfo="skip"))
    yy, xx = np.mgrid[0:L, 0:H]
    fig.add_trace(go.Scatter(
        x=xx.ravel(), y=yy.ravel(), mode="markers+text", text=[format(v, fmt) for v in values.ravel()],
        textfont=dict(size=10, color="white"), showlegend=False, name="tiles",
        marker=dict(symbol="square", size=38, color="rgba(0,0,0,0)"),
        customdata=[["head", int(layer_ * 1000 + head_)] for layer_, head_ in zip(yy.ravel(), xx.ravel(),
                                                                                 strict=True)],
        hovertext=[f"layer {a}, head {b}: {v:{fmt}} {unit}<br>click: open this head" for a, b, v in
                   zip(yy.ravel(), xx.ravel(), values.ravel(), strict=True)], hoverinfo="text"))
    if layer is not None and head != "mean":
        fig.add_shape(type="rect", x0=int(head) - 0.5, x1=int(head) + 0.5, y0=layer - 0.5, y1=layer + 0.5,
                      line=dict(color=QUERY_COLOR, width=3))
    fig.update_xaxes(title="head", tickvals=list(range(H)), side="top")
    fig.update_yaxes(title="layer", tickvals=list(range(L)), autorange="reversed")
    fig.update_layout(title=title, height=120 + 46 * L, margin=dict(l=10, r=10, t=80, b=10),
                      clickmode="event+select", dragmode=False)
    return fig


def profile_figure(profile: np.ndarray, per_bin: int, n: int, surfaces, layer: int | None = None) -> go.Figure:
    """Per layer, where the global tokens' own attention goes along the document (mean over heads and global
    tokens, summed over bins of `per_bin` tokens)."""
    L, B = profile.shape
    starts = np.arange(B) * per_bin
    text = [[f"layer {a}<br>tokens {_range_name(int(s), int(min(s + per_bin, n)), surfaces)}<br>"
             f"{profile[a, b]:.3g} of the global rows' attention" for b, s in enumerate(starts)] for a in range(L)]
    shown, cbar = colour(profile, "log")
    fig = go.Figure(go.Heatmap(z=shown, x=starts + (per_bin - 1) / 2, y=list(range(L)), colorscale=COLORSCALE,
                               text=text, hovertemplate="%{text}<extra></extra>", **cbar))
    if layer is not None:
        fig.add_hline(y=layer, line=dict(color=QUERY_COLOR, width=1, dash="dot"))
    fig.update_xaxes(title="key position", **token_ticks(0, n, surfaces, limit=16))
    fig.update_yaxes(title="layer", tickvals=list(range(L)), autorange="reversed")
    fig.update_layout(title="Where the global tokens look, layer by layer (their own rows; mean over heads)",
                      height=120 + 40 * L, margin=dict(l=10, r=10, t=60, b=10))
    return fig


def model_view_figure(mosaic: np.ndarray, cells: int, block: int, scale: str = "log", title: str = "",
                      layer: int | None = None, head=None) -> go.Figure:
    """Small multiples: one full attention matrix per layer (rows) and head (columns), tiled into one heatmap;
    click a tile to open that layer and head."""
    shown, cbar = colour(mosaic, scale)
    L = (mosaic.shape[0] + 1) // (cells + 1)
    H = (mosaic.shape[1] + 1) // (cells + 1)

    def centres(k):  # the middle of each of k tiles
        return [i * (cells + 1) + (cells - 1) / 2 for i in range(k)]

    fig = go.Figure(go.Heatmap(z=shown, colorscale=COLORSCALE, hoverinfo="skip", **cbar))
    yy, xx = np.mgrid[0:L, 0:H]
    fig.add_trace(go.Scatter(
        x=[centres(H)[h] for h in xx.ravel()], y=[centres(L)[a] for a in yy.ravel()], mode="markers",
        marker=dict(symbol="square", size=40, color="rgba(0,0,0,0)"), showlegend=False, name="tiles",
        customdata=[["head", int(a * 1000 + h)] for a, h in zip(yy.ravel(), xx.ravel(), strict=True)],
        hovertext=[f"layer {a}, head {h}<br>click: open this head" for a, h in zip(yy.ravel(), xx.ravel(),
                                                                                   strict=True)],
        hoverinfo="text"))
    if layer is not None and head not in (None, "mean"):
        x0, y0 = int(head) * (cells + 1) - 0.5, layer * (cells + 1) - 0.5
        fig.add_shape(type="rect", x0=x0, x1=x0 + cells, y0=y0, y1=y0 + cells, line=dict(color=QUERY_COLOR, width=3))
    fig.update_xaxes(tickvals=centres(H), ticktext=[f"head {h}" for h in range(H)], side="top", showgrid=False,
                     zeroline=False)
    fig.update_yaxes(tickvals=centres(L), ticktext=[f"layer {a}" for a in range(L)], autorange="reversed",
                     showgrid=False, zeroline=False, scaleanchor="x")
    note = "" if block == 1 else f" (block-max, {block} tokens per cell)"
    fig.update_layout(title=title + note, height=140 + int(820 * L / H), margin=dict(l=10, r=10, t=80, b=10),
                      clickmode="event+select", dragmode=False)
    return fig


def difference_figure(diff: np.ndarray, block: int, n: int, surfaces, title: str) -> go.Figure:
    """A signed difference of two matrices (red: more with, blue: less), downsampled by largest magnitude."""
    top = float(np.abs(diff).max()) or 1.0
    R = diff.shape[0]
    edges = np.minimum(np.arange(R + 1) * block, n) - 0.5
    names = [_range_name(int(a + 0.5), int(b + 0.5), surfaces) for a, b in zip(edges[:-1], edges[1:], strict=True)]
    text = [[f"q {names[r]}<br>k {names[c]}<br>Δp = {diff[r, c]:+.3g}" for c in range(R)] for r in range(R)]
    fig = go.Figure(go.Heatmap(z=diff, x=edges, y=edges, colorscale="RdBu_r", zmid=0, zmin=-top, zmax=top,
                               text=text, hovertemplate="%{text}<extra></extra>", colorbar=dict(title="Δp")))
    fig.update_xaxes(title="key", side="top", **token_ticks(0, n, surfaces))
    fig.update_yaxes(title="query", autorange="reversed", **token_ticks(0, n, surfaces))
    fig.update_layout(title=title, height=MATRIX_HEIGHT, margin=dict(l=10, r=10, t=110, b=10))
    return fig


def head_view_figure(span, surfaces, query: int | None, threshold: float = 0.02, title: str = "") -> go.Figure:
    """bertviz-style lines from each query of a span (left) to the keys it attends to (right), darker for more
    weight; the global tokens outside the span are listed apart, below, with their lines in orange. The query's
    lines are red. Click a token on the left to make it the query."""
    S = span.stop - span.start
    Go = len(span.outside_keys)
    gap = 1.5 if Go else 0
    key_y = {span.start + b: float(b) for b in range(S)}
    key_y.update({int(g): S + gap + k for k, g in enumerate(span.outside_keys)})
    fig = go.Figure()
    levels = [(0.02, 0.1), (0.1, 0.3), (0.3, 1.01)]
    for is_outside, weights, keys in ((False, span.inside, range(span.start, span.stop)),
                                      (True, span.to_outside, span.outside_keys)):
        for lo, hi in levels:
            xs, ys = [], []
            for a in range(S):
                q = span.start + a
                for b, k in enumerate(keys):
                    p = weights[a, b]
                    if max(lo, threshold) <= p < hi and q != query:
                        xs += [0, 1, None]
                        ys += [a, key_y[int(k)], None]
            if xs:
                color = GLOBAL_RGB if is_outside else LOCAL_RGB
                fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", hoverinfo="skip", showlegend=False,
                                         line=dict(width=1 + 2 * lo / 0.3,
                                                   color=f"rgba({color[0]},{color[1]},{color[2]},{0.15 + lo:.2f})")))
    if query is not None and span.start <= query < span.stop:
        a = query - span.start
        for weights, keys in ((span.inside, range(span.start, span.stop)), (span.to_outside, span.outside_keys)):
            for b, k in enumerate(keys):
                p = weights[a, b]
                if p >= threshold / 2:
                    fig.add_trace(go.Scatter(x=[0, 1], y=[a, key_y[int(k)]], mode="lines", showlegend=False,
                                             line=dict(color=QUERY_COLOR, width=1 + 6 * float(p)),
                                             hovertext=f"{query:,} {surfaces[query]!r} → {int(k):,} "
                                                       f"{surfaces[int(k)]!r}: {p:.3f}", hoverinfo="text"))
    left = list(range(span.start, span.stop))
    fig.add_trace(go.Scatter(x=[0] * S, y=list(range(S)), mode="markers+text", name="queries", showlegend=False,
                             text=[esc(short(surfaces[j], 14)) for j in left], textposition="middle left",
                             marker=dict(size=8, color=[QUERY_COLOR if j == query else "#555" for j in left]),
                             customdata=[["query", j] for j in left], hoverinfo="text",
                             hovertext=[f"{j:,} {esc(repr(surfaces[j]))}<br>click: make it the query"
                                        for j in left]))
    right = [*left, *map(int, span.outside_keys)]
    fig.add_trace(go.Scatter(x=[1] * len(right), y=[key_y[k] for k in right], mode="markers+text", showlegend=False,
                             text=[esc(short(surfaces[k], 14)) + (" (global)" if k not in key_y or
                                                                         key_y[k] >= S else "") for k in right],
                             textposition="middle right", name="keys", hoverinfo="text",
                             hovertext=[f"key {k:,} {esc(repr(surfaces[k]))}" for k in right],
                             marker=dict(size=8, color=[GLOBAL_COLOR if key_y[k] >= S else "#555" for k in right])))
    fig.update_xaxes(visible=False, range=[-0.8, 1.8])
    fig.update_yaxes(visible=False, range=[S + gap + Go, -1])
    fig.update_layout(title=title, height=120 + 18 * (S + gap + Go), margin=dict(l=10, r=10, t=50, b=10),
                      plot_bgcolor="white", clickmode="event+select", dragmode=False)
    return fig


def token_html(enc, text: str, pair: str, query: int, local_w: np.ndarray, global_w: np.ndarray,
               span: int) -> str:
    """HTML of the tokens query-span .. query+span as running text, shaded blue by local and orange by global
    attention (the shade grows with the square root of the weight, so small weights stay visible), the query
    outlined. Hover a token for its weight."""
    top = max(float(local_w.max()), float(global_w.max()), 1e-12)
    sources = (text, pair)

    def piece(j):
        weight, rgb = (global_w[j], GLOBAL_RGB) if global_w[j] > 0 else (local_w[j], LOCAL_RGB)
        alpha = float(np.sqrt(weight / top))
        special = enc.is_special[j]
        kind = "global" if global_w[j] > 0 else "local"
        border = "box-shadow:0 0 0 2px #d62728;" if j == query else ""
        label = f"token {j} {enc.tokens[j]!r}: {weight:.4f} ({kind})"
        style = "font-family:monospace;font-size:85%;" if special else ""
        return (f'<span title="{html.escape(label)}" style="background:rgba({rgb[0]},{rgb[1]},{rgb[2]},{alpha:.3f});'
                f'{border}{style}border-radius:2px">{html.escape(enc.surfaces[j])}</span>')

    lo, hi = max(0, query - span), min(enc.n, query + span + 1)
    parts = ["… " if lo > 0 else ""]
    for j in range(lo, hi):
        if j > lo and enc.segment[j] == enc.segment[j - 1] and not enc.is_special[j] and not enc.is_special[j - 1]:
            parts.append(html.escape(sources[enc.segment[j]][enc.offsets[j - 1, 1]:enc.offsets[j, 0]]))
        elif j > lo:
            parts.append(" ")
        parts.append(piece(j))
    parts.append(" …" if hi < enc.n else "")
    return f'<div style="line-height:1.9;white-space:pre-wrap;font-size:0.95rem">{"".join(parts)}</div>'


def patterns_figure(patterns) -> go.Figure:
    """The masks of the paper's Figure 2 (and the causal window) side by side, each titled with its count of computed pairs."""
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


def log_ticks(lo: float, hi: float) -> dict:
    """Ticks for a log axis over lo..hi: the powers of ten only (plotly's default labels every minor tick of a
    short range), or 1-2-5 steps when the range spans less than two decades."""
    lo, hi = max(lo, 1e-300), max(hi, 1e-300)
    steps = (1,) if np.log10(hi / lo) >= 2 else (1, 2, 5)
    vals = [m * 10.0 ** e for e in range(int(np.floor(np.log10(lo))) - 1, int(np.ceil(np.log10(hi))) + 1)
            for m in steps]
    vals = [v for v in vals if lo / 1.5 <= v <= hi * 1.5]
    return dict(tickvals=vals, ticktext=[f"{v:.0e}".replace("e+0", "e").replace("e-0", "e-").replace("e+", "e")
                                         if v < 0.01 or v >= 1e4 else f"{v:g}" for v in vals])


def scaling_figure(series: dict, fits: dict, title: str = "", timed: str = "one attention call") -> go.Figure:
    """Log-log time and peak memory against sequence length, one line per method, with n and n^2 guides.

    series: method -> {"n": [...], "seconds": [...], "peak_bytes": [...]} ; fits: (method, metric) -> slope.
    timed: what one measured call is ("one attention call", "one forward pass of the whole model").
    """
    fig = make_subplots(rows=1, cols=2, subplot_titles=[f"time of {timed}", "peak memory"],
                        horizontal_spacing=0.1)
    palette = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2"]
    all_n = sorted({n for s in series.values() for n in s["n"]})
    for col, metric, unit in ((1, "seconds", 1.0), (2, "peak_bytes", 2.0 ** 20)):
        lowest, ys = [], []
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
            ys += list(y[ok])
        if lowest and len(all_n) > 1:
            n0, y0 = min(lowest, key=lambda p: (p[0], p[1]))
            grid = np.asarray([all_n[0], all_n[-1]], dtype=float)
            for power, dash in ((1, "dot"), (2, "dash")):
                fig.add_trace(go.Scatter(x=grid, y=y0 * (grid / n0) ** power, mode="lines",
                                         name=f"∝ n{'²' if power == 2 else ''}", legendgroup=f"{metric}",
                                         line=dict(color="gray", dash=dash, width=1), showlegend=col == 1),
                              row=1, col=col)
        fig.update_xaxes(type="log", title="sequence length n", row=1, col=col, tickvals=all_n,
                         ticktext=[f"{n:,}" for n in all_n])
        y_ticks = log_ticks(min(ys), max(ys)) if ys else {}
        fig.update_yaxes(type="log", title="seconds" if col == 1 else "MiB", row=1, col=col, **y_ticks)
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
    values = [max(row[name], 1e-10) for row in rows for name in names if np.isfinite(row[name])]
    values += [tolerances[o][0] for o in outputs]
    fig.update_yaxes(type="log", **log_ticks(min(values), max(values)))
    fig.update_yaxes(title="max |x − x_ref|", row=1, col=1)
    fig.update_layout(height=360, margin=dict(l=10, r=10, t=60, b=10))
    return fig

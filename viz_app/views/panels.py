"""The explorer's controls and views, one function each (UI layer: widgets and charts wired to viz_app/core).

Every chart that can be clicked is drawn with on_select="rerun" under a key listed in CLICKABLE; its selection
event is read back by `apply_clicks` at the start of the next run, before the widgets it changes exist.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from viz_app.core import attention_views as av, export, figures, head_stats, links
from viz_app.core.forward import Band, config_dilations, config_windows, parse_dilation, window_options
from viz_app.core.text import context, find
from viz_app.views import cache

ss = st.session_state
SCALES = figures.SCALES
CLICKABLE = ("chart_matrix", "chart_region", "chart_band", "chart_tokens", "chart_row", "chart_column",
             "chart_stats", "chart_model", "chart_headview", "chart_compare_a", "chart_compare_b")
DEFAULT_QUERY = 20


@dataclass(frozen=True)
class Shown:
    """What the views draw from: the forward pass's cache key and result, the tokens, and the selection."""

    key: tuple  # (model_dir, backend, band, text, pair, global_positions): cache.forward's arguments
    result: object
    enc: object
    text: str
    pair: str
    layer: int
    head: object
    query: int
    scale: str

    @property
    def head_name(self) -> str:
        return "mean over heads" if self.head == "mean" else f"head {self.head}"

    def dense(self, layer=None, head=None):
        return cache.dense(*self.key, self.layer if layer is None else layer, self.head if head is None else head)


def _chart(fig, key: str, filename: str, mode=("points",)):
    """A chart whose clicks (and, with "box" in mode, box selections) come back to apply_clicks."""
    st.plotly_chart(fig, key=key, on_select="rerun", selection_mode=mode, config=figures.png_config(filename))


# --- clicks ------------------------------------------------------------------------------------------------------

def _clip_region(lo: int, hi: int, n: int) -> tuple[int, int]:
    if hi - lo + 1 > av.REGION_LIMIT:
        mid = (lo + hi) // 2
        lo = mid - av.REGION_LIMIT // 2
        hi = lo + av.REGION_LIMIT - 1
    lo = max(0, lo)
    return lo, min(n - 1, max(hi, lo))


def apply_clicks(num_layers: int) -> None:
    """Turn the charts' new selection events into state: a tile opens its layer and head (in the matrix view), a
    token, row, column or bar becomes the query, a box on the matrix becomes the region drawn exactly."""
    for key in CLICKABLE:
        event = ss.get(key)
        sig = links.signature(event)
        if event is None or ss.get(f"_seen_{key}") == sig:
            continue
        ss[f"_seen_{key}"] = sig
        tile = links.clicked(event, "head")
        if tile is not None and tile // 1000 < num_layers:
            ss["layer"], ss["head"], ss["view"] = tile // 1000, tile % 1000, "Matrix"
        token = links.clicked(event, "query")
        if token is None:
            token = links.clicked(event, "key")
        if token is not None:
            ss["query"] = token
        n = ss.get("_n")
        if key == "chart_matrix" and n and (region := links.box_to_region(event, n)) is not None:
            ss["region_q"], ss["region_k"] = _clip_region(*region[0], n), _clip_region(*region[1], n)


# --- controls ----------------------------------------------------------------------------------------------------

def window_controls(col, config) -> tuple:
    """The window slider, or one per layer. Per-layer values are kept outside the widgets, so that switching the
    per-layer mode off and on again finds them as they were; the main slider is disabled while they apply."""
    L = config.num_hidden_layers
    options, own = window_options(config), config_windows(config)
    ss.setdefault("window", own[0])
    ss.setdefault("window_per_layer", len(set(own)) > 1)
    per_layer = ss["window_per_layer"]
    window = col.select_slider("Window (both sides)", options, key="window", disabled=per_layer,
                               help="A token attends to window // 2 tokens on each side. The checkpoint's own: "
                                    f"{', '.join(map(str, sorted(set(own))))}."
                                    + (" Off while one window per layer applies." if per_layer else ""))
    col.checkbox("One window per layer", key="window_per_layer")
    if not per_layer:
        return (window,) * L
    kept = ss.setdefault("_windows_kept", list(own) if len(set(own)) > 1 else [window] * L)
    with col.expander("Windows per layer", expanded=True):
        for layer in range(L):
            ss.setdefault(f"window_layer_{layer}", kept[layer])
            kept[layer] = st.select_slider(f"Layer {layer}", options, key=f"window_layer_{layer}")
    return tuple(kept)


def band_controls(col, config, windows: tuple) -> Band:
    """The dilation (one for every head, or one per head: "1,1,2,2"; optionally one per layer) and the causal
    toggle, with the windows -> the Band to run. A dilation that cannot be read is a warning, and 1 is used."""
    L, H = config.num_hidden_layers, config.num_attention_heads
    own = config_dilations(config)
    ss.setdefault("dilation", ",".join(map(str, own[0])) if len(set(own[0])) > 1 else str(own[0][0]))
    ss.setdefault("dilation_per_layer", len(set(own)) > 1)
    per_layer = ss["dilation_per_layer"]
    col.text_input("Dilation (one, or one per head)", key="dilation", disabled=per_layer,
                   placeholder=f"e.g. 2, or {','.join(['1'] * (H - H // 2) + ['2'] * (H // 2))}",
                   help="Band slot t of a query i holds key i + d·(t - W): a dilated window skips d - 1 tokens "
                        f"between keys and reaches d·W tokens, at the same cost. {H} heads.")
    col.checkbox("One dilation per layer", key="dilation_per_layer")
    specs = [ss["dilation"]] * L
    if per_layer:
        with col.expander("Dilations per layer", expanded=True):
            for layer in range(L):
                ss.setdefault(f"dilation_layer_{layer}", ",".join(map(str, own[layer])))
                specs[layer] = st.text_input(f"Layer {layer}", key=f"dilation_layer_{layer}")
    dilations = []
    for layer, spec in enumerate(specs):
        try:
            dilations.append(parse_dilation(spec, H))
        except ValueError as e:
            col.warning(f"Dilation{f' of layer {layer}' if per_layer else ''}: {e}. Using 1.")
            dilations.append((1,) * H)
    ss.setdefault("autoregressive", bool(config.autoregressive))
    causal = col.checkbox("Autoregressive (causal window)", key="autoregressive",
                          help="Each token sees only itself and the W·d tokens before it (W + 1 band slots), as in "
                               "the paper's language modelling. Global tokens are off: a global token reads every "
                               "token, later ones included.")
    return Band(tuple(windows), tuple(dilations), bool(causal))


def query_controls(enc, text: str, pair: str, global_positions) -> int:
    """The search box (a word or subword: jumps to its first match, the others listed) and the query token."""
    n = enc.n
    ss["_n"] = n
    searched = (ss.get("search", ""), text, pair)
    hits = find(enc, text, pair, searched[0])
    if ss.get("_searched") != searched:
        ss["_searched"] = searched
        if hits:
            ss["query"] = ss["search_hit"] = ss["_seen_hit"] = hits[0]
    if hits and ss.get("search_hit") not in hits:
        ss["search_hit"] = hits[0]
    if hits and ss.get("_seen_hit") != ss.get("search_hit"):
        ss["query"] = ss["_seen_hit"] = ss["search_hit"]
    ss["query"] = min(max(int(ss.get("query", DEFAULT_QUERY)), 0), n - 1)
    c1, c2, c3 = st.columns([2, 2, 3])
    c1.text_input("Find a word", key="search", placeholder="e.g. rabbit, ##former",
                  help="Finds a word, a subword or a phrase in the text and makes its first token the query.")
    if hits:
        c2.selectbox(f"{len(hits)} match{'es' if len(hits) > 1 else ''}", hits, key="search_hit",
                     format_func=lambda j: f"{j:,}: {context(enc, text, pair, j)}")
    elif searched[0].strip():
        c2.caption(f"No token matches {searched[0]!r}.")
    c3.number_input(f"Query token (0 to {n - 1:,})", 0, n - 1, key="query", step=1,
                    help="The token whose row (what it attends to) and column (who attends to it) are shown. "
                         "Click a token, a row, a column or a bar in any view to change it.")
    query = int(ss["query"])
    c3.caption(f"Query: **{enc.label(query)}**" + (" (global)" if query in global_positions else ""))
    return query


# --- the views ---------------------------------------------------------------------------------------------------

def matrix(s: Shown) -> None:
    r, n = s.result, s.result.n
    dense = s.dense()
    m = av.overview(dense)
    how = "exact" if m.exact else f"block-max, {m.block}×{m.block} tokens per cell"
    fig = figures.matrix_figure(m, s.enc.surfaces, r.global_positions, s.scale,
                                f"Layer {s.layer}, {s.head_name}: full {n}×{n} attention ({how})", query=s.query,
                                key=s.query)
    _chart(fig, "chart_matrix", f"attention_layer{s.layer}_{s.head}", mode=("points", "box"))
    st.caption("Rows are queries, columns keys. The diagonal band is the sliding window; orange triangles mark the "
               "global tokens, whose rows and columns are full; red outlines the query's row and column. Hover a "
               "cell for its tokens; click a grey square beside a row or column to make it the query; drag a box "
               "(the default tool) to draw that region below, one cell per token pair.")
    around = av.region_around(n, s.query, 64)
    for k in ("region_q", "region_k"):  # set every run: the sliders' range (and so their identity) follows n
        lo, hi = ss.get(k, (-1, -1))
        ss[k] = (lo, hi) if 0 <= lo <= hi < n and hi - lo < av.REGION_LIMIT else around
    st.subheader("Region, exactly")
    c1, c2, c3 = st.columns([4, 4, 2])
    queries = c1.slider("Queries", 0, n - 1, key="region_q")
    keys = c2.slider("Keys", 0, n - 1, key="region_k")
    c3.button("Around the query", key="region_follow",
              on_click=lambda: ss.update(region_q=around, region_k=around))
    try:
        reg = av.region(dense, queries, keys)
    except ValueError as e:
        st.info(f"{e}.")
        return
    fig = figures.matrix_figure(reg, s.enc.surfaces, r.global_positions, s.scale,
                                f"Queries {reg.rows[0]:,}–{reg.rows[-1] - 1:,} × keys {reg.cols[0]:,}–"
                                f"{reg.cols[-1] - 1:,}, exact ({len(reg.rows) - 1} × {len(reg.cols) - 1})",
                                query=s.query, key=s.query, height=720)
    _chart(fig, "chart_region", f"region_layer{s.layer}_{s.head}")


def band(s: Shown) -> None:
    r = s.result
    w = r.w(s.layer)
    global_cols, band_, block = av.band_view(r, s.layer, s.head)
    shown = set(r.dilation(s.layer)) if s.head == "mean" else {r.dilation(s.layer)[int(s.head)]}
    slots = "W + 1" if r.autoregressive else "2W + 1"
    fig = figures.band_figure(global_cols, band_, block, r.n, w, r.global_positions, s.enc.surfaces, s.scale,
                              f"Layer {s.layer}, {s.head_name}: the model's own layout, {r.n} × (G + {slots}) = "
                              f"{r.n} × ({len(r.global_positions)} + {band_.shape[1]})", query=s.query,
                              dilation=next(iter(shown)) if len(shown) == 1 else None)
    _chart(fig, "chart_band", f"band_layer{s.layer}_{s.head}")
    if len(shown) > 1:
        st.info("The heads of this layer have different dilations, so a band slot is a different key in each "
                "head: this mean is of the slots, not of the keys. Choose one head to read keys off it.")
    st.caption("What the model stores: for each query, its global columns and its band slots, by offset t - W "
               "(slot t holds key query + d·(t - W), d the head's dilation; an autoregressive layer keeps only "
               "t ≤ W, the query last). "
               "Blank cells at the edges are keys outside the text; blank columns in the band are global keys, "
               "which are reached through their own columns. The rows of the global tokens (orange triangles) are "
               "blank here because a global query attends to every token with its own projections, not through "
               "the band: see its row in the matrix or token view. Click a grey square to make a row the query.")


def token(s: Shown) -> None:
    r, enc, q = s.result, s.enc, s.query
    w = r.w(s.layer) * max(r.dilation(s.layer))  # how far the band reaches
    local_w, global_w = av.query_weights(r, s.layer, s.head, q)
    kind = "global: it attends to every token" if q in r.global_positions else "local"
    st.markdown(f"Token **{enc.label(q)}** ({kind}). Blue: attention through the window; orange: attention to or "
                "from the global tokens. Click a token to make it the query.")
    lo = max(0, min(q - 48, enc.n - 128))
    hits = find(enc, s.text, s.pair, ss.get("search", ""))
    fig = figures.token_grid_figure(enc.surfaces, lo, min(enc.n, lo + 128), local_w, global_w, q,
                                    r.global_positions, hits)
    _chart(fig, "chart_tokens", f"tokens_query{q}")
    fig = figures.weights_figure(local_w, global_w, q, w, enc.surfaces, "key",
                                 f"Layer {s.layer}, {s.head_name}: what {enc.label(q)} attends to (its row)")
    _chart(fig, "chart_row", f"row{q}_layer{s.layer}_{s.head}")
    from_local, from_global = av.key_weights(r, s.layer, s.head, q)
    fig = figures.weights_figure(from_local, from_global, q, w, enc.surfaces, "query",
                                 f"Layer {s.layer}, {s.head_name}: who attends to {enc.label(q)} (its column)")
    _chart(fig, "chart_column", f"column{q}_layer{s.layer}_{s.head}")
    st.caption("Each bar is a token; click one to make it the query. Double-click a chart to see every token.")
    with st.expander("As running text"):
        st.html(figures.token_html(enc, s.text, s.pair, q, local_w, global_w, max(w + 24, 60)))


def heads(s: Shown) -> None:
    r = s.result
    stats = cache.stats(*s.key)
    c1, c2 = st.columns([3, 2])
    metric = c1.radio("Statistic", list(head_stats.METRICS), horizontal=True, key="stat_metric",
                      format_func=lambda m: head_stats.METRICS[m][0])
    name, unit, reading = head_stats.METRICS[metric]
    c2.caption(f"Over all {r.n:,} tokens, from the band layout. {reading}. Click a tile to open that head.")
    values = stats.values[metric]
    if metric == "global_share" and not len(r.global_positions):
        st.info("No global tokens: choose some (Global tokens, above) to see which heads read them.")
    else:
        fig = figures.tiles_figure(values, f"{name} ({unit}), every layer and head", unit, s.layer, s.head,
                                   fmt=".2f" if metric != "distance" else ".1f",
                                   colorscale="Viridis" if metric != "local_share" else "Cividis")
        _chart(fig, "chart_stats", f"{metric}_by_head")
    profile = head_stats.global_profile(r)
    if profile is not None:
        st.plotly_chart(figures.profile_figure(*profile, r.n, s.enc.surfaces, s.layer), key="chart_profile",
                        config=figures.png_config("global_profile"))
    try:
        mosaic, cells, block = av.model_view(r)
    except ValueError as e:
        st.caption(str(e))
    else:
        fig = figures.model_view_figure(mosaic, cells, block, s.scale, f"Every layer and head, {r.n} tokens",
                                        s.layer, s.head)
        _chart(fig, "chart_model", "model_view")


def compare(s: Shown) -> None:
    r = s.result
    L, H = r.num_layers, r.num_heads
    c1, c2 = st.columns(2)
    c1.markdown(f"**A: layer {s.layer}, {s.head_name}** (the layer and head above)")
    ss.setdefault("compare_layer", s.layer)
    ss.setdefault("compare_head", (0 if s.head == "mean" else (int(s.head) + 1) % H))
    b1, b2 = c2.columns(2)
    layer_b = b1.selectbox("B: layer", list(range(L)), key="compare_layer")
    head_b = b2.selectbox("B: head", ["mean", *range(H)], key="compare_head",
                          format_func=lambda h: "mean over heads" if h == "mean" else f"head {h}")
    for col, (layer, head), key in ((c1, (s.layer, s.head), "chart_compare_a"),
                                    (c2, (layer_b, head_b), "chart_compare_b")):
        m = av.overview(s.dense(layer, head), cells=96)
        name = "mean over heads" if head == "mean" else f"head {head}"
        fig = figures.matrix_figure(m, s.enc.surfaces, r.global_positions, s.scale, f"Layer {layer}, {name}",
                                    query=s.query, key=s.query, height=600)
        with col:
            _chart(fig, key, f"layer{layer}_{head}")
    st.subheader("With and without the global tokens")
    if not len(r.global_positions):
        st.info("No global tokens are chosen, so there is nothing to take away: choose some above.")
        return
    model_dir, backend, windows, text, pair, _ = s.key
    without = cache.dense(model_dir, backend, windows, text, pair, (), s.layer, s.head)
    diff, block = av.difference(s.dense(), without)
    fig = figures.difference_figure(diff, block, r.n, s.enc.surfaces,
                                    f"Layer {s.layer}, {s.head_name}: attention with the {len(r.global_positions)} "
                                    "global tokens minus without them (red: more with)")
    st.plotly_chart(fig, key="chart_difference", config=figures.png_config(f"difference_layer{s.layer}_{s.head}"))
    st.caption("Without global tokens every query spreads its softmax over its window only; with them, part of "
               "it moves to the global columns, and the global rows see the whole document. Downsampled cells keep "
               "the difference of largest magnitude.")


def head_view(s: Shown) -> None:
    r, enc = s.result, s.enc
    c1, c2, c3 = st.columns(3)
    size = c2.slider("Span length", 4, av.SPAN_LIMIT, 32, key="span_length")
    start_default = max(0, min(s.query - size // 2, r.n - size))
    if ss.get("_span_query") != s.query:  # the span follows the query when it changes
        ss["_span_query"], ss["span_start"] = s.query, start_default
    ss["span_start"] = min(int(ss.get("span_start", start_default)), max(0, r.n - 1))
    start = c1.number_input(f"Span starts at (0 to {max(0, r.n - size):,})", 0, max(0, r.n - 1), key="span_start")
    threshold = c3.select_slider("Hide lines below", [0.005, 0.01, 0.02, 0.05, 0.1], value=0.02, key="span_threshold")
    span = av.span_pairs(r, s.layer, s.head, int(start), min(r.n, int(start) + size))
    fig = figures.head_view_figure(span, enc.surfaces, s.query, threshold,
                                   f"Layer {s.layer}, {s.head_name}: tokens {span.start:,}–{span.stop - 1:,}")
    _chart(fig, "chart_headview", f"headview_layer{s.layer}_{s.head}")
    st.caption("Each query (left) is joined to the keys it attends to (right), darker for more weight; the global "
               "tokens outside the span are listed apart at the bottom, their lines in orange. The query's lines "
               "are red. Click a token on the left to make it the query.")


def downloads(key: tuple, result, enc, layer: int) -> None:
    c1, c2 = st.columns(2)
    c1.download_button(f"Download layer {layer}'s attention, every head, with the tokens (.npz)",
                       key="download_layer", on_click="ignore",
                       data=lambda: export.layer_npz(result, enc, layer),  # built only when clicked
                       file_name=f"attention_layer{layer}.npz", mime="application/octet-stream")
    c2.download_button("Download the head statistics (.csv)", key="download_stats", on_click="ignore",
                       data=lambda: cache.stats(*key).csv(), file_name="head_statistics.csv", mime="text/csv")

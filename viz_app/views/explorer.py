"""Page 1, the attention explorer: a text through the model, and its attention drawn four ways."""

import streamlit as st

from viz_app import explore, figures
from viz_app.views import common

model_dir = common.sidebar_model()
config = common.load_base(model_dir).config
L, H = config.num_hidden_layers, config.num_attention_heads

st.title("Attention explorer")
st.caption("Longformer attends in two ways: every token to a window of W tokens on each side (the band), and a few "
           "global tokens to and from every token. Pick a text, the global tokens and the window, then look at one "
           "layer and head. Pairs the model never computes are blank.")


# --- the text ----------------------------------------------------------------------------------------------------

def _fill_sample():
    if st.session_state["sample"] != explore.OWN_TEXT:
        st.session_state["text"], st.session_state["pair"] = explore.load_sample(st.session_state["sample"])


def _own_text():
    st.session_state["sample"] = explore.OWN_TEXT


if "text" not in st.session_state:
    st.session_state["sample"] = next(iter(explore.SAMPLES))
    _fill_sample()

st.selectbox("Sample", [*explore.SAMPLES, explore.OWN_TEXT], key="sample", on_change=_fill_sample)
col_text, col_pair = st.columns([3, 2])
col_text.text_area("Text", key="text", height=140, on_change=_own_text)
col_pair.text_area("Second text (optional: makes the input a pair, e.g. question + context)", key="pair", height=140,
                   on_change=_own_text)

# --- the controls ------------------------------------------------------------------------------------------------

usable = common.usable_backends()
runnable = [name for name, reason in usable.items() if reason is None]
c1, c2, c3, c4 = st.columns(4)
backend = c1.selectbox("Backend", runnable, index=runnable.index(explore.default_backend(usable)), key="backend",
                       help="\n\n".join(f"{n}: {r}" for n, r in usable.items() if r) or None)
preset = c2.selectbox("Global tokens", explore.GLOBAL_PRESETS, index=1, key="global_preset")
manual = c2.text_input("… and these token positions", key="global_manual", placeholder="e.g. 5, 17-20")
options = explore.window_options(config)
own = explore.config_windows(config)
window = c3.select_slider("Window (both sides)", options, value=own[0], key="window",
                          help="A token attends to window // 2 tokens on each side. The checkpoint's own: "
                               f"{', '.join(map(str, sorted(set(own))))}.")
per_layer = c3.checkbox("One window per layer", key="window_per_layer", value=len(set(own)) > 1)
if per_layer:
    # they start from the checkpoint's own windows when it has several, else from the single window above
    start = own if len(set(own)) > 1 else (window,) * L
    with c3.expander("Windows per layer", expanded=True):
        windows = tuple(st.select_slider(f"Layer {layer}", options, value=start[layer], key=f"window_layer_{layer}")
                        for layer in range(L))
else:
    windows = (window,) * L
layer = c4.slider("Layer", 0, L - 1, 0, key="layer") if L > 1 else 0  # a slider needs two values
head = c4.selectbox("Head", ["mean", *range(H)], key="head",
                    format_func=lambda h: "mean over heads" if h == "mean" else f"head {h}")

# --- tokens and global positions ---------------------------------------------------------------------------------

text, pair = st.session_state["text"], st.session_state["pair"]
try:
    enc = common.encoded(model_dir, text, pair)
except ValueError as e:
    st.warning(str(e))
    st.stop()
note = explore.truncation_note(enc, text, pair)
if note:
    st.warning(note)

positions = []
try:
    positions += explore.preset_positions(preset, enc, text, pair)
except ValueError as e:
    st.warning(str(e))
try:
    wanted = explore.parse_positions(manual)
except ValueError as e:
    st.warning(f"Global positions: {e}")
    wanted = []
inside, outside = explore.split_in_range(wanted, enc.n)
if outside:
    shown = ", ".join(map(str, outside[:10])) + (" …" if len(outside) > 10 else "")
    st.warning(f"Global positions out of range, ignored: {shown}. The input has {enc.n:,} tokens (positions 0 to "
               f"{enc.n - 1:,}).")
global_positions = tuple(sorted(set(positions) | set(inside)))
if len(global_positions) > explore.MAX_GLOBAL:
    st.warning(f"{len(global_positions):,} global tokens asked for; the explorer keeps the first "
               f"{explore.MAX_GLOBAL} (every global token adds a full row and column, so memory grows as N × G).")
    global_positions = global_positions[:explore.MAX_GLOBAL]

# --- the forward pass (cached) -----------------------------------------------------------------------------------

try:
    compiles = " (its first run compiles the kernels)" if backend != "numpy" else ""
    with st.spinner(f"Running {enc.n:,} tokens through the model on {backend}{compiles}…"):
        result = common.forward(model_dir, backend, windows, text, pair, global_positions)
except Exception as e:  # a backend failing is a message on the page, not a traceback
    st.error(f"The forward pass failed on backend {backend!r}: {type(e).__name__}: {e}")
    st.stop()

st.caption(f"**{result.n:,} tokens**, {len(global_positions)} global · window "
           f"{windows[0] if len(set(windows)) == 1 else list(windows)} · forward pass {result.seconds:.2f} s on "
           f"{result.backend} (kept in memory; changing layer, head or view does not rerun it)")

# --- the views ---------------------------------------------------------------------------------------------------

v1, v2 = st.columns([3, 1])
view = v1.radio("View", ["Matrix", "Band", "Token", "Layers × heads"], horizontal=True, key="view")
scale = v2.radio("Colour scale", figures.SCALES, horizontal=True, key="color_scale")
head_name = "mean over heads" if head == "mean" else f"head {head}"
w = result.w(layer)

if view == "Matrix":
    z, block = explore.attention_matrix(result, layer, head)
    how = "exact" if block == 1 else f"block-max, {block}×{block} tokens per cell"
    fig = figures.matrix_figure(z, block, result.n, result.global_positions, scale,
                                f"Layer {layer}, {head_name}: full {result.n}×{result.n} attention ({how})",
                                tokens=enc.tokens)
    st.plotly_chart(fig, key="chart_matrix", config=figures.png_config(f"attention_layer{layer}_{head}"))
    st.caption("Rows are queries, columns keys. The diagonal band is the sliding window; orange triangles mark the "
               "global tokens, whose rows and columns are full.")
elif view == "Band":
    global_cols, band, block = explore.band_view(result, layer, head)
    fig = figures.band_figure(global_cols, band, block, result.n, w, result.global_positions, scale,
                              f"Layer {layer}, {head_name}: the model's own layout, {result.n} × (G + 2W + 1) = "
                              f"{result.n} × ({len(result.global_positions)} + {2 * w + 1})")
    st.plotly_chart(fig, key="chart_band", config=figures.png_config(f"band_layer{layer}_{head}"))
    st.caption("What the model stores: for each query, its global columns and the 2W+1 keys around it, by offset. "
               "Blank cells at the edges are keys outside the text; blank columns in the band are global keys, "
               "which are reached through their own columns.")
elif view == "Token":
    if st.session_state.get("query_token", 0) > result.n - 1:
        st.session_state["query_token"] = result.n - 1
    query = st.number_input("Query token", 0, result.n - 1, min(result.n - 1, 20), key="query_token")
    local_w, global_w = explore.query_weights(result, layer, head, query)
    kind = "global: it attends to every token" if query in global_positions else "local"
    st.markdown(f"Token **{query}** `{enc.tokens[query]}` ({kind}). Blue: its attention through the window; orange: "
                "its attention to the global tokens (a global query's whole row is orange). Hover a token for its "
                "weight.")
    span = max(w + 24, 60) if result.n > 400 else result.n
    st.html(explore.token_html(enc, text, pair, query, local_w, global_w, span))
    fig = figures.query_figure(local_w, global_w, query, result.n, w,
                               f"Layer {layer}, {head_name}: what token {query} attends to (double-click: all keys)")
    st.plotly_chart(fig, key="chart_token", config=figures.png_config(f"query{query}_layer{layer}_{head}"))
else:
    try:
        mosaic, cells, block = explore.model_view(result)
    except ValueError as e:
        st.info(str(e))
    else:
        fig = figures.model_view_figure(mosaic, cells, block, scale, f"Every layer and head, {result.n} tokens")
        st.plotly_chart(fig, key="chart_model", config=figures.png_config("model_view"))

st.download_button(f"Download layer {layer}'s attention, every head (.npz)", key="download_layer", on_click="ignore",
                   data=lambda: explore.layer_npz(result, layer),  # built only when clicked
                   file_name=f"attention_layer{layer}.npz", mime="application/octet-stream")

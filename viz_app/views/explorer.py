"""Page 1, the attention explorer: a text through the model, and its attention drawn six ways (views/panels.py).

State: the layer, head, query token and view live in st.session_state under their widgets' keys and in the URL
(st.query_params), so a link restores the view. The Patterns page's "Run this on the text" leaves its settings in
st.session_state["_pattern_link"]; they are applied here before the widgets exist. Clicks in the charts arrive as the charts' selection events at the
start of the next run; they are turned into state (core/links.py) before the widgets they change are drawn.
"""

import streamlit as st

from viz_app.core import forward as fw, global_tokens, links, text as tx
from viz_app.views import cache, panels, sidebar

ss = st.session_state
model_dir = sidebar.checkpoint()
config = cache.load_base(model_dir).config
L, H = config.num_hidden_layers, config.num_attention_heads

st.title("Attention explorer")
st.caption("Longformer attends in two ways: every token to a window of W tokens on each side (the band), and a few "
           "global tokens to and from every token. Pick a text, the global tokens and the window, then look at one "
           "layer and head. Click a token, a row or a tile to follow it. Pairs the model never computes are blank.")


# --- state from the URL (a session's first run) and from the last run's clicks -----------------------------------

def _fill_sample():
    """The sample's text, or what was typed as one's own text before a sample replaced it."""
    if ss["sample"] == tx.OWN_TEXT:
        ss["text"], ss["pair"] = ss.get("_own_text", ("", ""))
    else:
        ss["text"], ss["pair"] = tx.load_sample(ss["sample"])


def _own_text():
    ss["sample"] = tx.OWN_TEXT
    ss["_own_text"] = (ss["text"], ss["pair"])


if "_url_read" not in ss:
    ss["_url_read"] = True
    for k, v in links.from_url(dict(st.query_params), L, H, tx.SAMPLES).items():
        ss[k] = v
for k, v in ss.pop("_pattern_link", {}).items():
    ss[k] = v
if "text" not in ss:
    ss.setdefault("sample", next(iter(tx.SAMPLES)))
    _fill_sample()
panels.apply_clicks(L)

# --- the text ----------------------------------------------------------------------------------------------------

st.selectbox("Sample", [*tx.SAMPLES, tx.OWN_TEXT], key="sample", on_change=_fill_sample)
col_text, col_pair = st.columns([3, 2])
col_text.text_area("Text", key="text", height=140, on_change=_own_text)
col_pair.text_area("Second text (optional: makes the input a pair, e.g. question + context)", key="pair", height=140,
                   on_change=_own_text)

# --- the controls ------------------------------------------------------------------------------------------------

usable = cache.usable_backends()
runnable = [name for name, reason in usable.items() if reason is None]
c1, c2, c3, c4 = st.columns(4)
backend = c1.selectbox("Backend", runnable, index=runnable.index(fw.default_backend(usable)), key="backend",
                       help="\n\n".join(f"{n}: {r}" for n, r in usable.items() if r) or None)
causal = bool(ss.get("autoregressive", config.autoregressive))  # its checkbox is below, with the window
preset = c2.selectbox("Global tokens", global_tokens.GLOBAL_PRESETS, index=1, key="global_preset", disabled=causal)
manual = c2.text_input("… and these token positions", key="global_manual", placeholder="e.g. 5, 17-20",
                       disabled=causal)
if causal:
    c2.info("Autoregressive: no global tokens. A global token reads every token, later ones included, so a causal "
            "window has none.", icon="ℹ️")
windows = panels.window_controls(c3, config)
band = panels.band_controls(c3, config, windows)
layer = c4.slider("Layer", 0, L - 1, key="layer") if L > 1 else 0  # a slider needs two values
head = c4.selectbox("Head", ["mean", *range(H)], key="head",
                    format_func=lambda h: "mean over heads" if h == "mean" else f"head {h}")

# --- tokens and global positions ---------------------------------------------------------------------------------

text, pair = ss["text"], ss["pair"]
try:
    enc = cache.encoded(model_dir, text, pair)
except ValueError as e:
    st.warning(str(e))
    st.stop()
note = tx.truncation_note(enc, text, pair)
if note:
    st.warning(note)
choice = global_tokens.choose(preset, manual, enc, text, pair)
for message in [] if band.autoregressive else choice.warnings:
    st.warning(message)
global_positions = () if band.autoregressive else choice.positions

# --- the forward pass (cached; progress per layer from the model) ------------------------------------------------

key = (model_dir, backend, band, text, pair, global_positions)
try:
    bar = st.progress(0.0, text=f"Running {enc.n:,} tokens through the model on {backend}…")
    compiles = " (its first run compiles the kernels)" if backend != "numpy" else ""
    result = cache.forward(*key, progress=lambda done, total: bar.progress(
        done / total, text=f"Layer {done} of {total} done: {enc.n:,} tokens on {backend}{compiles}"))
    bar.empty()
except Exception as e:  # a backend failing is a message on the page, not a traceback
    st.error(f"The forward pass failed on backend {backend!r}: {type(e).__name__}: {e}")
    st.stop()

st.caption(f"**{result.n:,} tokens**, {len(global_positions)} global · {band.describe()} · forward pass "
           f"{result.seconds:.2f} s on "
           f"{result.backend} (kept in memory; changing layer, head, query or view does not rerun it)")

# --- the query token, the search, the view -----------------------------------------------------------------------

query = panels.query_controls(enc, text, pair, global_positions)
v1, v2 = st.columns([4, 1])
view = v1.radio("View", links.VIEWS, horizontal=True, key="view")
scale = v2.radio("Colour scale", panels.SCALES, horizontal=True, key="color_scale")
st.query_params.from_dict(links.to_url({"view": view, "layer": layer, "head": head, "query": query,
                                        "sample": ss["sample"] if ss["sample"] in tx.SAMPLES else None}))

draw = {"Matrix": panels.matrix, "Band": panels.band, "Token": panels.token, "Layers × heads": panels.heads,
        "Compare": panels.compare, "Head view": panels.head_view}[view]
draw(panels.Shown(key, result, enc, text, pair, layer, head, query, scale))
panels.downloads(key, result, enc, layer)

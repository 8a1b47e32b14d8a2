"""Page 2, the attention patterns of the paper's Figure 2, from the masks the model itself uses; each pattern with
a window links to the explorer, which then runs it on the text (its settings travel in st.session_state under
"_pattern_link", applied by the explorer before its widgets are drawn)."""

import streamlit as st

from viz_app.core import export, figures, forward, global_tokens, masks


st.title("Attention patterns")
st.caption("The paper's Figure 2: which query-key pairs each pattern computes. The masks come from the model's own "
           "code (refimpl.attention.band_keys and band_mask, with dilation), so what you see is what it computes. "
           "Full attention costs n² pairs; a window of W tokens on each side costs about n(2W+1), linear in n.")

c1, c2, c3, c4 = st.columns(4)
n = c1.slider("Length n", 8, masks.MAX_LENGTH, 64, key="pattern_n")
window = c2.select_slider("Window (both sides)", [2, 4, 6, 8, 10, 12, 16, 20, 24, 32, 48, 64, 96, 128], value=8,
                          key="pattern_window", help="W = window // 2 keys on each side of the query")
dilation = c3.slider("Dilation d", 1, 8, 2, key="pattern_dilation",
                     help="the dilated window skips d - 1 keys between the keys it attends to")
spec = c4.text_input("Global positions", "0", key="pattern_globals", placeholder="e.g. 0, 31-33")

try:
    wanted = global_tokens.parse_positions(spec)
except ValueError as e:
    st.warning(f"Global positions: {e}")
    wanted = []
inside, outside = global_tokens.split_in_range(wanted, n)
if outside:
    st.warning(f"Global positions out of range, ignored: {', '.join(map(str, outside[:10]))}"
               f"{' …' if len(outside) > 10 else ''} (the length is {n}: positions 0 to {n - 1}).")

patterns = masks.figure2(n, window, dilation, inside)
st.plotly_chart(figures.patterns_figure(patterns), key="chart_patterns",
                config=figures.png_config(f"patterns_n{n}_w{window}_d{dilation}"))
WINDOWS_OFFERED = forward.WINDOW_CHOICES  # the explorer adds the checkpoint's own; these are always there


def _run_in_explorer(pattern: str, window: int, dilation: int, spec: str) -> None:
    st.session_state["_pattern_link"] = masks.explorer_settings(pattern, window, dilation, spec, WINDOWS_OFFERED)


cols = st.columns(len(patterns))
for col, p in zip(cols, patterns, strict=True):
    col.metric(p.name, f"{p.pairs:,} pairs", f"{p.fraction:.1%} of n² = {n * n:,}", delta_color="off",
               delta_arrow="off")
    if p.key != "full" and col.button("Run this on the text", key=f"run_pattern_{p.key}",
                                      on_click=_run_in_explorer, args=(p.key, window, dilation, spec),
                                      help="Opens the explorer with this window, dilation and causal setting"
                                           + (" and these global positions" if p.key == "global_sliding" else "")):
        st.switch_page("views/explorer.py")
st.caption(f"W = {window // 2}. A sliding window computes at most n(2W+1) = {n * (window + 1):,} pairs (fewer at "
           f"the edges); dilation keeps the count and widens the reach to d·W = {dilation * (window // 2)} tokens per "
           "side. Global tokens add a full row and a full column each; the causal window keeps the keys up to the "
           f"query, about n(W+1) = {n * (window // 2 + 1):,} pairs.")
st.download_button("Download the masks (.npz)", key="download_patterns", on_click="ignore",
                   data=lambda: export.npz_bytes(**{p.key: p.mask for p in patterns}),
                   file_name=f"patterns_n{n}_w{window}_d{dilation}.npz", mime="application/octet-stream")

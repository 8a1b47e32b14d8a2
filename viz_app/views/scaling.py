"""Page 3, complexity scaling: time and memory against sequence length, committed and measured live."""

import json

import streamlit as st

from viz_app.core import figures, timing
from viz_app.views import cache


st.title("Complexity scaling")
st.caption("Dense attention computes n² scores; Longformer's sliding window computes n(2W+1). On log-log axes that is "
           "a slope of 2 against a slope of 1. Each panel shows the fitted slope of every line (over its larger "
           "lengths, where fixed costs no longer dominate) and dotted n and dashed n² guides.")


def draw(records, key, title, timed):
    by_method = timing.series(records)
    slopes = timing.fits(by_method)
    st.plotly_chart(figures.scaling_figure(by_method, slopes, title, timed), key=key, config=figures.png_config(key))


def measure_into(state_key, measure):
    """Run measure(lengths..., progress=...) with a progress bar; keep its records in st.session_state[state_key]."""
    bar = st.progress(0.0, text="Starting…")
    try:
        with cache.backend_lock():  # alone on the machine, as far as this app can arrange it
            st.session_state[state_key] = measure(progress=lambda f, msg: bar.progress(f, text=msg))
    except Exception as e:  # a backend failing is a message, not a traceback
        st.error(f"The measurement failed: {type(e).__name__}: {e}")
    bar.empty()


def show_measured(state_key, chart_key, title, timed):
    """The records kept under state_key: what failed as a warning, the rest as a chart. Returns the records."""
    live = st.session_state[state_key]
    failed = sorted({f"{r['method']}: {r['error']}" for r in live if r.get("error")})
    if failed:
        st.warning("Not measured: " + "; ".join(failed))
    draw([r for r in live if not r.get("error")], chart_key, title, timed)
    return live


# --- committed results -------------------------------------------------------------------------------------------

st.subheader("Committed results")
files = timing.find_results()
if not files:
    st.info(f"No benchmark results in {timing.results_dir()} yet. `longformer-lab bench` (or `make bench`) writes "
            "them there; meanwhile, measure a small range on this machine below.")
else:
    chosen = st.selectbox("Sweep", files, key="results_file",
                          format_func=lambda p: timing.WHAT.get(p.stem.removeprefix("scaling_"), p.stem))
    try:
        records, meta = timing.load_results(chosen)
    except ValueError as e:
        st.warning(str(e))
    else:
        draw([r for r in records if r["seconds"] is not None or r["peak_bytes"] is not None], "chart_committed",
             f"{timing.WHAT.get(meta.get('what'), chosen.stem)}, longformer-base's shape ({chosen.name})",
             timing.TIMED.get(meta.get("what"), "one call"))
        st.caption(" · ".join(str(meta[k]) for k in ("machine", "command") if k in meta)
                   + " · time: median of each length's rounds in a fresh process; memory: the call's resident peak")
        notes = {**meta.get("notes", {}), **meta.get("skipped", {})}
        failed = sorted({f"{r['method']} at n = {r['n']}: {r['error']}" for r in records if r["error"]})
        if notes or failed:
            with st.expander("Not measured"):
                st.markdown("\n".join([f"- **{m}**: {why}" for m, why in notes.items()] + [f"- {f}" for f in failed]))

# --- live --------------------------------------------------------------------------------------------------------

st.subheader("Measure on this machine")
usable = cache.usable_backends()
methods = [timing.DENSE, *(name for name, reason in usable.items() if reason is None)]
c1, c2 = st.columns([3, 1])
chosen_methods = c1.multiselect("Methods", methods, default=methods, key="live_methods")
n_max = c2.select_slider("Up to n", [512, 1024, 2048, 4096], value=2048, key="live_max_n",
                         help="from 256, doubling; dense attention at 4096 needs about 1 GB and a few seconds")
st.caption(f"Where dense and sliding-window attention differ: passes 1-3 (scores, softmax, weighted sum) at the "
           f"default model's shape ({timing.HEADS} heads of {timing.HEAD_SIZE}, window {timing.WINDOW}, the first "
           "token global), in this process: the fastest of 3 calls after a warm-up, and the peak memory tracemalloc "
           "sees. The projections around them are O(n) for every method.")

if st.button("Measure", key="measure", disabled=not chosen_methods):
    measure_into("live_results", lambda progress: timing.measure(chosen_methods, timing.lengths_up_to(n_max),
                                                                 progress=progress))
if "live_results" in st.session_state:
    live = show_measured("live_results", "chart_live", "Measured just now on this machine",
                         "one attention call (passes 1-3)")
    st.download_button("Download the measurements (.json)", data=json.dumps({"results": live}, indent=1),
                       file_name="scaling_live.json", mime="application/json", key="download_live",
                       on_click="ignore")

# --- dilation ----------------------------------------------------------------------------------------------------

st.subheader("Dilation keeps the cost at O(n·W)")
runnable = [name for name, reason in usable.items() if reason is None]
d1, d2 = st.columns([3, 1])
dil_method = d1.selectbox("Backend", runnable, key="dilation_backend",
                          index=runnable.index("numba") if "numba" in runnable else 0)
dil_max_n = d2.select_slider("Up to n", [512, 1024, 2048, 4096], value=2048, key="dilation_max_n")
st.caption(f"The band kernel (passes 1-3) with its {timing.WINDOW // 2} keys a side dilated by d = "
           f"{', '.join(map(str, timing.DILATIONS))}: key i + d·(t - W). Each query still reads 2W + 1 keys, only "
           "farther apart (a reach of d·W), so every line should have slope 1 and about the same height.")
if st.button("Measure the dilations", key="measure_dilation"):
    measure_into("dilation_results", lambda progress: timing.measure_dilations(
        dil_method, timing.lengths_up_to(dil_max_n), progress=progress))
if "dilation_results" in st.session_state:
    show_measured("dilation_results", "chart_dilation", "Dilated bands, measured just now", "one call of passes 1-3")
    st.caption("The slope is what dilation leaves unchanged: it widens what a token can reach without adding keys. "
               "The heights may differ a little: the keys lie farther apart in memory, and a backend may regroup "
               "the tokens by dilation before its kernels run.")

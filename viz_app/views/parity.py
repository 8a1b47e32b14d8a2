"""Page 4, backend parity: the same input through every backend (and transformers), compared layer by layer."""

import pandas as pd
import streamlit as st

from viz_app import explore, figures, parity
from viz_app.views import common

model_dir = common.sidebar_model()
config = common.load_base(model_dir).config

st.title("Backend parity")
st.caption("One input through every backend that runs here, and through transformers' LongformerModel when it is "
           "installed. Each output of each layer is compared with the NumPy reference; it passes when "
           "|x − x_ref| ≤ atol + rtol·|x_ref| everywhere. "
           + "; ".join(f"{name}: atol {a:g}, rtol {r:g}" for name, (a, r) in parity.TOLERANCES.items()) + ".")


@st.cache_resource(show_spinner=False)
def load_transformers(model_dir: str, windows: tuple):
    return parity.load_transformers(model_dir, windows)


@st.cache_resource(show_spinner=False, max_entries=16)
def outputs(model_dir: str, name: str, windows: tuple, input_ids: tuple, global_positions: tuple) -> parity.Outputs:
    with common.backend_lock():
        if name == parity.TRANSFORMERS:
            return parity.run_transformers(load_transformers(model_dir, windows), input_ids, global_positions)
        return parity.run_refimpl(common.model(model_dir, name, windows), input_ids, global_positions)


usable = common.usable_backends()
names = [name for name, reason in usable.items() if reason is None]
missing = {name: reason for name, reason in usable.items() if reason is not None}
why_not = parity.transformers_unavailable()
if why_not is None:
    names.append(parity.TRANSFORMERS)
else:
    missing[parity.TRANSFORMERS] = why_not

samples = [label for label in explore.SAMPLES if label != explore.LONG_SAMPLE]  # parity wants seconds, not minutes
c1, c2, c3, c4 = st.columns(4)
sample = c1.selectbox("Input", samples, key="parity_sample")
preset = c2.selectbox("Global tokens", explore.GLOBAL_PRESETS, index=1, key="parity_globals")
own = explore.config_windows(config)
OWN = "checkpoint's"
window = c3.select_slider("Window (both sides)", [OWN, *explore.window_options(config)], value=OWN, key="parity_window",
                          help=f"the checkpoint's own: {', '.join(map(str, own))}")
chosen = c4.multiselect("Implementations", names, default=names, key="parity_backends")
if missing:
    st.caption("Not run here: " + "; ".join(f"**{n}**: {r}" for n, r in missing.items()))

text, pair = explore.load_sample(sample)
enc = common.encoded(model_dir, text, pair)
try:
    global_positions = tuple(explore.preset_positions(preset, enc, text, pair))
except ValueError as e:
    st.warning(f"{e} Running without global tokens.")
    global_positions = ()
windows = own if window == OWN else (window,) * config.num_hidden_layers
if parity.REFERENCE not in chosen:
    chosen = [parity.REFERENCE, *chosen]

results, failed = {}, {}
progress = st.progress(0.0, text="Running…")
for k, name in enumerate(chosen):
    progress.progress(k / len(chosen), text=f"Running {name}…")
    try:
        results[name] = outputs(model_dir, name, windows, tuple(enc.input_ids.tolist()), global_positions)
    except Exception as e:  # one implementation failing is a row of the report, not a traceback
        failed[name] = f"{type(e).__name__}: {e}"
progress.empty()
for name, reason in failed.items():
    st.error(f"{name} failed: {reason}")
if parity.REFERENCE not in results:
    st.stop()

st.caption(f"{enc.n} tokens, {len(global_positions)} global, window "
           f"{windows[0] if len(set(windows)) == 1 else list(windows)}, {config.num_hidden_layers} layers. "
           + " · ".join(f"{n}: {r.seconds * 1e3:.0f} ms" for n, r in results.items()))
others = [n for n in results if n != parity.REFERENCE]
if not others:
    st.info("Only the NumPy reference ran: choose another implementation to compare with it.")
    st.stop()

rows = parity.compare(results)
cols = st.columns(len(others))
for col, name in zip(cols, others, strict=True):
    ok, worst = parity.verdict(rows, name)
    col.metric(name, "pass" if ok else "FAIL", f"largest difference {worst:.2e}", delta_color="off", delta_arrow="off")

table = pd.DataFrame(rows)
for name in others:
    table[f"{name} ok"] = table[f"{name} ok"].map({True: "pass", False: "FAIL"})
st.dataframe(table, key="parity_table", hide_index=True,
             column_config={name: st.column_config.NumberColumn(f"{name} max |Δ|", format="%.2e") for name in others})
st.plotly_chart(figures.parity_figure(rows, others, parity.TOLERANCES), key="chart_parity",
                config=figures.png_config("parity"))
st.download_button("Download the table (.csv)", data=table.to_csv(index=False), file_name="parity.csv",
                   mime="text/csv", key="download_parity", on_click="ignore")

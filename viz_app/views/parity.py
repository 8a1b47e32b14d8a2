"""Page 4, backend parity: the same input through every backend (and transformers), compared layer by layer."""

import pandas as pd
import streamlit as st

from viz_app.core import agreement, figures, forward, global_tokens, text
from viz_app.views import cache, sidebar

model_dir = sidebar.checkpoint()
config = cache.load_base(model_dir).config

st.title("Backend parity")
st.caption("One input through every backend that runs here, and through transformers' LongformerModel where it is "
           "installed. Each output of each layer is compared with the NumPy reference; it passes when "
           "|x − x_ref| ≤ atol + rtol·|x_ref| everywhere. "
           + "; ".join(f"{name}: atol {a:g}, rtol {r:g}" for name, (a, r) in agreement.TOLERANCES.items()) + ".")

usable = cache.usable_backends()
others = [name for name, reason in usable.items() if reason is None and name != agreement.REFERENCE]
missing = {name: reason for name, reason in usable.items() if reason is not None}
why_not = agreement.transformers_unavailable()
if why_not is None:
    others.append(agreement.TRANSFORMERS)

samples = [label for label in text.SAMPLES if label != text.LONG_SAMPLE]  # parity wants seconds, not minutes
c1, c2, c3 = st.columns(3)
sample = c1.selectbox("Input", samples, key="parity_sample")
preset = c2.selectbox("Global tokens", global_tokens.GLOBAL_PRESETS, index=1, key="parity_globals")
own = forward.config_windows(config)
OWN = "checkpoint's"
window = c3.select_slider("Window (both sides)", [OWN, *forward.window_options(config)], value=OWN,
                          key="parity_window", help=f"the checkpoint's own: {', '.join(map(str, own))}")
chosen = st.multiselect(f"Compared with {agreement.REFERENCE}, the reference (always run)", others, default=others,
                        key="parity_backends")
windows = own if window == OWN else (window,) * config.num_hidden_layers
if agreement.TRANSFORMERS in chosen and (problem := agreement.transformers_window_problem(windows)):
    chosen = [name for name in chosen if name != agreement.TRANSFORMERS]
    missing[agreement.TRANSFORMERS] = problem
if why_not is not None:
    st.info(f"The comparison with transformers appears where it is installed: {why_not}.")
if missing:
    st.caption("Not run here: " + "; ".join(f"**{n}**: {r}" for n, r in missing.items()))

sample_text, pair = text.load_sample(sample)
enc = cache.encoded(model_dir, sample_text, pair)
try:
    global_positions = tuple(global_tokens.preset_positions(preset, enc, sample_text, pair))
except ValueError as e:
    st.warning(f"{e} Running without global tokens.")
    global_positions = ()

results, failed = {}, {}
run = [agreement.REFERENCE, *chosen]
progress = st.progress(0.0, text="Running…")
for k, name in enumerate(run):
    progress.progress(k / len(run), text=f"Running {name}…")
    try:
        results[name] = cache.outputs(model_dir, name, windows, tuple(enc.input_ids.tolist()), global_positions)
    except Exception as e:  # one implementation failing is a row of the report, not a traceback
        failed[name] = f"{type(e).__name__}: {e}"
progress.empty()
for name, reason in failed.items():
    st.error(f"{name} failed: {reason}")
if agreement.REFERENCE not in results:
    st.stop()

st.caption(f"{enc.n} tokens, {len(global_positions)} global, window "
           f"{windows[0] if len(set(windows)) == 1 else list(windows)}, {config.num_hidden_layers} layers. "
           + " · ".join(f"{n}: {r.seconds * 1e3:.0f} ms" for n, r in results.items()))
compared = [n for n in results if n != agreement.REFERENCE]
if not compared:
    st.info("Only the NumPy reference ran: choose another implementation to compare with it.")
    st.stop()

rows = agreement.compare(results)
cols = st.columns(len(compared))
for col, name in zip(cols, compared, strict=True):
    ok, worst = agreement.verdict(rows, name)
    col.metric(name, "pass" if ok else "FAIL", f"largest difference {worst:.2e}", delta_color="off", delta_arrow="off")

table = pd.DataFrame(rows)
for name in compared:
    table[f"{name} ok"] = table[f"{name} ok"].map({True: "pass", False: "FAIL"})
st.dataframe(table, key="parity_table", hide_index=True,
             column_config={name: st.column_config.NumberColumn(f"{name} max |Δ|", format="%.2e")
                            for name in compared})
st.plotly_chart(figures.parity_figure(rows, compared, agreement.TOLERANCES), key="chart_parity",
                config=figures.png_config("parity"))
st.download_button("Download the table (.csv)", data=table.to_csv(index=False), file_name="parity.csv",
                   mime="text/csv", key="download_parity", on_click="ignore")

"""The visualizer (viz_app/): every page under Streamlit's AppTest on the default model, driven through its widgets
by key, plus the computations behind the pages.

Each test says what it would catch. Pages are mostly tested one file at a time (AppTest.from_file on the page),
as Streamlit runs them inside app.py's navigation. One test runs app.py itself and visits every page.
"""

from __future__ import annotations

import argparse
import ast
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("streamlit")
pytest.importorskip("plotly")

from streamlit.testing.v1 import AppTest  # noqa: E402

import viz_app  # noqa: E402
from refimpl.attention import GLOBAL, LOCAL  # noqa: E402
from refimpl.dense import longformer_mask, outputs_to_dense  # noqa: E402
from viz_app import explore, launch, patterns, scaling  # noqa: E402

APP_DIR = Path(viz_app.__file__).resolve().parent
PAGES = {"explorer": "Attention explorer", "patterns": "Attention patterns", "scaling": "Complexity scaling",
         "parity": "Backend parity"}
TIMEOUT = 120  # seconds per run: the first run converts the default model if no cache has it yet
LONG = explore.LONG_SAMPLE
PAIR = "Question + context"


def page(name: str) -> AppTest:
    at = AppTest.from_file(str(APP_DIR / "views" / f"{name}.py"), default_timeout=TIMEOUT)
    return at.run()


def ok(at: AppTest) -> AppTest:
    """The run raised nothing and showed no error box."""
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def chart(at: AppTest, key: str) -> dict:
    """The plotly figure drawn under `key`, as its JSON."""
    found = [c for c in at.get("plotly_chart") if getattr(c, "key", None) == key]
    assert found, f"no chart {key!r}; charts: {[getattr(c, 'key', None) for c in at.get('plotly_chart')]}"
    return json.loads(found[0].proto.spec)


def title(fig: dict) -> str:
    return fig["layout"]["title"]["text"]


def forward_caption(at: AppTest) -> str:
    """The explorer's caption that reports the forward pass (token count, global count, time, backend)."""
    return next(c.value for c in at.caption if "forward pass" in c.value)


def global_markers(fig: dict) -> list[int]:
    """x positions of the orange triangles that mark global columns."""
    for trace in fig["data"]:
        if trace.get("name") == "global column":
            return sorted(int(v) for v in _decode(trace["x"]))
    return []


def warnings_text(at: AppTest) -> str:
    return " | ".join(w.value for w in at.warning)


# ---------------------------------------------------------------------------------------------------------------
# The app and its navigation
# ---------------------------------------------------------------------------------------------------------------

def test_app_runs_every_page_through_its_navigation():
    """Would catch: app.py failing to declare a page, a page path or url that does not resolve, a page that raises
    on the default model when reached through the navigation (as the browser reaches it)."""
    at = ok(AppTest.from_file(str(APP_DIR / "app.py"), default_timeout=TIMEOUT).run())
    assert at.title[0].value == PAGES["explorer"]  # the default page
    for name, heading in PAGES.items():
        at.switch_page(f"views/{name}.py").run()
        ok(at)
        assert at.title[0].value == heading


def test_app_py_only_declares_navigation():
    """Would catch: computation or widgets creeping into the entry script (STYLE: a thin app.py)."""
    tree = ast.parse((APP_DIR / "app.py").read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
                for alias in node.names}
    assert imported == {"streamlit"}
    calls = {node.func.attr for node in ast.walk(tree) if isinstance(node, ast.Call)
             and isinstance(node.func, ast.Attribute)}
    assert calls == {"set_page_config", "navigation", "Page", "run"}


def test_computation_modules_never_import_streamlit():
    """Would catch: a computation module depending on the UI layer, even indirectly (STYLE: the functions live in
    the package and never import streamlit)."""
    modules = ", ".join(f"viz_app.{name}" for name in ("explore", "patterns", "scaling", "parity", "figures", "launch"))
    code = f"import sys, {modules}; print('streamlit' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_launch_command_is_headless_without_usage_statistics():
    """Would catch: `longformer-lab app` opening a browser, phoning home, or ignoring --port."""
    parser = argparse.ArgumentParser()
    launch.add_arguments(parser)
    cmd = launch.command(parser.parse_args(["--port", "8765"]))
    joined = " ".join(cmd)
    assert cmd[1:4] == ["-m", "streamlit", "run"] and cmd[4].endswith("app.py")
    assert "--server.headless true" in joined and "--browser.gatherUsageStats false" in joined
    assert "--server.port 8765" in joined
    with pytest.raises(ValueError, match="port"):
        launch.run(parser.parse_args(["--port", "0"]))


# ---------------------------------------------------------------------------------------------------------------
# Attention explorer: the main widgets change what is shown
# ---------------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def explorer():
    """One explorer session on the short abstract; tests reset what they change."""
    return ok(page("explorer"))


def test_explorer_draws_the_exact_matrix_of_a_short_text(explorer):
    """Would catch: a short input drawn downsampled, or the global token not marked."""
    fig = chart(explorer, "chart_matrix")
    assert "exact" in title(fig)
    assert global_markers(fig) == [0]  # the default preset: the first token
    assert explorer.get("download_button")[0].key == "download_layer"


def test_text_changes_the_tokens_and_the_matrix(explorer):
    """Would catch: the text area not reaching the model (a stale cached result)."""
    before, caption = chart(explorer, "chart_matrix"), forward_caption(explorer)
    text = "A short sentence. And another one."
    explorer.text_area(key="text").set_value(text).run()
    ok(explorer)
    n = explore.encode(_tokenizer(), text, "", 4096).n
    assert forward_caption(explorer) != caption and f"**{n} tokens**" in forward_caption(explorer)
    assert chart(explorer, "chart_matrix") != before
    assert explorer.selectbox(key="sample").value == explore.OWN_TEXT  # editing leaves the sample
    explorer.selectbox(key="sample").set_value("Short abstract").run()
    assert forward_caption(explorer) == caption


def test_global_presets_and_positions_by_hand(explorer):
    """Would catch: a preset or the position field not reaching the model, or the marks not following them."""
    at = explorer
    at.selectbox(key="global_preset").set_value("none").run()
    assert ok(at) and global_markers(chart(at, "chart_matrix")) == [] and ", 0 global" in forward_caption(at)
    at.text_input(key="global_manual").set_value("3, 7-8").run()
    assert ok(at) and global_markers(chart(at, "chart_matrix")) == [3, 7, 8]
    at.selectbox(key="global_preset").set_value("every sentence start").run()
    marks = global_markers(chart(at, "chart_matrix"))
    enc = explore.encode(_tokenizer(), at.text_area(key="text").value, "", 4096)
    starts = [p for p in marks if p not in (3, 7, 8)]
    # "longformer" is long ##former
    assert [enc.tokens[p] for p in starts] == ["transformers", "long", "each", "the", "together"]
    at.text_input(key="global_manual").set_value("").run()
    at.selectbox(key="global_preset").set_value("first token").run()
    assert global_markers(chart(ok(at), "chart_matrix")) == [0]


def test_question_preset_on_the_question_context_pair(explorer):
    """Would catch: the question preset not covering exactly the tokens before the first separator."""
    at = explorer
    at.selectbox(key="sample").set_value(PAIR).run()
    question, context = explore.load_sample(PAIR)
    assert at.text_area(key="pair").value == context
    at.selectbox(key="global_preset").set_value("question (before the first separator)").run()
    enc = explore.encode(_tokenizer(), question, context, 4096)
    first_sep = enc.tokens.index("[SEP]")
    assert global_markers(chart(ok(at), "chart_matrix")) == list(range(first_sep))
    at.selectbox(key="global_preset").set_value("first token").run()
    at.selectbox(key="sample").set_value("Short abstract").run()
    assert ok(at).text_area(key="pair").value == ""


def test_window_and_per_layer_windows_change_the_band(explorer):
    """Would catch: the window control not reaching the model, or per-layer windows applied to the wrong layer."""
    at = explorer
    at.radio(key="view").set_value("Band").run()
    band = chart(ok(at), "chart_band")["data"][-1]
    assert band["x0"] == -64  # the checkpoint's window 128: W = 64
    at.select_slider(key="window").set_value(16).run()
    assert chart(ok(at), "chart_band")["data"][-1]["x0"] == -8
    at.checkbox(key="window_per_layer").check().run()
    at.select_slider(key="window_layer_1").set_value(4).run()
    assert chart(ok(at), "chart_band")["data"][-1]["x0"] == -8  # layer 0 keeps 16
    at.slider(key="layer").set_value(1).run()
    assert chart(ok(at), "chart_band")["data"][-1]["x0"] == -2
    assert "[16, 4, 16, 16, 16, 16]" in forward_caption(at)
    at.checkbox(key="window_per_layer").uncheck().run()
    at.select_slider(key="window").set_value(128).run()
    at.slider(key="layer").set_value(0).run()
    at.radio(key="view").set_value("Matrix").run()
    ok(at)


def test_layer_and_head_redraw_from_the_cached_forward_pass(explorer):
    """Would catch: layer or head not changing the figure, or changing them rerunning the model."""
    at = explorer
    first, caption = chart(at, "chart_matrix"), forward_caption(at)
    at.slider(key="layer").set_value(3).run()
    by_layer = chart(ok(at), "chart_matrix")
    assert by_layer != first and "Layer 3, mean over heads" in title(by_layer)
    at.selectbox(key="head").set_value(5).run()
    by_head = chart(ok(at), "chart_matrix")
    assert by_head != by_layer and "Layer 3, head 5" in title(by_head)
    assert forward_caption(at) == caption  # the same cached result, its timing unchanged
    at.slider(key="layer").set_value(0).run()
    at.selectbox(key="head").set_value("mean").run()


def test_every_runnable_backend_draws_the_same_attention(explorer):
    """Would catch: a backend in the list that fails, or one whose attention differs visibly from numpy's."""
    at = explorer
    names = at.selectbox(key="backend").options
    assert "numpy" in names
    drawn = {}
    for name in names:
        at.selectbox(key="backend").set_value(name).run()
        assert f"on {name}" in forward_caption(ok(at))
        fig = chart(at, "chart_matrix")
        drawn[name] = np.asarray(_decode(fig["data"][0]["customdata"]))
    for name, z in drawn.items():
        np.testing.assert_allclose(z, drawn["numpy"], atol=1e-5, err_msg=name)
    at.selectbox(key="backend").set_value(explore.default_backend(explore.usable_backends())).run()


def test_band_token_and_model_views(explorer):
    """Would catch: a view that fails to draw, a token view that ignores the chosen query."""
    at = explorer
    at.radio(key="view").set_value("Band").run()
    assert "own layout" in title(chart(ok(at), "chart_band"))
    at.radio(key="view").set_value("Token").run()
    html_before = ok(at).get("html")[0].proto.body
    at.number_input(key="query_token").set_value(5).run()
    html_after = ok(at).get("html")[0].proto.body
    assert html_after != html_before and "box-shadow" in html_after
    assert "token 5" in title(chart(at, "chart_token"))
    at.radio(key="view").set_value("Layers × heads").run()
    fig = chart(ok(at), "chart_model")
    assert len(fig["layout"]["xaxis"]["ticktext"]) == 12 and len(fig["layout"]["yaxis"]["ticktext"]) == 6
    at.radio(key="view").set_value("Matrix").run()


# ---------------------------------------------------------------------------------------------------------------
# Bad input: a message on the page, never a traceback
# ---------------------------------------------------------------------------------------------------------------

def test_empty_text_is_a_message():
    """Would catch: an empty text area reaching the tokenizer or the model."""
    at = page("explorer")
    at.text_area(key="text").set_value("   ").run()
    assert not at.exception and "empty" in warnings_text(at)
    assert not at.get("plotly_chart")


def test_bad_global_positions_are_messages(explorer):
    """Would catch: positions past the end crashing the model, or a typo crashing the parser."""
    at = explorer
    at.text_input(key="global_manual").set_value("2, 5000").run()
    assert "out of range" in warnings_text(ok(at)) and "5000" in warnings_text(at)
    assert global_markers(chart(at, "chart_matrix")) == [0, 2]  # the valid one is used
    at.text_input(key="global_manual").set_value("two").run()
    assert "not a token position" in warnings_text(ok(at))
    at.text_input(key="global_manual").set_value("").run()
    at.selectbox(key="global_preset").set_value("question (before the first separator)").run()
    assert "question + context pair" in warnings_text(ok(at))
    at.selectbox(key="global_preset").set_value("first token").run()


def test_too_many_global_tokens_are_capped_with_a_message():
    """Would catch: a range like 0-4095 making every token global, which would need gigabytes on a long text."""
    at = page("explorer")
    at.selectbox(key="sample").set_value(PAIR).run()  # about 400 tokens
    at.text_input(key="global_manual").set_value("0-299").run()
    assert f"keeps the first {explore.MAX_GLOBAL}" in warnings_text(ok(at))
    assert f", {explore.MAX_GLOBAL} global" in forward_caption(at)


@pytest.mark.parametrize("what", ["empty folder", "missing", "not longformer"])
def test_a_folder_that_is_not_a_checkpoint_is_a_message(tmp_path, what):
    """Would catch: a wrong checkpoint folder raising instead of saying what is wrong."""
    folder = tmp_path / "ckpt"
    if what != "missing":
        folder.mkdir()
    if what == "not longformer":
        (folder / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    at = AppTest.from_file(str(APP_DIR / "views" / "explorer.py"), default_timeout=TIMEOUT)
    at.session_state["model_dir"] = str(folder)
    at.run()
    assert not at.exception
    assert at.error and "Cannot use this checkpoint folder" in at.error[0].value
    assert not at.get("plotly_chart")
    at.text_input(key="model_dir").set_value("").run()  # back to the default model
    assert ok(at).get("plotly_chart")


def test_the_launchers_model_folder_reaches_the_sidebar(tmp_path, monkeypatch):
    """Would catch: `longformer-lab app --model DIR` not reaching the page (it travels in an environment variable)."""
    monkeypatch.setenv(launch.MODEL_ENV, str(tmp_path))
    at = page("explorer")
    assert at.text_input(key="model_dir").value == str(tmp_path)
    assert not at.exception and "no config.json" in at.error[0].value


@pytest.mark.slow
def test_long_document_is_truncated_said_and_downsampled():
    """Would catch: a document longer than the position table crashing the model or being cut silently, the 4096
    x 4096 matrix drawn cell by cell, and changing the layer rerunning the forward pass."""
    at = page("explorer")
    at.selectbox(key="sample").set_value(LONG).run()
    note = warnings_text(ok(at))
    assert "4,096" in note and "were cut" in note and "now ends at character" in note
    caption = forward_caption(at)
    assert "**4,096 tokens**" in caption
    fig = chart(at, "chart_matrix")
    assert "block-max, 8×8" in title(fig) and _decode(fig["data"][0]["z"]).shape == (512, 512)
    at.slider(key="layer").set_value(5).run()
    assert forward_caption(ok(at)) == caption and chart(at, "chart_matrix") != fig
    at.radio(key="view").set_value("Band").run()
    assert _decode(chart(ok(at), "chart_band")["data"][-1]["z"]).shape == (512, 129)
    at.radio(key="view").set_value("Layers × heads").run()
    assert at.info and "at most 512 tokens" in ok(at).info[0].value


# ---------------------------------------------------------------------------------------------------------------
# Patterns
# ---------------------------------------------------------------------------------------------------------------

def _metrics(at: AppTest) -> list[int]:
    return [int(m.value.split()[0].replace(",", "")) for m in at.metric]


def test_patterns_page_counts_follow_the_controls():
    """Would catch: a control not reaching the masks, or counts that disagree with the drawn masks."""
    at = ok(page("patterns"))
    full, sliding, dilated, glob = _metrics(at)
    n = at.slider(key="pattern_n").value
    assert full == n * n and sliding < full and glob > sliding
    at.slider(key="pattern_n").set_value(100).run()
    assert _metrics(ok(at))[0] == 100 * 100
    before = _metrics(at)
    at.select_slider(key="pattern_window").set_value(16).run()
    assert _metrics(ok(at))[1] > before[1]
    at.slider(key="pattern_dilation").set_value(4).run()
    assert "d=4" in chart(ok(at), "chart_patterns")["layout"]["annotations"][2]["text"]
    at.text_input(key="pattern_globals").set_value("0, 50, 99").run()
    assert _metrics(ok(at))[3] > _metrics(at)[1]
    at.text_input(key="pattern_globals").set_value("0, 100").run()
    assert "out of range" in warnings_text(ok(at))


def test_pattern_masks_agree_with_the_dense_oracle():
    """Would catch: the page's masks (from band_keys/band_mask) drifting from the rules the dense oracle writes
    out independently (refimpl/dense.py)."""
    n, w = 40, 3
    i, j = np.arange(n)[:, None], np.arange(n)[None, :]
    np.testing.assert_array_equal(patterns.sliding(n, w), np.abs(i - j) <= w)
    for d in (2, 3):
        expected = (np.abs(i - j) <= d * w) & ((j - i) % d == 0)
        np.testing.assert_array_equal(patterns.sliding(n, w, d), expected)
    glob = [0, 17, 39]
    kind = np.full((1, n), LOCAL)
    kind[0, glob] = GLOBAL
    np.testing.assert_array_equal(patterns.global_and_sliding(n, w, glob), longformer_mask(kind, w)[0])
    with pytest.raises(ValueError, match="even"):
        patterns.figure2(n, 5, 1, [])


# ---------------------------------------------------------------------------------------------------------------
# Complexity scaling
# ---------------------------------------------------------------------------------------------------------------

def test_scaling_page_shows_committed_results_or_says_there_are_none():
    """Would catch: the page failing without results, or not drawing the committed ones."""
    at = ok(page("scaling"))
    if scaling.find_results():
        fig = chart(at, "chart_committed")
        assert any("slope" in (t.get("name") or "") for t in fig["data"])
    else:
        assert at.info and "No benchmark results" in at.info[0].value


def test_scaling_page_draws_results_in_the_benchmarks_format(tmp_path, monkeypatch):
    """Would catch: the page misreading what benchmarks/scaling.py writes (scaling_<what>.json: metadata, notes and
    a list of results, some with errors and no numbers)."""
    rows = [{"what": "attention", "method": m, "n": n, "seconds": c * n ** p, "peak_bytes": 4.0 * n ** p}
            for m, c, p in (("dense", 1e-9, 2), ("numba", 1e-6, 1)) for n in (512, 1024, 2048, 4096)]
    rows.append({"what": "attention", "method": "numpy", "n": 512, "seconds": None, "peak_bytes": None,
                 "error": "took longer than 3600 s"})
    (tmp_path / "scaling_attention.json").write_text(json.dumps(
        {"machine": "x86_64, 2 cores", "command": "longformer-lab bench", "what": "attention",
         "notes": {"dense": "not run above 8192 tokens"}, "skipped": {"cupy": "no GPU"}, "results": rows}))
    monkeypatch.setattr(scaling, "results_dir", lambda: tmp_path)
    at = ok(page("scaling"))
    names = [t.get("name") or "" for t in chart(at, "chart_committed")["data"]]
    assert "dense (slope 2.00)" in names and "numba (slope 1.00)" in names
    assert "one attention layer" in title(chart(at, "chart_committed"))
    assert any("took longer" in m.value for m in at.markdown)


def test_live_measurement_draws_slopes():
    """Would catch: the measure button not measuring, a method failing, or the figure missing its guides."""
    at = ok(page("scaling"))
    at.multiselect(key="live_methods").set_value([scaling.DENSE, "numpy"]).run()
    at.select_slider(key="live_max_n").set_value(512).run()
    at.button(key="measure").click().run()
    fig = chart(ok(at), "chart_live")
    names = [t.get("name") or "" for t in fig["data"]]
    assert any(name.startswith("dense (slope") for name in names) and any(name.startswith("numpy") for name in names)
    assert "∝ n" in names and "∝ n²" in names
    assert len(at.session_state["live_results"]) == 2 * 2  # two methods at 256 and 512


def test_results_loading_and_slopes(tmp_path):
    """Would catch: the slope fit or the results reader getting the layout of the JSON wrong."""
    n = [256, 512, 1024, 2048]
    rows = [{"method": "dense", "n": k, "seconds": 1e-9 * k * k, "peak_bytes": 4.0 * k * k} for k in n]
    rows += [{"method": "numpy", "n": k, "seconds": 1e-6 * k, "peak_bytes": None} for k in n]
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"machine": "test", "results": rows}))
    records, meta = scaling.load_results(path)
    assert meta == {"machine": "test"}
    slopes = scaling.fits(scaling.series(records))
    assert slopes[("dense", "seconds")] == pytest.approx(2.0) and slopes[("numpy", "seconds")] == pytest.approx(1.0)
    assert ("numpy", "peak_bytes") not in slopes
    path.write_text("[1, 2]")
    with pytest.raises(ValueError):
        scaling.load_results(path)


# ---------------------------------------------------------------------------------------------------------------
# Backend parity
# ---------------------------------------------------------------------------------------------------------------

def test_parity_page_compares_every_implementation():
    """Would catch: a backend (or transformers) disagreeing with the reference, or the table missing layers."""
    at = ok(page("parity"))
    others = [n for n in at.multiselect(key="parity_backends").value if n != "numpy"]
    assert others, "nothing to compare with the reference"
    assert [m.value for m in at.metric] == ["pass"] * len(others)
    table = at.dataframe[0].value
    assert len(table) == 6 * 3  # six layers x (hidden state, local attention, global attention)
    at.selectbox(key="parity_sample").set_value(PAIR).run()
    at.selectbox(key="parity_globals").set_value("question (before the first separator)").run()
    assert [m.value for m in ok(at).metric] == ["pass"] * len(others)
    assert not at.dataframe[0].value.equals(table)
    at.select_slider(key="parity_window").set_value(32).run()
    assert [m.value for m in ok(at).metric] == ["pass"] * len(others)
    assert "window 32," in next(c.value for c in at.caption if "tokens," in c.value)
    chart(at, "chart_parity")


# ---------------------------------------------------------------------------------------------------------------
# The computations behind the explorer
# ---------------------------------------------------------------------------------------------------------------

def _tokenizer():
    from refimpl.io.default_model import default_checkpoint_dir
    from refimpl.io.tokenizer import LongformerTokenizer

    return LongformerTokenizer.from_pretrained(default_checkpoint_dir())


def _decode(x):
    """A plotly array as NumPy: plotly writes NumPy arrays as {"dtype", "bdata"(, "shape")} base64."""
    import base64

    if isinstance(x, dict):
        a = np.frombuffer(base64.b64decode(x["bdata"]), dtype=x["dtype"])
        return a.reshape([int(s) for s in str(x["shape"]).split(",")]) if "shape" in x else a
    return np.asarray(x, dtype=float)


def _fake_result(n=50, w=4, G=(0, 21), heads=2, seed=0):
    """A ForwardResult with random rows that follow the model's layout rules (rows sum to 1 over visible keys)."""
    rng = np.random.default_rng(seed)
    kind = np.full(n, LOCAL)
    kind[list(G)] = GLOBAL
    local = np.zeros((heads, n, len(G) + 2 * w + 1), np.float32)
    for i in np.flatnonzero(kind == LOCAL):
        keys = i + np.arange(2 * w + 1) - w
        visible = (keys >= 0) & (keys < n)
        visible[visible] &= kind[keys[visible]] == LOCAL
        row = np.concatenate([np.ones(len(G), bool), visible])
        p = rng.random((heads, row.sum())).astype(np.float32)
        local[:, i, row] = p / p.sum(axis=1, keepdims=True)
    glob = rng.random((heads, n, len(G))).astype(np.float32)
    glob /= glob.sum(axis=1, keepdims=True)
    return explore.ForwardResult((local,), (glob,), np.asarray(G), (2 * w,), np.arange(n), 0.0, "numpy"), kind


def test_block_max_keeps_a_one_token_diagonal_and_stripe():
    """Would catch: downsampling by mean or by striding, which fades or drops thin diagonals and global stripes."""
    a = np.zeros((4096, 4096), np.float32)
    a[np.arange(4096), np.arange(4096)] = 0.3
    a[:, 1234] = 0.7
    small = explore.block_max(a, 8)
    assert small.shape == (512, 512)
    assert (np.diag(small) >= 0.3).all() and (small[:, 1234 // 8] == 0.7).all()
    assert explore.block_max(np.ones((10, 3)), 4, axes=(0,)).shape == (3, 3)


def test_matrix_band_and_query_views_agree_with_the_dense_layout():
    """Would catch: a view reading the band slots or global columns at the wrong keys."""
    result, kind = _fake_result()
    dense = outputs_to_dense(result.local[0][None], result.glob[0][None], kind[None], 4)[0]  # (H, N, N)
    z, block = explore.attention_matrix(result, 0, 1)
    assert block == 1
    np.testing.assert_allclose(z, dense[1], atol=1e-7)
    z_mean, _ = explore.attention_matrix(result, 0, "mean")
    np.testing.assert_allclose(z_mean, dense.mean(axis=0), atol=1e-6)
    local_w, global_w = explore.query_weights(result, 0, 1, 10)
    np.testing.assert_allclose(local_w + global_w, dense[1, 10], atol=1e-7)
    assert local_w.sum() + global_w.sum() == pytest.approx(1.0, abs=1e-5)
    local_w, global_w = explore.query_weights(result, 0, 1, 21)  # a global query: its whole row
    assert not local_w.any()
    np.testing.assert_allclose(global_w, dense[1, 21], atol=1e-7)
    global_cols, band, block = explore.band_view(result, 0, 0, rows=16)
    assert block == 4 and global_cols.shape == (13, 2) and band.shape == (13, 9)
    mosaic, cells, block = explore.model_view(result)
    assert mosaic.shape == (cells, 2 * cells + 1) and block == 1


def test_positions_parsing_and_sentence_starts():
    """Would catch: a position parser that accepts garbage or drops ranges, sentence starts off by a token."""
    assert explore.parse_positions(" 3, 1-2 ; 7 ") == [1, 2, 3, 7]
    for bad in ("x", "3-1", "1.5"):
        with pytest.raises(ValueError):
            explore.parse_positions(bad)
    assert explore.split_in_range([0, 5, 9], 6) == ([0, 5], [9])
    tok = _tokenizer()
    text = "One two. Three four! Five?"
    enc = explore.encode(tok, text, "", 4096)
    assert [enc.tokens[p] for p in explore.sentence_starts(enc, text, "")] == ["one", "three", "five"]
    with pytest.raises(ValueError, match="empty"):
        explore.encode(tok, " \n", "", 4096)
    enc = explore.encode(tok, "word " * 30, "", 10)
    assert enc.n == 10 and "were cut" in explore.truncation_note(enc, "word " * 30, "")

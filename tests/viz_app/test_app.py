"""The visualizer (viz_app/): every page under Streamlit's AppTest on the default model, driven through its widgets
by key, and the app's structure (thin pages, computation in viz_app/core/, caches in views/cache.py).

Each test says what it would catch. Pages are mostly tested one file at a time (AppTest.from_file on the page),
as Streamlit runs them inside app.py's navigation. One test runs app.py itself and visits every page. Clicks in
charts are simulated as Streamlit delivers them: the chart's selection event in st.session_state[chart key].
The computations behind the pages are tested in test_core.py.
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
from viz_app import launch  # noqa: E402
from viz_app.core import attention_views, global_tokens, text as tx, timing  # noqa: E402

APP_DIR = Path(viz_app.__file__).resolve().parent
PAGES = {"explorer": "Attention explorer", "patterns": "Attention patterns", "scaling": "Complexity scaling",
         "parity": "Backend parity"}
TIMEOUT = 120  # seconds per run: the first run converts the default model if no cache has it yet
LONG = tx.LONG_SAMPLE
PAIR = "Question + context"


def page(name: str, **query_params) -> AppTest:
    at = AppTest.from_file(str(APP_DIR / "views" / f"{name}.py"), default_timeout=TIMEOUT)
    for k, v in query_params.items():
        at.query_params[k] = v
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


def has_chart(at: AppTest, key: str) -> bool:
    return any(getattr(c, "key", None) == key for c in at.get("plotly_chart"))


def title(fig: dict) -> str:
    return fig["layout"]["title"]["text"]


def forward_caption(at: AppTest) -> str:
    """The explorer's caption that reports the forward pass (token count, global count, time, backend)."""
    return next(c.value for c in at.caption if "forward pass" in c.value)


def decode(x):
    """A plotly array as NumPy: plotly writes NumPy arrays as {"dtype", "bdata"(, "shape")} base64."""
    import base64

    if isinstance(x, dict):
        a = np.frombuffer(base64.b64decode(x["bdata"]), dtype=x["dtype"])
        return a.reshape([int(s) for s in str(x["shape"]).split(",")]) if "shape" in x else a
    return np.asarray(x, dtype=float)


def trace(fig: dict, name: str) -> dict | None:
    return next((t for t in fig["data"] if t.get("name") == name), None)


def global_markers(fig: dict) -> list[int]:
    """x positions of the orange triangles that mark global columns."""
    t = trace(fig, "global column")
    return [] if t is None else sorted(int(v) for v in decode(t["x"]))


def warnings_text(at: AppTest) -> str:
    return " | ".join(w.value for w in at.warning)


def click(at: AppTest, key: str, kind: str, value: int) -> AppTest:
    """A click on a point standing for (kind, value), as Streamlit reports it, then the rerun it triggers."""
    at.session_state[key] = {"selection": {"points": [{"x": 0, "y": 0, "curve_number": 1, "point_index": 0,
                                                       "customdata": [kind, value]}],
                                           "point_indices": [0], "box": [], "lasso": []}}
    return at.run()


def tokenizer():
    from refimpl.io.default_model import default_checkpoint_dir
    from refimpl.io.tokenizer import LongformerTokenizer

    return LongformerTokenizer.from_pretrained(default_checkpoint_dir())


def encode(text: str, pair: str = ""):
    return tx.encode(tokenizer(), text, pair, 4096)


# ---------------------------------------------------------------------------------------------------------------
# The app and its structure
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
    core = sorted(p.stem for p in (APP_DIR / "core").glob("*.py") if p.stem != "__init__")
    modules = ", ".join([*(f"viz_app.core.{m}" for m in core), "viz_app.launch"])
    code = f"import sys, {modules}; print('streamlit' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_no_computation_module_shares_a_name_with_a_page_and_caches_live_in_one_module():
    """Would catch: explore.py beside views/explorer.py again (which file does what?), a cache decorator outside
    views/cache.py, or a page that computes (numpy in a page file)."""
    pages = {p.stem for p in (APP_DIR / "views").glob("*.py")}
    computation = {p.stem for p in (APP_DIR / "core").glob("*.py")} | {p.stem for p in APP_DIR.glob("*.py")}
    assert not (pages & computation) - {"__init__"}, pages & computation
    for path in APP_DIR.rglob("*.py"):
        if path.name != "cache.py":
            assert "st.cache_" not in path.read_text(), path
    for name in PAGES:
        tree = ast.parse((APP_DIR / "views" / f"{name}.py").read_text())
        imported = {alias.name for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
                    for alias in node.names} | {node.module for node in ast.walk(tree)
                                                if isinstance(node, ast.ImportFrom)}
        assert "numpy" not in imported, name


def test_every_widget_of_the_explorer_has_a_key():
    """Would catch: a widget that tests (and the URL) cannot find by key."""
    at = ok(page("explorer"))
    for view in ("Matrix", "Band", "Token", "Layers × heads", "Compare", "Head view"):
        at.radio(key="view").set_value(view).run()
        for kind in ("selectbox", "slider", "select_slider", "text_input", "text_area", "number_input", "radio",
                     "checkbox", "button", "multiselect"):
            for widget in at.get(kind):
                assert widget.key, f"{kind} {widget.label!r} in view {view} has no key"
        for c in at.get("plotly_chart"):
            assert c.key, f"a chart in view {view} has no key"
    at.radio(key="view").set_value("Matrix").run()


# ---------------------------------------------------------------------------------------------------------------
# The launcher
# ---------------------------------------------------------------------------------------------------------------

def parse(*argv):
    parser = argparse.ArgumentParser()
    launch.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_launch_listens_on_localhost_headless_without_usage_statistics():
    """Would catch: `longformer-lab app` listening on every interface by default, phoning home, ignoring --port or
    --host, or Streamlit's own browser opening (which asks for an e-mail address on a first run)."""
    joined = " ".join(launch.command(parse("--port", "8765")))
    assert "--server.address 127.0.0.1" in joined and "--server.port 8765" in joined
    assert "--server.headless true" in joined and "--browser.gatherUsageStats false" in joined
    assert "--server.address 0.0.0.0" in " ".join(launch.command(parse("--host", "0.0.0.0")))
    assert launch.url(parse("--port", "9000")) == "http://localhost:9000"
    with pytest.raises(ValueError, match="port"):
        launch.run(parse("--port", "0"))


def test_launch_opens_the_browser_only_where_there_is_a_display(monkeypatch):
    """Would catch: `make app` trying to open a browser on a headless server, or never opening one on a desktop."""
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert not launch.has_display()
    monkeypatch.setenv("DISPLAY", ":0")
    assert launch.has_display()


def test_launch_restricts_checkpoints_beyond_localhost(tmp_path):
    """Would catch: a public server letting visitors load any folder (the roots are passed only beyond
    localhost, and include --model and --model-root)."""
    assert launch.ROOTS_ENV not in launch.environment(parse(), {})
    env = launch.environment(parse("--host", "0.0.0.0", "--model", str(tmp_path), "--model-root", "/data"), {})
    assert env[launch.ROOTS_ENV].split(":") == ["/data", str(tmp_path.resolve())]
    assert parse("--no-browser").no_browser


def test_a_folder_outside_the_allowed_roots_is_refused(tmp_path, monkeypatch):
    """Would catch: the checkpoint field reading a folder outside the allowed roots when the server is public."""
    monkeypatch.setenv(launch.ROOTS_ENV, str(tmp_path / "allowed"))
    at = AppTest.from_file(str(APP_DIR / "views" / "explorer.py"), default_timeout=TIMEOUT)
    at.session_state["model_dir"] = "/etc"
    at.run()
    assert at.error and "outside the folders this server may load" in at.error[0].value
    at.text_input(key="model_dir").set_value("").run()  # the default model is always allowed
    assert ok(at).get("plotly_chart")


# ---------------------------------------------------------------------------------------------------------------
# Attention explorer: the main widgets change what is shown
# ---------------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def explorer():
    """One explorer session on the short abstract; tests reset what they change."""
    return ok(page("explorer"))


def test_explorer_draws_the_exact_matrix_of_a_short_text(explorer):
    """Would catch: a short input drawn downsampled, the global token not marked, hovers without token text."""
    fig = chart(explorer, "chart_matrix")
    assert "exact" in title(fig)
    assert global_markers(fig) == [0]  # the default preset: the first token
    hover = fig["data"][0]["text"]
    enc = encode(tx.load_sample("Short abstract")[0])
    assert hover[3][5].startswith(f"3 {enc.surfaces[3]!r} → 5 {enc.surfaces[5]!r}")
    assert fig["layout"]["xaxis"]["ticktext"]  # tokens on the axes
    assert {b.key for b in explorer.get("download_button")} == {"download_layer", "download_stats"}


def test_linear_scale_leaves_never_computed_pairs_blank(explorer):
    """Would catch: the linear colour scale painting pairs the model never computes like tiny weights (the
    caption says they are blank)."""
    at = explorer
    at.radio(key="color_scale").set_value("linear").run()
    z = decode(chart(ok(at), "chart_matrix")["data"][0]["z"])
    enc = encode(tx.load_sample("Short abstract")[0])
    assert enc.n > 66 and np.isnan(z[1, -1]) and np.isfinite(z[1, 1])  # beyond the window (W = 64): blank
    at.radio(key="color_scale").set_value("log").run()


def test_text_changes_the_tokens_and_own_text_comes_back(explorer):
    """Would catch: the text area not reaching the model, and "Your own text" bringing back the sample instead
    of what was typed."""
    at = explorer
    caption = forward_caption(at)
    text = "A short sentence. And another one."
    at.text_area(key="text").set_value(text).run()
    n = encode(text).n
    assert f"**{n} tokens**" in forward_caption(ok(at))
    assert at.selectbox(key="sample").value == tx.OWN_TEXT  # editing leaves the sample
    at.selectbox(key="sample").set_value("Short abstract").run()
    assert forward_caption(at) == caption
    at.selectbox(key="sample").set_value(tx.OWN_TEXT).run()
    assert ok(at).text_area(key="text").value == text
    at.selectbox(key="sample").set_value("Short abstract").run()


def test_global_presets_and_positions_by_hand(explorer):
    """Would catch: a preset or the position field not reaching the model, or the marks not following them;
    sentence starts on a quote or bracket rather than the first word."""
    at = explorer
    at.selectbox(key="global_preset").set_value("none").run()
    assert ok(at) and global_markers(chart(at, "chart_matrix")) == [] and ", 0 global" in forward_caption(at)
    at.text_input(key="global_manual").set_value("3, 7-8").run()
    assert ok(at) and global_markers(chart(at, "chart_matrix")) == [3, 7, 8]
    at.selectbox(key="global_preset").set_value("every sentence start").run()
    marks = global_markers(chart(at, "chart_matrix"))
    enc = encode(at.text_area(key="text").value)
    starts = [p for p in marks if p not in (3, 7, 8)]
    assert [enc.tokens[p] for p in starts] == ["transformers", "long", "each", "the", "together"]
    at.text_input(key="global_manual").set_value("").run()
    at.selectbox(key="global_preset").set_value("first token").run()
    assert global_markers(chart(ok(at), "chart_matrix")) == [0]


def test_question_preset_on_the_question_context_pair(explorer):
    """Would catch: the question preset not covering exactly the tokens before the first separator."""
    at = explorer
    at.selectbox(key="sample").set_value(PAIR).run()
    question, context = tx.load_sample(PAIR)
    assert at.text_area(key="pair").value == context
    at.selectbox(key="global_preset").set_value("question (before the first separator)").run()
    enc = encode(question, context)
    first_sep = enc.tokens.index("[SEP]")
    assert global_markers(chart(ok(at), "chart_matrix")) == list(range(first_sep))
    at.selectbox(key="global_preset").set_value("first token").run()
    at.selectbox(key="sample").set_value("Short abstract").run()
    assert ok(at).text_area(key="pair").value == ""


def band_w(at) -> int:
    return -int(chart(ok(at), "chart_band")["layout"]["xaxis2"]["range"][0] + 2.5)


def test_window_and_per_layer_windows_change_the_band(explorer):
    """Would catch: the window control not reaching the model, per-layer windows applied to the wrong layer, the
    main slider live while ignored, and toggling the per-layer mode resetting every layer."""
    at = explorer
    at.radio(key="view").set_value("Band").run()
    assert band_w(at) == 64  # the checkpoint's window 128
    at.select_slider(key="window").set_value(16).run()
    assert band_w(at) == 8
    at.checkbox(key="window_per_layer").check().run()
    assert at.select_slider(key="window").disabled
    at.select_slider(key="window_layer_1").set_value(4).run()
    assert band_w(at) == 8  # layer 0 keeps 16
    at.slider(key="layer").set_value(1).run()
    assert band_w(at) == 2
    assert "[16, 4, 16, 16, 16, 16]" in forward_caption(at)
    at.checkbox(key="window_per_layer").uncheck().run()
    assert not at.select_slider(key="window").disabled
    at.checkbox(key="window_per_layer").check().run()
    assert "[16, 4, 16, 16, 16, 16]" in forward_caption(ok(at))  # kept while the mode was off
    at.checkbox(key="window_per_layer").uncheck().run()
    at.select_slider(key="window").set_value(128).run()
    at.slider(key="layer").set_value(0).run()
    at.radio(key="view").set_value("Matrix").run()
    ok(at)


def band_trace(at) -> dict:
    """The band heatmap of the band view (the last heatmap: the global columns come first)."""
    return [t for t in chart(ok(at), "chart_band")["data"] if t["type"] == "heatmap"][-1]


def test_dilation_and_autoregressive_controls_reach_the_band(explorer):
    """Would catch: the dilation field or the causal toggle not reaching the model, the band view naming the keys
    of a dilated head as if undilated, a per-head spec of the wrong length crashing, and the causal window with
    global tokens crashing (the model refuses them) instead of turning them off with a note."""
    at = explorer
    at.radio(key="view").set_value("Band").run()
    at.select_slider(key="window").set_value(8).run()
    at.selectbox(key="head").set_value(0).run()
    at.text_input(key="dilation").set_value("3").run()
    band = band_trace(at)
    assert "3·offset" in " ".join(a["text"] for a in chart(at, "chart_band")["layout"]["annotations"])
    assert "k 23 " in band["text"][20][4 + 1]  # query 20, slot t = W + 1: key 20 + 3
    assert "dilation 3 ·" in forward_caption(at)
    H = len(at.selectbox(key="head").options) - 1  # "mean", then the heads
    at.text_input(key="dilation").set_value("1,2").run()
    assert "one per head" in warnings_text(ok(at)) and "dilation" not in forward_caption(at)
    at.text_input(key="dilation").set_value(",".join(["1", "2"] * (H // 2))).run()
    assert "k 21 " in band_trace(at)["text"][20][5]  # head 0 has dilation 1 ...
    at.selectbox(key="head").set_value(1).run()
    assert "k 22 " in band_trace(at)["text"][20][5]  # ... head 1 dilation 2
    at.selectbox(key="head").set_value("mean").run()
    assert any("different dilations" in i.value for i in at.info)  # ... and the mean mixes keys: said
    at.checkbox(key="autoregressive").check().run()
    assert len(band_trace(ok(at))["text"][0]) == 4 + 1  # W + 1 slots
    assert at.selectbox(key="global_preset").disabled and at.text_input(key="global_manual").disabled
    assert any("no global tokens" in i.value for i in at.info)
    assert "0 global" in forward_caption(at) and "autoregressive" in forward_caption(at)
    at.radio(key="view").set_value("Matrix").run()
    assert global_markers(chart(ok(at), "chart_matrix")) == []
    at.checkbox(key="autoregressive").uncheck().run()
    at.text_input(key="dilation").set_value("1").run()
    at.select_slider(key="window").set_value(128).run()
    assert global_markers(chart(ok(at), "chart_matrix")) == [0]


def test_patterns_link_each_pattern_to_the_explorer():
    """Would catch: a pattern's "Run this on the text" not opening the explorer, or opening it without the
    pattern's window, dilation, causal setting or global tokens."""
    at = ok(AppTest.from_file(str(APP_DIR / "app.py"), default_timeout=TIMEOUT).run())
    at.switch_page("views/patterns.py").run()
    assert {b.key for b in at.button} >= {"run_pattern_sliding", "run_pattern_dilated", "run_pattern_global_sliding",
                                          "run_pattern_autoregressive"}
    at.slider(key="pattern_dilation").set_value(4).run()
    at.button(key="run_pattern_dilated").click().run()
    assert ok(at).title[0].value == PAGES["explorer"]
    assert at.text_input(key="dilation").value == "4" and at.select_slider(key="window").value == 8
    assert "dilation 4 ·" in forward_caption(at) and "0 global" in forward_caption(at)
    at.switch_page("views/patterns.py").run()
    at.button(key="run_pattern_autoregressive").click().run()
    assert ok(at).checkbox(key="autoregressive").value and "autoregressive" in forward_caption(at)
    at.switch_page("views/patterns.py").run()
    at.text_input(key="pattern_globals").set_value("0, 3").run()
    at.button(key="run_pattern_global_sliding").click().run()
    assert not ok(at).checkbox(key="autoregressive").value
    assert "2 global" in forward_caption(at) and at.text_input(key="dilation").value == "1"


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
        drawn[name] = np.nan_to_num(decode(chart(at, "chart_matrix")["data"][0]["z"]), nan=-9)
    for name, z in drawn.items():
        np.testing.assert_allclose(z, drawn["numpy"], atol=1e-4, err_msg=name)  # log10 p
    at.selectbox(key="backend").set_value(names[0] if "numba" not in names else "numba").run()


def test_every_view_draws_and_marks_the_query(explorer):
    """Would catch: a view that fails to draw, or one that does not show the chosen query."""
    at = explorer
    at.number_input(key="query").set_value(5).run()
    at.radio(key="view").set_value("Band").run()
    assert "own layout" in title(chart(ok(at), "chart_band"))
    assert any("rows of the global tokens" in c.value for c in at.caption)  # says why they are blank
    at.radio(key="view").set_value("Token").run()
    row, column = chart(ok(at), "chart_row"), chart(at, "chart_column")
    assert "what 5 " in title(row) and "who attends to 5 " in title(column)
    grid = chart(at, "chart_tokens")["data"][0]
    assert grid["marker"]["line"]["color"][5] == "#d62728"  # the query outlined
    at.radio(key="view").set_value("Layers × heads").run()
    assert chart(ok(at), "chart_stats") and chart(at, "chart_profile") and chart(at, "chart_model")
    at.radio(key="view").set_value("Compare").run()
    assert chart(ok(at), "chart_compare_a") and chart(at, "chart_compare_b") and chart(at, "chart_difference")
    at.radio(key="view").set_value("Head view").run()
    assert "tokens" in title(chart(ok(at), "chart_headview"))
    at.radio(key="view").set_value("Matrix").run()


# ---------------------------------------------------------------------------------------------------------------
# Linked views: clicks, search, regions, the URL
# ---------------------------------------------------------------------------------------------------------------

def test_clicking_a_tile_of_the_layers_x_heads_grid_opens_that_head(explorer):
    """Would catch: a statistics tile or a mosaic tile that does nothing when clicked."""
    at = explorer
    at.radio(key="view").set_value("Layers × heads").run()
    tiles = trace(chart(ok(at), "chart_stats"), "tiles")
    assert ["head", 4002] in tiles["customdata"]
    click(at, "chart_stats", "head", 4002)
    assert ok(at).radio(key="view").value == "Matrix"
    assert at.slider(key="layer").value == 4 and at.selectbox(key="head").value == 2
    assert "Layer 4, head 2" in title(chart(at, "chart_matrix"))
    at.radio(key="view").set_value("Layers × heads").run()
    click(at, "chart_model", "head", 1003)
    assert at.slider(key="layer").value == 1 and at.selectbox(key="head").value == 3
    at.slider(key="layer").set_value(0).run()
    at.selectbox(key="head").set_value("mean").run()


def test_clicking_a_row_a_token_or_a_bar_changes_the_query(explorer):
    """Would catch: the matrix's row strip, the token grid, the band's rows or the bars not linked to the query."""
    at = explorer
    click(at, "chart_matrix", "query", 12)
    assert ok(at).number_input(key="query").value == 12
    assert chart(at, "chart_matrix")["layout"]["shapes"][0]["y0"] == 11.5  # the row outlined
    at.radio(key="view").set_value("Token").run()
    click(at, "chart_tokens", "query", 30)
    assert ok(at).number_input(key="query").value == 30
    click(at, "chart_column", "query", 33)
    assert at.number_input(key="query").value == 33
    at.radio(key="view").set_value("Band").run()
    click(at, "chart_band", "query", 7)
    assert ok(at).number_input(key="query").value == 7
    at.radio(key="view").set_value("Matrix").run()


def test_a_box_on_the_matrix_redraws_that_region_exactly(explorer):
    """Would catch: box selection only enlarging cells instead of redrawing the region one cell per pair."""
    at = explorer
    at.session_state["chart_matrix"] = {"selection": {"points": [], "point_indices": [], "lasso": [],
                                                      "box": [{"x": [9.5, 29.5], "y": [19.5, 49.5]}]}}
    at.run()
    assert ok(at).slider(key="region_q").value == (20, 49) and at.slider(key="region_k").value == (10, 29)
    fig = chart(at, "chart_region")
    assert len(fig["data"][0]["text"]) == 30 and len(fig["data"][0]["text"][0]) == 20  # one cell per pair
    assert "exact" in title(fig)
    at.button(key="region_follow").click().run()
    ok(at)


def test_search_jumps_to_a_word_and_lists_its_matches(explorer):
    """Would catch: a search box that finds nothing, or does not make the match the query."""
    at = explorer
    at.text_input(key="search").set_value("attention").run()
    enc = encode(tx.load_sample("Short abstract")[0])
    hits = tx.find(enc, tx.load_sample("Short abstract")[0], "", "attention")
    assert len(hits) >= 2 and ok(at).number_input(key="query").value == hits[0]
    at.selectbox(key="search_hit").set_value(hits[1]).run()
    assert ok(at).number_input(key="query").value == hits[1]
    at.text_input(key="search").set_value("zzzqqq").run()
    assert any("No token matches" in c.value for c in at.caption)
    at.text_input(key="search").set_value("").run()


def test_the_url_keeps_the_view_and_a_link_restores_it():
    """Would catch: the layer, head, query or view not written to the URL, or a shared link not restoring them."""
    at = ok(page("explorer", view="Token", layer="2", head="7", query="9"))
    assert at.radio(key="view").value == "Token"
    assert at.slider(key="layer").value == 2 and at.selectbox(key="head").value == 7
    assert at.number_input(key="query").value == 9
    at.number_input(key="query").set_value(11).run()
    assert dict(at.query_params) | {} == {**dict(at.query_params), "query": "11"}
    assert at.query_params["layer"] == "2" and at.query_params["view"] == "Token"
    bad = ok(page("explorer", layer="99", head="x", query="100000", view="nope"))
    assert bad.slider(key="layer").value == 0 and bad.number_input(key="query").value == encode(
        tx.load_sample("Short abstract")[0]).n - 1


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


def test_too_many_global_tokens_are_capped_keeping_typed_ones_and_saying_what_went():
    """Would catch: a cap that keeps the lowest positions and silently drops the preset's (sentence starts gone
    when 0-255 is also asked)."""
    at = page("explorer")
    at.selectbox(key="sample").set_value(PAIR).run()  # about 400 tokens
    at.selectbox(key="global_preset").set_value("every sentence start").run()
    at.text_input(key="global_manual").set_value("0-299").run()
    note = warnings_text(ok(at))
    assert f"keeps {global_tokens.MAX_GLOBAL}" in note and "of the typed positions" in note
    assert f", {global_tokens.MAX_GLOBAL} global" in forward_caption(at)


def test_tiny_inputs_draw_markers_beside_the_matrix_and_whole_ticks():
    """Would catch: a 3-token input drawn with its global markers far from the matrix, or fractional ticks."""
    at = page("explorer")
    at.text_area(key="text").set_value("hi").run()
    fig = chart(ok(at), "chart_matrix")
    y = decode(trace(fig, "global column")["y"])
    assert -2.5 < y[0] < -0.5
    assert all(float(v).is_integer() for v in fig["layout"]["xaxis"]["tickvals"])


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
    x 4096 matrix drawn cell by cell, hovers without token text, and changing the layer rerunning the pass."""
    at = page("explorer")
    at.selectbox(key="sample").set_value(LONG).run()
    note = warnings_text(ok(at))
    assert "4,096" in note and "the text lost its last" in note and "now ends at character" in note
    caption = forward_caption(at)
    assert "**4,096 tokens**" in caption
    fig = chart(at, "chart_matrix")
    cells = attention_views.OVERVIEW_CELLS
    assert f"block-max, {4096 // cells}×{4096 // cells}" in title(fig) and decode(fig["data"][0]["z"]).shape == (cells, cells)
    assert "max " in fig["data"][0]["text"][0][0] and "→" in fig["data"][0]["text"][0][0]  # the strongest pair
    at.text_input(key="search").set_value("rabbit").run()
    query = ok(at).number_input(key="query").value
    assert query > 0 and "rabbit" in at.session_state["search"]
    at.slider(key="layer").set_value(5).run()
    assert forward_caption(ok(at)) == caption and chart(at, "chart_matrix") != fig
    at.radio(key="view").set_value("Band").run()
    assert decode(chart(ok(at), "chart_band")["data"][1]["z"]).shape == (cells, 129)
    at.radio(key="view").set_value("Token").run()
    assert "rabbit" in title(chart(ok(at), "chart_row")).lower()
    at.radio(key="view").set_value("Layers × heads").run()
    assert chart(ok(at), "chart_stats") and any("at most 512 tokens" in c.value for c in at.caption)


# ---------------------------------------------------------------------------------------------------------------
# Patterns, scaling, parity
# ---------------------------------------------------------------------------------------------------------------

def _metrics(at: AppTest) -> list[int]:
    return [int(m.value.split()[0].replace(",", "")) for m in at.metric]


def test_patterns_page_counts_follow_the_controls():
    """Would catch: a control not reaching the masks, or counts that disagree with the drawn masks."""
    at = ok(page("patterns"))
    full, sliding, dilated, glob, causal = _metrics(at)
    n = at.slider(key="pattern_n").value
    assert full == n * n and sliding < full and glob > sliding and causal < sliding
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


def test_scaling_page_shows_committed_results_or_says_there_are_none():
    """Would catch: the page failing without results, or not drawing the committed ones."""
    at = ok(page("scaling"))
    if timing.find_results():
        fig = chart(at, "chart_committed")
        assert any("slope" in (t.get("name") or "") for t in fig["data"])
    else:
        assert at.info and "No benchmark results" in at.info[0].value


def test_scaling_page_draws_results_in_the_benchmarks_format(tmp_path, monkeypatch):
    """Would catch: the page misreading what benchmarks/scaling.py writes (scaling_<what>.json: metadata, notes and
    a list of results, some with errors and no numbers), a whole-model sweep titled as one attention call, and log
    axes labelling every minor tick."""
    rows = [{"what": "model", "method": m, "n": n, "seconds": c * n ** p, "peak_bytes": 4.0 * n ** p}
            for m, c, p in (("dense", 1e-9, 2), ("numba", 1e-6, 1)) for n in (512, 1024, 2048, 4096)]
    rows.append({"what": "model", "method": "numpy", "n": 512, "seconds": None, "peak_bytes": None,
                 "error": "took longer than 3600 s"})
    (tmp_path / "scaling_model.json").write_text(json.dumps(
        {"machine": "x86_64, 2 cores", "command": "longformer-lab bench", "what": "model",
         "notes": {"dense": "not run above 8192 tokens"}, "skipped": {"cupy": "no GPU"}, "results": rows}))
    monkeypatch.setattr(timing, "results_dir", lambda: tmp_path)
    at = ok(page("scaling"))
    fig = chart(at, "chart_committed")
    names = [t.get("name") or "" for t in fig["data"]]
    assert "dense (slope 2.00)" in names and "numba (slope 1.00)" in names
    assert "whole model" in title(fig)
    assert fig["layout"]["annotations"][0]["text"] == "time of one forward pass of the whole model"
    assert fig["layout"]["xaxis"]["tickvals"] == [512, 1024, 2048, 4096]
    ticks = fig["layout"]["yaxis"]["tickvals"]  # 1-2-5 steps (under two decades), not every minor tick
    assert 3 <= len(ticks) <= 12 and all(round(v / 10 ** np.floor(np.log10(v)), 6) in (1, 2, 5) for v in ticks)
    assert any("took longer" in m.value for m in at.markdown)


def test_live_measurement_draws_slopes():
    """Would catch: the measure button not measuring, a method failing, or the figure missing its guides."""
    at = ok(page("scaling"))
    at.multiselect(key="live_methods").set_value([timing.DENSE, "numpy"]).run()
    at.select_slider(key="live_max_n").set_value(512).run()
    at.button(key="measure").click().run()
    fig = chart(ok(at), "chart_live")
    names = [t.get("name") or "" for t in fig["data"]]
    assert any(name.startswith("dense (slope") for name in names) and any(name.startswith("numpy") for name in names)
    assert "∝ n" in names and "∝ n²" in names
    assert len(at.session_state["live_results"]) == 2 * 2  # two methods at 256 and 512


def test_dilation_measurement_draws_one_line_per_dilation():
    """Would catch: the dilation sweep measured on page load, not reaching the backend's dilation argument (a
    failing call is a warning here), or drawn without one line per dilation."""
    at = ok(page("scaling"))
    assert not has_chart(at, "chart_dilation")  # only on the button
    at.selectbox(key="dilation_backend").set_value("numpy").run()
    at.select_slider(key="dilation_max_n").set_value(512).run()
    at.button(key="measure_dilation").click().run()
    assert not ok(at).warning
    names = [t.get("name") or "" for t in chart(at, "chart_dilation")["data"]]
    for d in timing.DILATIONS:
        assert any(name.startswith(f"numpy, d = {d} (slope") for name in names), names
    assert len(at.session_state["dilation_results"]) == 2 * len(timing.DILATIONS)  # at 256 and 512


def test_parity_page_compares_every_implementation():
    """Would catch: a backend (or transformers) disagreeing with the reference, the table missing layers, the
    reference offered for removal (removing it did nothing), and window 2 reaching transformers' RuntimeError."""
    at = ok(page("parity"))
    others = at.multiselect(key="parity_backends").value
    assert others and "numpy" not in at.multiselect(key="parity_backends").options
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
    at.select_slider(key="parity_window").set_value(2).run()
    ok(at)
    if "transformers" in others:
        assert any("at least 4" in c.value for c in at.caption)
    chart(at, "chart_parity")

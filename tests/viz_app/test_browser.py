"""End to end: the app served by `streamlit run` on a free localhost port, driven in Debian's Chromium (headless)
through Playwright. Each page is opened, its chart waited for, checked for an exception box, a control is used and
the chart must change; on the 4,096-token sample a hover must name tokens, a box must redraw its region exactly,
the search and a click must change the query. Screenshots go to artifacts/screenshots/ (gitignored); the README's
are copies of them in docs/screenshots/.

Playwright cannot download its own browser here, so the test uses /usr/bin/chromium (`apt-get install chromium`;
.ci/run installs it) and skips, saying so, only when that is missing. Widgets are found by their key: Streamlit
gives each keyed element the CSS class `st-key-<key>`.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from viz_app import launch

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "artifacts" / "screenshots"
PAGE_TITLES = ["Attention explorer", "Patterns", "Complexity scaling", "Backend parity"]
WAIT_MS = 180_000  # a 2-core machine running the server, the model and the browser at once is slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`streamlit run viz_app/app.py` on a free port; yields its URL, stops it afterwards."""
    port = free_port()
    log = open(tmp_path_factory.mktemp("streamlit") / "server.log", "w+")
    # the command `longformer-lab app` runs (streamlit run viz_app/app.py, headless, no usage statistics)
    cmd = launch.command(argparse.Namespace(port=port, host="127.0.0.1"))
    cmd += ["--server.fileWatcherType", "none"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            log.seek(0)
            pytest.fail(f"streamlit did not start:\n{log.read()[-3000:]}")
        time.sleep(0.5)
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture(scope="module")
def page(server, tmp_path_factory):
    """One Chromium tab (a fresh profile) on the served app."""
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing: install Debian's Chromium (apt-get install chromium); Playwright "
                    "cannot download its own browser here")
    playwright = pytest.importorskip("playwright.sync_api")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with playwright.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
                  "--no-first-run", "--disable-component-update", "--disable-sync"],
            viewport={"width": 1400, "height": 1500})
        context.set_default_timeout(WAIT_MS)
        tab = context.new_page()
        yield tab
        context.close()


def chart_title(page, key: str) -> str:
    """The title of the plotly figure under the element with this key, once it is drawn."""
    selector = f".st-key-{key} .js-plotly-plot"
    page.wait_for_function(f"() => document.querySelector('{selector}')?.layout?.title !== undefined")
    return page.evaluate(f"() => document.querySelector('{selector}').layout.title.text || ''")


def chart_text(page, key: str) -> str:
    """Everything the figure writes (title and subplot titles), to notice a change."""
    selector = f".st-key-{key} .js-plotly-plot"
    page.wait_for_function(f"() => document.querySelector('{selector}')?.layout !== undefined")
    return page.evaluate(f"""() => {{
        const l = document.querySelector('{selector}').layout;
        return [(l.title && l.title.text) || '', ...(l.annotations || []).map(a => a.text)].join(' | ');
    }}""")


def wait_for_chart(page, key: str, contains: str) -> str:
    """Wait until the figure under `key` writes `contains` (in its title or subplot titles); return its text."""
    selector = f".st-key-{key} .js-plotly-plot"
    page.wait_for_function(
        """([selector, contains]) => {
            const l = document.querySelector(selector)?.layout;
            if (!l) return false;
            return [(l.title && l.title.text) || '', ...(l.annotations || []).map(a => a.text)].join(' | ')
                .includes(contains);
        }""", arg=[selector, contains])
    return chart_text(page, key)


def settle(page) -> None:
    """Let the script run finish (Streamlit shows its status widget while running) and the charts draw."""
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')")
    page.wait_for_timeout(1500)


CONTENT_BOTTOM = """() => {
    const main = document.querySelector('[data-testid="stMain"]');
    const content = document.querySelector('[data-testid="stMainBlockContainer"]') || main;
    return Math.max(main ? main.scrollHeight : 0, content.getBoundingClientRect().bottom);
}"""


def screenshot(page, name: str) -> None:
    """The page down to the end of its content: Streamlit scrolls inside its own main container, so the window is
    made tall enough first (a full-page screenshot of the window alone would cut the content)."""
    page.set_viewport_size({"width": 1400, "height": min(int(page.evaluate(CONTENT_BOTTOM)) + 60, 4000)})
    page.wait_for_timeout(1500)  # plotly redraws at the new size
    bottom = page.evaluate("""() => document.querySelector('[data-testid="stMainBlockContainer"]')
                              ?.getBoundingClientRect().bottom""")
    clip = {"x": 0, "y": 0, "width": 1400, "height": min(int(bottom or 1500) + 20, 4000)}
    page.screenshot(path=str(SHOTS / name), clip=clip)
    page.set_viewport_size({"width": 1400, "height": 1500})


def assert_no_exception(page) -> None:
    boxes = page.locator("[data-testid='stException']")
    assert boxes.count() == 0, boxes.first.inner_text()


def test_a_deep_link_on_a_fresh_server_gets_the_apps_navigation(page, server):
    """Would catch: Streamlit's old pages/-folder mode taking over when the first visitor opens a page directly
    (the menu would list app.py and the page modules as pages instead of the app's four titles)."""
    page.goto(f"{server}/patterns")
    chart_text(page, "chart_patterns")
    nav = [line.strip() for line in page.inner_text("[data-testid='stSidebarNav']").split("\n") if line.strip()]
    assert nav == PAGE_TITLES
    assert_no_exception(page)


def test_patterns_page_reacts_to_its_length_slider(page, server):
    """Would catch: a slider whose change never reaches the figure in a real browser (keyed widgets, reruns)."""
    page.goto(f"{server}/patterns")
    before = chart_text(page, "chart_patterns")
    assert "4,096 pairs" in before  # n = 64
    slider = page.locator(".st-key-pattern_n input[type=range]")
    slider.focus()
    for _ in range(8):
        slider.press("ArrowRight")
    after = wait_for_chart(page, "chart_patterns", "5,184 pairs")  # n = 72
    assert after != before
    settle(page)
    assert_no_exception(page)
    screenshot(page, "patterns.png")


def test_a_pattern_runs_on_the_text_in_the_explorer(page, server):
    """Would catch: a pattern's "Run this on the text" button not switching to the explorer in a real browser, or
    arriving without its dilation; writes the screenshot of the explorer with a dilated window."""
    page.goto(f"{server}/patterns")
    chart_text(page, "chart_patterns")
    settle(page)
    page.locator(".st-key-run_pattern_dilated button").first.click()  # a rerun may briefly hold two
    wait_for_chart(page, "chart_matrix", "exact")
    assert page.locator(".st-key-dilation input").input_value() == "2"
    choose_view(page, "Band")
    wait_for_chart(page, "chart_band", "2·offset")
    settle(page)
    assert_no_exception(page)
    screenshot(page, "explorer_dilated.png")


def point_on(page, key: str, x: float, y: float, axes=("xaxis", "yaxis")) -> tuple[float, float]:
    """Where data point (x, y) of the figure under `key` lies on the screen, in pixels, after scrolling the figure
    into the middle of the window (Streamlit scrolls inside its own main container)."""
    return tuple(page.evaluate("""([sel, x, y, xa, ya]) => {
        const gd = document.querySelector(sel);
        gd.scrollIntoView({block: 'center'});
        const r = gd.getBoundingClientRect(), l = gd._fullLayout;
        return [r.left + l[xa]._offset + l[xa].l2p(x), r.top + l[ya]._offset + l[ya].l2p(y)];
    }""", [f".st-key-{key} .js-plotly-plot", x, y, *axes]))


def query_value(page) -> int:
    return int(page.locator(".st-key-query input").input_value().replace(",", ""))


def choose_view(page, view: str) -> None:
    page.locator(".st-key-view [data-testid='stRadioOption']", has_text=view).click()


def test_explorer_views_on_a_short_text(page, server):
    """Would catch: the explorer failing to draw a view in a browser, or a layer change not redrawing; writes a
    screenshot of every view (docs/screenshots/ holds copies)."""
    page.goto(server)
    title = chart_title(page, "chart_matrix")
    assert "exact" in title and "Layer 0" in title
    settle(page)
    assert_no_exception(page)
    screenshot(page, "explorer_matrix.png")

    layer = page.locator(".st-key-layer input[type=range]")
    layer.focus()
    layer.press("ArrowRight")
    wait_for_chart(page, "chart_matrix", "Layer 1")

    for view, key, shot in (("Band", "chart_band", "explorer_band.png"),
                            ("Token", "chart_row", "explorer_token.png"),
                            ("Layers × heads", "chart_stats", "explorer_heads.png"),
                            ("Compare", "chart_difference", "explorer_compare.png"),
                            ("Head view", "chart_headview", "explorer_headview.png")):
        choose_view(page, view)
        chart_text(page, key)
        settle(page)
        assert_no_exception(page)
        screenshot(page, shot)


def test_a_shared_link_restores_the_view(page, server):
    """Would catch: the URL's layer, head, query and view not restored in a real browser session."""
    page.goto(f"{server}/?view=Token&layer=2&head=3&query=15")
    assert "what 15 " in wait_for_chart(page, "chart_row", "Layer 2, head 3")
    assert query_value(page) == 15
    assert_no_exception(page)


def test_the_long_document_by_name(page, server):
    """Would catch, on the 4,096-token sample: hovers without token text, a box selection not redrawing its
    region exactly, a search that does not jump, and a click that does not change the query."""
    page.goto(server)
    chart_title(page, "chart_matrix")
    page.locator(".st-key-sample").click()
    page.get_by_role("option", name="Long document").click()
    long = wait_for_chart(page, "chart_matrix", "4096×4096")
    assert "block-max" in long
    page.get_by_text("lost its last").wait_for()  # the truncation warning
    settle(page)
    assert_no_exception(page)
    screenshot(page, "explorer_long.png")

    # a hover names the strongest pair of a downsampled cell, by its tokens
    x, y = point_on(page, "chart_matrix", 2010, 2010)
    page.mouse.move(x, y)
    hover = page.locator(".st-key-chart_matrix .hoverlayer .hovertext")
    hover.first.wait_for()
    text = hover.first.text_content()  # an SVG group: no inner_text
    assert "→" in text and "'" in text and "2,0" in text, text

    # a box on the overview redraws that region exactly, one cell per pair, with token labels
    # (a 400-token box, about 65 px: plotly takes a smaller drag for a click; the region keeps its middle 128)
    x0, y0 = point_on(page, "chart_matrix", 1800, 1800)
    x1, y1 = point_on(page, "chart_matrix", 2200, 2200)
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move(x1, y1, steps=8)
    page.mouse.up()
    region = wait_for_chart(page, "chart_region", "Queries 1,93")
    assert "exact (128 × 128)" in region
    settle(page)
    assert_no_exception(page)
    screenshot(page, "explorer_region.png")

    # the search box finds a word and makes it the query
    before = query_value(page)
    search = page.locator(".st-key-search input")
    search.fill("Rabbit-hole")
    search.press("Enter")
    page.wait_for_function(f"() => document.querySelector('.st-key-query input').value.replace(',', '') != '{before}'")
    found = query_value(page)
    settle(page)

    # the token view: what it attends to and what attends to it, by name; a click on a token changes the query
    choose_view(page, "Token")
    assert "rabbit" in wait_for_chart(page, "chart_column", "who attends to").lower()
    settle(page)
    screenshot(page, "explorer_token_long.png")
    lo = max(0, min(found - 48, 4096 - 128))
    target = lo + 16 * 2 + 3  # third line, fourth token of the grid
    x, y = point_on(page, "chart_tokens", 3, 2)
    page.mouse.click(x, y)
    page.wait_for_function(f"() => document.querySelector('.st-key-query input').value.replace(',', '') == "
                           f"'{target:,}'.replace(',', '')")
    settle(page)
    assert_no_exception(page)

    choose_view(page, "Layers × heads")
    chart_text(page, "chart_stats")
    settle(page)
    assert_no_exception(page)
    screenshot(page, "explorer_heads_long.png")


def test_scaling_page_measures_live(page, server):
    """Would catch: the measure button or its progress bar failing in a browser, or its figure not appearing."""
    page.goto(f"{server}/scaling")
    page.get_by_text("Measure on this machine").wait_for()
    slider = page.locator(".st-key-live_max_n input[type=range]")
    slider.focus()
    slider.press("Home")  # up to n = 512: seconds, not minutes
    page.wait_for_timeout(1000)
    page.locator(".st-key-measure button").click()
    text = chart_text(page, "chart_live")
    assert "Measured just now" in text
    settle(page)
    assert_no_exception(page)
    screenshot(page, "scaling.png")


def test_parity_page_passes(page, server):
    """Would catch: an implementation failing parity on the default model, or the page breaking on a new input."""
    page.goto(f"{server}/parity")
    before = chart_text(page, "chart_parity")
    assert "hidden state" in before
    settle(page)
    assert_no_exception(page)
    assert page.get_by_text("FAIL").count() == 0
    screenshot(page, "parity.png")
    page.locator(".st-key-parity_sample").click()
    page.get_by_role("option", name="Question + context").click()
    page.wait_for_timeout(500)
    settle(page)
    assert_no_exception(page)

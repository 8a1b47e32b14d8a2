"""End to end: the app served by `streamlit run` on a free localhost port, driven in Debian's Chromium (headless)
through Playwright. Each page is opened, its chart waited for, checked for an exception box, a control is used and
the chart must change; screenshots go to artifacts/screenshots/ (gitignored).

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


def test_explorer_views_and_the_long_document(page, server):
    """Would catch: the explorer failing to draw in a browser, a layer or view change not redrawing, and the
    4096-token document (truncated, downsampled) not rendering or raising."""
    page.goto(server)
    title = chart_title(page, "chart_matrix")
    assert "exact" in title and "Layer 0" in title
    assert_no_exception(page)
    screenshot(page, "explorer_short.png")

    layer = page.locator(".st-key-layer input[type=range]")
    layer.focus()
    layer.press("ArrowRight")
    wait_for_chart(page, "chart_matrix", "Layer 1")

    page.locator(".st-key-view [data-testid='stRadioOption']", has_text="Band").click()
    assert "own layout" in chart_title(page, "chart_band")
    settle(page)
    assert_no_exception(page)

    page.locator(".st-key-view [data-testid='stRadioOption']", has_text="Matrix").click()
    short = chart_text(page, "chart_matrix")
    page.locator(".st-key-sample").click()
    page.get_by_role("option", name="Long document").click()
    long = wait_for_chart(page, "chart_matrix", "4096×4096")
    assert "block-max" in long and long != short
    page.get_by_text("so the last").wait_for()  # the truncation warning
    settle(page)
    assert_no_exception(page)
    screenshot(page, "explorer_long.png")

    page.locator(".st-key-view [data-testid='stRadioOption']", has_text="Token").click()
    assert "what token" in chart_title(page, "chart_token")
    settle(page)
    assert_no_exception(page)
    screenshot(page, "explorer_token.png")


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

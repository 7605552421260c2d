"""A real headless Chromium loads every page of a running `lens serve`, fails on any error element, saves screenshots."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
import requests

from app import synth

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.xdist_group("browser")]

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# the README's pictures are refreshed with LENS_SCREENSHOT_DIR=docs/screenshots; a plain run leaves the tree clean
SCREENSHOT_DIR_ENV = "LENS_SCREENSHOT_DIR"
ERROR_SELECTORS = ('[data-testid="stException"]', '[data-testid="stAlertContentError"]')
ERROR_TEXTS = ("Page not found", "Traceback", "Error running app")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """`lens serve` on a free port over a synthetic DB; yields (base URL, a denied task id)."""
    from devnet.anvil import free_port

    if not Path(CHROMIUM).exists():
        pytest.fail(f"chromium not found at {CHROMIUM}: install Debian's chromium (.ci/run does)")
    tmp = tmp_path_factory.mktemp("browser")
    db = tmp / "lens.duckdb"
    synth.build(db, tasks=5000, seed=5)
    con = duckdb.connect(str(db), read_only=True)
    denied = con.execute(
        "SELECT task_id FROM tasks WHERE allow = false AND entrypoint = 'spending_limits.allow' "
        "ORDER BY created_block LIMIT 1"
    ).fetchone()[0]
    con.close()
    port = free_port()
    # the synthetic operators' hostnames are made up: never resolve them (no DNS query from a test)
    env = dict(os.environ, LENS_DEPLOYMENT_FILE=str(tmp / "none.json"), LENS_RESOLVE_HOSTNAMES="off")
    lens = str(Path(sys.executable).parent / "lens")
    proc = subprocess.Popen(
        [lens, "serve", "--db", str(db), "--port", str(port), "--address", "127.0.0.1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if requests.get(url + "/_stcore/health", timeout=1).text.strip() == "ok":
                break
        except requests.RequestException:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"lens serve did not come up: {proc.stdout.read()[-2000:]}")
        time.sleep(0.3)
    yield url, denied
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()


def _render(page, url: str, heading: str) -> None:
    """Open a URL and wait until the script finished and the page's heading is on screen."""
    page.goto(url, wait_until="domcontentloaded")
    page.get_by_role("heading", name=heading, exact=True).first.wait_for(timeout=60_000)
    page.wait_for_selector('[data-test-script-state="notRunning"]', timeout=60_000)
    if page.locator('[data-testid="stPlotlyChart"]').count():
        page.locator('[data-testid="stPlotlyChart"] .main-svg').first.wait_for(timeout=30_000)
    if page.locator('[data-testid="stDataFrame"]').count():
        page.locator('[data-testid="stDataFrame"] canvas').first.wait_for(timeout=30_000)
    page.wait_for_timeout(3000)  # let charts and tables finish painting before the screenshot


def test_every_page_renders_without_errors(served, tmp_path):
    """Every page, in light and dark, renders its heading, the sidebar and no error element; screenshots are saved."""
    from playwright.sync_api import sync_playwright

    url, denied = served
    shots = Path(os.environ.get(SCREENSHOT_DIR_ENV) or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    # the deep link comes first: the server's very first session must still get the app's navigation and sidebar
    pages = [
        ("verdict", f"{url}/verdict?task={denied}", "Verdict"),
        ("overview", f"{url}/", "Overview"),
        ("decisions", f"{url}/decisions?verdict=denied", "Decisions"),
        ("policies", f"{url}/policies", "Policies"),
        # a shared what-if link: it runs on opening (500 ETH per transaction for every spending_limits client)
        ("whatif", f"{url}/whatif?policy=spending_limits&p.max_tx_wei=500000000000000000000&run=1", "What-if"),
        ("governance", f"{url}/governance", "Governance"),
        ("disputes", f"{url}/disputes", "Disputes"),
        ("operators", f"{url}/operators", "Operators"),
        ("diversity", f"{url}/diversity", "Diversity"),
    ]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            for theme in ("light", "dark"):
                context = browser.new_context(viewport={"width": 1400, "height": 1300}, color_scheme=theme)
                page = context.new_page()
                console_errors: list[str] = []
                page.on("pageerror", lambda exc, errors=console_errors: errors.append(str(exc)))
                for name, link, heading in pages:
                    _render(page, link, heading)
                    for selector in ERROR_SELECTORS:
                        found = page.locator(selector)
                        assert found.count() == 0, f"{name} ({theme}) shows an error: {found.first.inner_text()[:500]}"
                    for text in ERROR_TEXTS:
                        assert page.get_by_text(text).count() == 0, f"{name} ({theme}) shows {text!r}"
                    assert page.get_by_text("NEWTON LENS").count() == 1, f"{name} ({theme}): shared sidebar missing"
                    assert page.get_by_text("streamlit app").count() == 0, f"{name} ({theme}): legacy pages/ navigation"
                    if name == "verdict":
                        assert (
                            page.get_by_text("exceeds_per_tx_limit").count()
                            + page.get_by_text("exceeds_daily_cap").count()
                            + page.get_by_text("function_not_allowed").count()
                            > 0
                        )
                    if name == "whatif":
                        assert page.get_by_text("Allowed → denied").count() > 0, "what-if: no flips shown"
                        assert page.get_by_text("baseline reproduces").count() > 0
                    page.screenshot(path=str(shots / f"{name}{'' if theme == 'light' else '-dark'}.png"))
                assert not console_errors, console_errors
                context.close()
        finally:
            browser.close()
    assert (shots / "verdict.png").stat().st_size > 10_000

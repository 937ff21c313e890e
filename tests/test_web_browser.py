"""The browser control surface in a real headless browser: Debian's chromium, driven by
Playwright (never a browser of Playwright's own), against a real ``qbdi serve --web``
checked over real UDP OSC.

Screenshots of the page (a phone and a desktop) are kept in the test's temporary folder
and, when ``QBDI_ARTIFACTS`` names a folder, copied there.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from pathlib import Path

import pytest
from pythonosc.osc_message import OscMessage

from qbdi.server.web.messages import knob_bits
from tests.web_rig import osc_client, serve

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2,
         "is_mobile": True, "has_touch": True}

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).is_file(),
                                reason="chromium is not installed (apt-get install chromium)")


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def feedback_socket():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    yield sock
    sock.close()


@pytest.fixture(scope="module")
def served(feedback_socket):
    port = feedback_socket.getsockname()[1]
    with serve("--web", "0", "--preset", "free", "--bpm", "240",
               "--feedback", f"127.0.0.1:{port}") as served:
        yield served


def _open(browser, served, **context):
    page = browser.new_context(**context).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.goto(served.web_url)
    page.wait_for_selector("#link.on", timeout=10_000)
    _until(lambda: page.text_content("#bits-value") != "\u2013")  # a value came
    return page, errors


def _until(check, timeout_s: float = 10.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError("timed out")


def _fed_back(sock: socket.socket, address: str) -> list[list]:
    seen = []
    try:
        while True:
            message = OscMessage(sock.recvfrom(65_535)[0])
            if message.address == address:
                seen.append(list(message.params))
    except TimeoutError:
        return seen


def test_the_page_is_refused_without_its_token(browser, served):
    page = browser.new_page()
    assert page.goto(served.web_base + "/").status == 403
    assert page.goto(served.web_url).status == 200
    page.close()


def test_turning_the_knob_changes_the_budget_and_feedback_comes_back(
        browser, served, feedback_socket):
    page, errors = _open(browser, served)
    with osc_client(served.osc_port) as client:
        before = client.value("/qbdi/bits")
        assert page.text_content("#bits-value") == str(before[0])
        _fed_back(feedback_socket, "/qbdi/bits")  # forget what came before
        knob = page.locator("#knob").bounding_box()
        x, y = knob["x"] + knob["width"] / 2, knob["y"] + knob["height"] / 2
        page.mouse.move(x, y)
        page.mouse.down()
        page.mouse.move(x, y - 60, steps=12)
        page.mouse.up()  # the knob shows where the hand left it; that value is sent last
        shown = page.text_content("#bits-value")
        assert shown != str(before[0]) and 0 < int(shown) <= 1024
        now = _until(lambda: (v := client.value("/qbdi/bits")) == [int(shown)] and v)
        time.sleep(0.3)  # the server's own reply arrives, and must not move the knob
        assert page.text_content("#bits-value") == shown
        # The page's change reaches the OSC feedback target, as any change does.
        assert [now[0]] in _fed_back(feedback_socket, "/qbdi/bits")
        # An OSC peer's change reaches the page.
        client.send("/qbdi/bits", 77)
        _until(lambda: page.text_content("#bits-value") == "77")
        # 77 lies between two steps of the knob's scale: it points at the lower one
        steps = knob_bits()
        below = max(i for i, step in enumerate(steps) if step != "full" and step <= 77)
        assert page.get_attribute("#knob", "aria-valuenow") == str(below)
    assert not errors


def test_a_refused_value_shows_its_reason_and_changes_nothing(browser, served):
    page, errors = _open(browser, served)
    page.fill("#tempo", "5000")
    page.click("#tempo-form button")
    _until(lambda: page.text_content("#message").startswith("refused: /qbdi/bpm"))
    assert "960" in page.text_content("#message")  # the reason names the bound
    assert page.get_attribute("#message", "class") == "bad"
    with osc_client(served.osc_port) as client:
        assert client.value("/qbdi/bpm") == [240.0]
    assert not errors


def _drawn(page, canvas: str) -> int:
    """How many pixels of ``canvas`` the page has drawn on."""
    return page.evaluate("""(id) => {  // a function: the page's CSP forbids eval
        const c = document.getElementById(id);
        const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 3; i < data.length; i += 4) if (data[i]) n++;
        return n;
    }""", canvas)


def test_on_a_phone_with_the_live_ir_and_a_screenshot(browser, served, tmp_path):
    page, errors = _open(browser, served, **PHONE)
    with osc_client(served.osc_port) as client:
        page.tap("#bits-full")
        _until(lambda: client.value("/qbdi/bits") == ["full"])
        _until(lambda: page.text_content("#bits-value") == "full")
        page.tap("#ir-enable")
        _until(lambda: client.value("/qbdi/ir/enable") == [1])
        # Free mode answers every bar: the piano roll and the IR plot fill in.
        _until(lambda: page.text_content("#bar").isdigit())
        _until(lambda: _drawn(page, "roll") > 500 and _drawn(page, "ir-plot") > 500,
               timeout_s=20)
        client.send("/qbdi/ir/enable", 0)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390  # nothing wider than the phone's screen
    shots = [tmp_path / "web-surface-phone.png", tmp_path / "web-surface-phone-full.png",
             tmp_path / "web-surface-desktop.png"]
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=shots[0])
    page.screenshot(path=shots[1], full_page=True)
    desktop, _ = _open(browser, served, viewport={"width": 1280, "height": 1100})
    _until(lambda: _drawn(desktop, "roll") > 500)
    desktop.screenshot(path=shots[2])  # the whole page fits; no fixed footer over it
    for shot in shots:
        assert shot.stat().st_size > 10_000
    if os.environ.get("QBDI_ARTIFACTS"):
        folder = Path(os.environ["QBDI_ARTIFACTS"])
        folder.mkdir(parents=True, exist_ok=True)
        for shot in shots:
            shutil.copy(shot, folder / shot.name)
    assert not errors


def test_the_page_reads_a_bars_notes_as_the_server_does(browser, served):
    """The piano roll's notes, decoded in the page from the server's bit masks, are
    exactly :func:`qbdi.bars.bars_to_notes` of the bar."""
    import numpy as np

    from qbdi.bars import bars_to_notes
    from qbdi.server.web.messages import bar_rows

    page, _ = _open(browser, served)
    rng = np.random.default_rng(5)
    for density in (0.02, 0.1, 0.4):
        bar = rng.random((16, 2, 78)) < density
        expected = [[n.pitch, n.start_step, n.end_step - n.start_step]
                    for n in bars_to_notes(bar)]
        got = page.evaluate("(rows) => window.qbdiRowsToNotes(rows)", bar_rows(bar))
        assert sorted(got) == sorted(expected)


def test_the_models_and_presets_come_from_the_server(browser, served):
    from qbdi.models.checkpoint import shipped_models
    from qbdi.presets import list_presets

    page, errors = _open(browser, served)
    assert page.locator("#presets button").all_text_contents() == list_presets()
    assert page.locator("#models button").all_text_contents() == list(shipped_models())
    with osc_client(served.osc_port) as client:
        (model,) = client.value("/qbdi/model")
    _until(lambda: page.locator("#models button.on").all_text_contents() == [model])
    assert page.is_visible("#model-box")
    assert not errors

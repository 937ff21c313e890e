"""The browser surface's server side without a browser: the edge checks, the hand-over from
the loop, and a real ``qbdi serve --web`` over real HTTP and WebSocket connections (token,
Origin, Host, rate limits, replies through the OSC control path)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
import urllib.error
import urllib.request
from importlib import resources

import pytest
from websockets.exceptions import ConnectionClosedError, InvalidStatus
from websockets.sync.client import connect

from qbdi.improviser import Improviser
from qbdi.models.checkpoint import load_checkpoint
from qbdi.presets import load_preset
from qbdi.server import osc
from qbdi.server.clocks import ManualClock
from qbdi.server.feedback import MemoryFeedback
from qbdi.server.ports import MemoryPorts
from qbdi.server.session import Server
from qbdi.server.web.gate import BoundedLog, Gate, is_ip_or_localhost
from qbdi.server.web.hub import WebFeedback, WebHub
from qbdi.server.web.messages import Refused, parse_command
from tests.web_rig import osc_client, serve

PAGE = ("127.0.0.1", 9001)


# -- the edge ------------------------------------------------------------------------------
@pytest.mark.parametrize("text, reason", [
    ("not json", "not JSON"),
    ('["/qbdi/bits", 1]', "expects"),
    ('{"osc": "/qbdi/bits", "args": [1], "x": 1}', "expects"),
    ('{"osc": "qbdi/bits", "args": []}', "starting with /"),
    ('{"osc": "/' + "a" * 70 + '", "args": []}', "longer than 64"),
    ('{"osc": "/qbdi/bits", "args": [1, 2, 3, 4, 5]}', "at most 4"),
    ('{"osc": "/qbdi/bits", "args": [NaN]}', "NaN is not a value"),
    ('{"osc": "/qbdi/bits", "args": [1e999]}', "not finite"),
    ('{"osc": "/qbdi/bits", "args": [' + "9" * 30 + ']}', "too large"),
    ('{"osc": "/qbdi/bits", "args": [null]}', "null"),
    ('{"osc": "/qbdi/bits", "args": [[1]]}', "type list"),
    ('{"osc": "/qbdi/preset", "args": ["' + "x" * 65 + '"]}', "longer than 64"),
])
def test_a_page_command_of_the_wrong_shape_is_refused_with_the_reason(text, reason):
    with pytest.raises(Refused, match=reason):
        parse_command(text)


def test_a_page_command_becomes_an_osc_message():
    assert parse_command('{"osc": "/qbdi/bits", "args": ["full"]}') == ("/qbdi/bits", ["full"])
    assert parse_command('{"osc": "/qbdi/panic"}') == ("/qbdi/panic", [])
    with pytest.raises(Refused, match="binary"):
        parse_command(b'{"osc": "/qbdi/panic"}')


def test_the_gate_refuses_foreign_hosts_origins_tokens_and_senders():
    log = BoundedLog()
    gate = Gate("127.0.0.1", (), 1000.0, log)
    assert gate.host("127.0.0.1:8800") is None and gate.host("localhost:8800") is None
    assert gate.host("[::1]:8800") is None
    assert gate.host("evil.example:8800") == "refused_host"  # DNS rebinding
    assert gate.host(None) == "refused_host"
    assert gate.origin("http://127.0.0.1:8800", "127.0.0.1:8800") is None
    assert gate.origin("http://evil.example", "127.0.0.1:8800") == "refused_origin"
    assert gate.origin(None, "127.0.0.1:8800") == "refused_origin"
    assert gate.token("abc", "abc") is None and gate.token("abd", "abc") == "refused_token"
    assert gate.sender("127.0.0.1") is None and gate.sender("10.0.0.7") == "refused_sender"
    lan = Gate("0.0.0.0", ("10.0.0.7",), 1000.0, log)
    assert lan.sender("10.0.0.7") is None and lan.sender("10.0.0.8") == "refused_sender"
    assert log.counts == {"refused_host": 2, "refused_origin": 2, "refused_token": 1,
                          "refused_sender": 2}
    assert not is_ip_or_localhost("127.0.0.1.evil.example")


def test_the_gate_limits_the_request_rate():
    gate = Gate("127.0.0.1", (), 5.0, BoundedLog())
    assert [gate.rate() for _ in range(7)].count("rate_limited") == 2


# -- the hand-over from the loop -----------------------------------------------------------
def test_the_hub_never_waits_and_counts_what_the_web_thread_missed():
    hub = WebHub(max_pending=16)
    for i in range(40):
        hub.publish(("osc", "/x", [i], None))  # no web thread attached: nothing drains
    assert hub.dropped == 24 and hub.published == 40

    loop = asyncio.new_event_loop()
    got: list = []
    done = threading.Event()
    hub = WebHub()
    hub.attach(loop, lambda events: (got.extend(events), len(got) >= 500 and done.set()))
    thread = threading.Thread(target=loop.run_forever)
    thread.start()
    for i in range(500):
        hub.publish(("osc", "/x", [i], None))
    assert done.wait(5)
    assert [event[2][0] for event in got] == list(range(500))  # in order, each once
    loop.call_soon_threadsafe(loop.stop)
    thread.join()
    loop.close()
    hub.publish(("osc", "/x", [0], None))  # the web loop is gone: no error, no wait


def test_a_page_is_answered_through_the_osc_control_path(tiny_checkpoint):
    """A page's command posts into the loop's inbox like OSC; the value in use and any
    refusal go back to that page, and the OSC feedback target hears the change too."""
    osc_feedback, hub = MemoryFeedback(), WebHub()
    server = Server(MemoryPorts(), ManualClock(), Improviser.from_checkpoint(
        load_checkpoint(tiny_checkpoint)), load_preset("default"),
        feedback=WebFeedback(osc_feedback, hub))
    page = ("web", 3)
    server.post_osc("/qbdi/bits", [64], page)
    server.post_osc("/qbdi/bpm", [5000.0], page)
    server.post_osc("/qbdi/mode", ["free"], PAGE)  # an OSC peer's change
    server.step()
    server.shutdown()
    events = []
    hub.attach(asyncio.new_event_loop(), events.extend)
    hub._drain()
    assert ("osc", "/qbdi/bits", [64], page) in events
    errors = [e for e in events if e[1] == osc.ERROR]
    assert len(errors) == 1 and errors[0][3] == page and "/qbdi/bpm" in errors[0][2][0]
    assert ("osc", "/qbdi/mode", ["free"], None) in events  # every page sees it
    assert ("/qbdi/bits", [64], None) in osc_feedback.sent  # never to a "web" address
    assert ("/qbdi/mode", ["free"], PAGE) in osc_feedback.sent
    assert server.state.improviser.budget_bits == 64 and server.state.tempo_bpm != 5000.0


# -- a real server -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def served():
    with serve("--web", "0", "--oscquery") as served:
        yield served


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes, dict]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, reply.read(), dict(reply.headers)
    except urllib.error.HTTPError as err:
        return err.code, err.read(), dict(err.headers)


def test_every_request_needs_the_token(served):
    assert _get(served.web_url)[0] == 200
    assert _get(served.web_url + "app.js")[0] == 200
    base = served.web_base
    for path in ("/", "/app.js", "/favicon.ico", "/ws", f"/{served.token[:-1]}x/",
                 f"/../{served.token}/"):
        assert _get(base + path)[0] == 403, path
    assert _get(served.web_url + "nothing")[0] == 404
    status, _, headers = _get(base + f"/{served.token}")
    assert status == 200  # followed the redirect to the slash
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    assert _get(served.web_url, {"Host": "evil.example:8800"})[0] == 403


def test_the_page_fetches_nothing_from_elsewhere():
    folder = resources.files("qbdi.server.web") / "static"
    for name in ("index.html", "app.js", "style.css"):
        text = (folder / name).read_text()
        assert "http://" not in text and "https://" not in text and "//cdn" not in text, name


def _ws_url(served) -> str:
    return served.web_url.replace("http://", "ws://") + "ws"


def _refused_status(url: str, origin: str | None) -> int:
    with pytest.raises(InvalidStatus) as refused:
        connect(url, origin=origin, open_timeout=5)
    return refused.value.response.status_code


def test_a_websocket_from_another_origin_or_without_the_token_is_refused(served):
    url = _ws_url(served)
    assert _refused_status(url, "http://evil.example") == 403
    assert _refused_status(url, None) == 403
    assert _refused_status(url.replace(served.token, "x" * len(served.token)),
                           served.web_base) == 403
    with osc_client(served.osc_port) as client:
        status = client.status()
    assert status["web_refused_origin"] >= 2 and status["web_refused_token"] >= 1


def _messages(ws, until, timeout_s: float = 5.0) -> list[dict]:
    seen, deadline = [], time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        seen.append(json.loads(ws.recv(timeout=deadline - time.monotonic())))
        if until(seen[-1]):
            return seen
    raise AssertionError(f"never came; saw {seen[-5:]}")


def test_a_page_gets_the_table_and_its_replies(served):
    with connect(_ws_url(served), origin=served.web_base, open_timeout=5) as ws:
        hello = json.loads(ws.recv(timeout=5))
        assert hello["type"] == "hello"
        assert [c["address"] for c in hello["controls"]] == [r.address for r in osc.TABLE]
        assert hello["knob_bits"][0] == 0 and hello["knob_bits"][-1] == "full"
        ws.send('{"osc": "/qbdi/bits", "args": [96]}')
        _messages(ws, lambda m: m.get("address") == "/qbdi/bits" and m.get("reply")
                  and m["args"] == [96])
        ws.send('{"osc": "/qbdi/threshold", "args": [1.5]}')
        error = _messages(ws, lambda m: m.get("address") == osc.ERROR)[-1]
        assert error["reply"] and "/qbdi/threshold" in error["args"][0]
        ws.send("{oops")
        assert _messages(ws, lambda m: m["type"] == "refused")[-1]["reason"] == "not JSON"
    with osc_client(served.osc_port) as client:
        assert client.value("/qbdi/bits") == [96]


def _web_counts(served) -> tuple[int, int]:
    with osc_client(served.osc_port) as client:
        status = client.status()
    return status.get("web_commands", 0), status.get("web_rate_limited_commands", 0)


def _drain(ws, wait_s: float = 0.05) -> None:
    with contextlib.suppress(TimeoutError):
        while True:
            ws.recv(timeout=wait_s)


def test_a_flood_of_commands_is_limited_and_counted(served):
    """200 commands at once: one second's worth (40) pass, then 40 a second more.

    The counters are the server's, shared by the module's pages, so the test takes their
    change; and it waits until all 200 are handled, because the web thread may still be
    working through them when the page has its first refusal.
    """
    sent = 200
    before = _web_counts(served)
    start_s = time.monotonic()
    with connect(_ws_url(served), origin=served.web_base, open_timeout=5) as ws:
        for _ in range(sent):
            ws.send('{"osc": "/qbdi/seed", "args": [1]}')
        _messages(ws, lambda m: m["type"] == "refused"
                  and "too many" in m["reason"])
        deadline_s = time.monotonic() + 10.0
        while True:
            after = _web_counts(served)
            passed, limited = (a - b for a, b in zip(after, before, strict=True))
            if passed + limited >= sent or time.monotonic() > deadline_s:
                break
            _drain(ws)  # an unread page stalls the close handshake
        _drain(ws)
    elapsed_s = time.monotonic() - start_s
    assert passed + limited == sent
    # The bucket holds 40 and refills 40 a second over however long the flood took here.
    assert passed >= 40
    assert passed <= 40 + 40 * elapsed_s + 1
    assert limited >= 1


def test_a_message_over_the_size_limit_closes_the_page(served):
    with connect(_ws_url(served), origin=served.web_base, open_timeout=5) as ws:
        ws.send('{"osc": "/qbdi/preset", "args": ["' + "x" * 5000 + '"]}')
        with pytest.raises(ConnectionClosedError) as closed:
            while True:
                ws.recv(timeout=5)
    assert closed.value.rcvd.code == 1009  # message too big


def test_the_piano_roll_gets_each_pitchs_steps_as_bit_masks():
    from qbdi.bars import Note, notes_to_bars
    from qbdi.server.web.messages import bar_message

    played = notes_to_bars([Note(0, 60, 4, 90), Note(4, 64, 5, 90), Note(8, 67, 16, 90)], 1)[0]
    answer = notes_to_bars([Note(2, 48, 10, 80)], 1)[0]
    assert bar_message(7, played, answer) == {
        "type": "bar", "bar": 7, "answered": True,
        "input": [[60, 0b1111, 0b1], [64, 0b10000, 0b10000],
                  [67, 0xFF00, 0x100]],
        "answer": [[48, 0b1111111100, 0b100]]}
    assert bar_message(8, played, None)["answer"] == []

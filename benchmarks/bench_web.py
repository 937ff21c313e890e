"""Benchmark what the browser surface costs the loop: per-bar compute and output timing
through JACK with a browser page open (live IR on) against no web surface at all, and the
hand-over's cost on the loop thread.

    python benchmarks/bench_web.py [--model PATH] [--seconds 12] [--runs 2]

* hand-over: microseconds the loop thread spends per published message
  (:class:`WebFeedback.send` with a web thread draining) and per answered bar
  (:class:`WebListener.answered`, which copies the two bars); and the web thread's work
  for a dense bar (141 notes a side) for the piano roll, which holds the GIL the loop
  thread needs;
* serve: ``qbdi serve --backend jack`` with the ``default`` preset (query mode, so every
  bar is really computed) and the live IR feed on in every condition (the page turns it
  on, so the comparison must not) at 120 BPM, a real query played into "qbdi in" for ``seconds``;
  compute is every ``/qbdi/bar`` report's compute_ms (sent to a ``--feedback`` socket),
  timing is the note-ons on "qbdi out" against the sixteenth grid fitted to the stream, as
  in bench_server.py. Three conditions alternate, ``runs`` times each: no ``--web``;
  ``--web`` with a page's WebSocket read by another process (the server's whole cost, as
  with a phone on the LAN); ``--web`` with headless chromium showing the page (IR plot,
  piano roll, knob) on this machine, which also takes CPU from the server.

A private JACK dummy-driver server (period 2.67 ms) is started for each run. Needs chromium
(``apt-get install chromium``) and the ``playwright`` package. Numbers only, no asserts.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # as bench_server.py: one core for the loop's BLAS

import argparse  # noqa: E402
import asyncio  # noqa: E402
import contextlib  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from bench_server import QUERIES, start_serve, stop_serve  # noqa: E402

from qbdi.midifile import read_midi  # noqa: E402
from qbdi.models.checkpoint import default_checkpoint_path  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
QUERY = QUERIES / "prokofiev-visions-fugitives-vf_no1.mid"
STEP_S = 60.0 / 120.0 / 4
CLIENTS = {"none": "no --web", "websocket": "--web, a page's WebSocket in another process",
           "browser": "--web, chromium showing the page on this machine"}


def bench_hand_over(n: int = 20_000) -> dict[str, float]:
    """Loop-thread cost of publishing, with a real web thread draining the hub."""
    from qbdi.bars import BAR_SHAPE
    from qbdi.server.events import AnsweredBar, BarReport
    from qbdi.server.feedback import MemoryFeedback
    from qbdi.server.web.hub import WebFeedback, WebHub, WebListener
    from qbdi.server.web.messages import bar_message, encode
    from qbdi.settings import Preset

    hub, loop = WebHub(), asyncio.new_event_loop()
    hub.attach(loop, lambda events: None)
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    feedback = WebFeedback(MemoryFeedback(), hub)
    send_s = []
    for i in range(n):
        start_s = time.perf_counter()
        feedback.send("/qbdi/bar", [i, 0.3, 40, 5, 7])
        send_s.append(time.perf_counter() - start_s)
        feedback.osc.sent.clear()
    bar = np.zeros(BAR_SHAPE, dtype=bool)
    report = BarReport(0, 0.3, 40, 5, 7, False, 0, 120.0, "query", 256)
    answered, listener = AnsweredBar(report, bar, bar, 16.0, Preset()), WebListener(hub)
    bar_s = []
    for _ in range(n // 10):
        start_s = time.perf_counter()
        listener.answered(answered)
        bar_s.append(time.perf_counter() - start_s)
    loop.call_soon_threadsafe(loop.stop)
    thread.join()
    dense = np.random.default_rng(0).random(BAR_SHAPE) < 0.06
    web_s = []
    for _ in range(n // 10):
        start_s = time.perf_counter()
        encode(bar_message(0, dense, dense))
        web_s.append(time.perf_counter() - start_s)
    web_us = np.array(web_s) * 1e6
    us = np.array(send_s) * 1e6
    bar_us = np.array(bar_s) * 1e6
    return {"send_p50_us": float(np.median(us)), "send_p99_us": float(np.percentile(us, 99)),
            "bar_p50_us": float(np.median(bar_us)),
            "bar_p99_us": float(np.percentile(bar_us, 99)),
            "web_bar_p50_us": float(np.median(web_us)),
            "web_bar_p99_us": float(np.percentile(web_us, 99))}


def _feedback_reader(sock: socket.socket, compute_ms: list[float], stop: threading.Event):
    from pythonosc.osc_message import OscMessage

    sock.settimeout(0.2)
    while not stop.is_set():
        try:
            message = OscMessage(sock.recvfrom(65_535)[0])
        except (TimeoutError, OSError):
            continue
        if message.address == "/qbdi/bar":
            compute_ms.append(float(message.params[1]))


# A page without a browser: another process that turns the live IR on and reads everything.
WS_READER = """
import sys
from websockets.sync.client import connect
url = sys.argv[1]
with connect(url.replace("http://", "ws://") + "ws", origin="/".join(url.split("/")[:3])) as ws:
    ws.send('{"osc": "/qbdi/ir/enable", "args": [1]}')
    while True:
        ws.recv()
"""


@contextlib.contextmanager
def _client_on(url: str | None, client: str):
    if url is None:
        yield
        return
    if client == "websocket":
        reader = subprocess.Popen([sys.executable, "-c", WS_READER, url])
        try:
            yield
        finally:
            reader.kill()
            reader.wait()
        return
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        page = browser.new_page()
        page.goto(url)
        page.wait_for_selector("#link.on", timeout=15_000)
        page.click("#ir-enable")
        try:
            yield
        finally:
            browser.close()


def _play(seconds: float) -> list[float]:
    """Play the query into "qbdi in"; the times of note-ons heard on "qbdi out"."""
    import mido

    from qbdi.server.backends import resolve_port

    rt = mido.Backend("mido.backends.rtmidi/UNIX_JACK", load=True)
    times_s: list[float] = []
    listener = rt.open_input(
        resolve_port("qbdi out", rt.get_input_names(), "input"),
        callback=lambda m: times_s.append(time.perf_counter()) if m.type == "note_on"
        and m.velocity else None)
    player = rt.open_output(resolve_port("qbdi in", rt.get_output_names(), "output"))
    time.sleep(0.3)
    notes = read_midi(QUERY).notes
    events = sorted([(n.start_step, 1, n.pitch) for n in notes] +
                    [(n.end_step, 0, n.pitch) for n in notes])
    t0_s = time.perf_counter()
    for step, kind, pitch in events:
        if step * STEP_S > seconds:
            break
        while time.perf_counter() < t0_s + step * STEP_S:
            time.sleep(0.0005)
        player.send(mido.Message("note_on" if kind else "note_off", note=pitch, velocity=90))
    time.sleep(2 * 16 * STEP_S)
    listener.close()
    player.close()
    return times_s


def _ir_preset() -> Path:
    """The default preset with the live IR feed on."""
    from qbdi.presets import preset_path

    text = preset_path("default").read_text()
    path = Path(tempfile.mkdtemp(prefix="qbdi-bench-web-")) / "default-ir.toml"
    path.write_text(text.replace("[live_ir]\nenabled = false", "[live_ir]\nenabled = true"))
    assert "enabled = true" in path.read_text()
    return path


def bench_serve(model: Path | None, seconds: float, client: str) -> dict[str, float]:
    """One run; ``client``: "none" (no --web), "websocket" or "browser"."""
    web = client != "none"
    feedback = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    feedback.bind(("127.0.0.1", 0))
    compute_ms: list[float] = []
    stop = threading.Event()
    reader = threading.Thread(target=_feedback_reader, args=(feedback, compute_ms, stop))
    reader.start()
    args = ("--bpm", "120", "--feedback", f"127.0.0.1:{feedback.getsockname()[1]}",
            *(("--web", "0") if web else ()))
    process, _ = start_serve(model or default_checkpoint_path(), _ir_preset(), args)
    try:
        url = process.stdout.readline().split("web: ")[1].split()[0] if web else None
        with _client_on(url, client):
            times_s = _play(seconds)
    finally:
        stop_serve(process)
        stop.set()
        reader.join()
        feedback.close()
    t = np.array(times_s)
    phase = (t - t[0]) / STEP_S
    error_s = (phase - np.round(phase)) * STEP_S
    error_ms = np.abs(error_s - np.median(error_s)) * 1e3
    ms = np.array(compute_ms[1:])  # the first bar warms caches
    return {"bars": float(len(ms)), "compute_p50_ms": float(np.median(ms)),
            "compute_p99_ms": float(np.percentile(ms, 99)), "compute_max_ms": float(ms.max()),
            "notes": float(len(t)), "timing_p50_ms": float(np.median(error_ms)),
            "timing_p99_ms": float(np.percentile(error_ms, 99)),
            "timing_max_ms": float(error_ms.max())}


@contextlib.contextmanager
def private_jack(run: str):
    name = f"qbdi-bench-web-{os.getpid()}-{run}"
    os.environ["JACK_DEFAULT_SERVER"] = name
    process = subprocess.Popen(["jackd", "-n", name, "--no-realtime", "-d", "dummy", "-r",
                                "48000", "-p", "128"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    for _ in range(100):
        if subprocess.run(["jack_lsp"], capture_output=True).returncode == 0:
            break
        time.sleep(0.1)
    try:
        yield
    finally:
        process.terminate()
        process.wait(timeout=10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--hand-over-only", action="store_true",
                        help="only the hand-over figures (no JACK, no browser)")
    args = parser.parse_args()
    hand_over = bench_hand_over()
    if args.hand_over_only:
        args.runs = 0
    print("| measure | p50 | p99 | max |")
    print("|---|---|---|---|")
    print(f"| hand-over on the loop thread, per message (µs) | {hand_over['send_p50_us']:.2f} "
          f"| {hand_over['send_p99_us']:.2f} | |")
    print(f"| hand-over on the loop thread, per answered bar (µs) | "
          f"{hand_over['bar_p50_us']:.2f} | {hand_over['bar_p99_us']:.2f} | |")
    print(f"| web thread, a dense bar for the piano roll (µs) | "
          f"{hand_over['web_bar_p50_us']:.1f} | {hand_over['web_bar_p99_us']:.1f} | |")
    for run in range(args.runs):
        for client in CLIENTS:
            label = CLIENTS[client]
            try:
                with private_jack(f"{run}-{client}"):  # a fresh server for every run
                    r = bench_serve(args.model, args.seconds, client)
            except (RuntimeError, OSError) as err:  # e.g. the JACK server went away
                print(f"| run {run + 1}, {label}: not measured: {err} | | | |", flush=True)
                continue
            print(f"| run {run + 1}, {label}: per-bar compute (ms; {r['bars']:.0f} bars) | "
                  f"{r['compute_p50_ms']:.3f} | {r['compute_p99_ms']:.3f} | "
                  f"{r['compute_max_ms']:.3f} |")
            print(f"| run {run + 1}, {label}: output timing vs grid (ms; "
                  f"{r['notes']:.0f} notes) | {r['timing_p50_ms']:.3f} | "
                  f"{r['timing_p99_ms']:.3f} | {r['timing_max_ms']:.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

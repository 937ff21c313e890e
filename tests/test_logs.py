"""Output that never makes its caller wait, and bounded logs of untrusted input (issue 12.1
and 12.2), exactly: writers on a pipe that is full, and bounded logs under a manual clock
and under a flood of 100,000 bad datagrams handed to the real OSC transport and control."""

from __future__ import annotations

import logging
import os
import threading

import pytest
from serve_rig import blocked_pipe

from qbdi.improviser import Improviser
from qbdi.models.checkpoint import load_checkpoint
from qbdi.presets import load_preset
from qbdi.server.bounded_log import BoundedLog
from qbdi.server.clocks import ManualClock
from qbdi.server.feedback import MemoryFeedback
from qbdi.server.logs import LineWriter, QueueLogHandler
from qbdi.server.osc_transport import OscTransport, encode
from qbdi.server.ports import MemoryPorts
from qbdi.server.session import Server


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def records():
    handler = Records()
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    try:
        yield handler.records
    finally:
        root.handlers[:] = saved
        root.setLevel(level)


def test_a_writer_on_a_full_pipe_drops_and_counts_and_never_waits():
    read_fd, write_fd = blocked_pipe()
    writer = LineWriter(write_fd, "test-writer", capacity=10)
    os.close(write_fd)  # the writer has its own duplicate
    for i in range(1000):
        writer.put(f"line {i}")  # would hang here if a put waited for the stream
    # One line is in the writer's hands (blocked in write), ten wait in the queue.
    assert writer.dropped in (989, 990)
    assert writer.close(timeout_s=0.2) is False  # still blocked: close gives up, returns
    os.read(read_fd, 65_536)  # the reader wakes up: what was queued gets out, and a count
    data = b""
    while chunk := os.read(read_fd, 65_536):  # until the writer, closing, closes its end
        data += chunk
    os.close(read_fd)
    assert b"line 0\n" in data and b"line 9\n" in data
    # Each time the writer gets through, it says how many were dropped since, and in all.
    assert f"output lines dropped: the output was not read fast enough ({writer.dropped} in " \
        "all)".encode() in data


def test_logging_from_many_threads_through_a_blocked_writer_never_waits():
    read_fd, write_fd = blocked_pipe()
    writer = LineWriter(write_fd, "test-writer", render=lambda r: r.getMessage(), capacity=50)
    os.close(write_fd)
    logger = logging.getLogger("qbdi.test.blocked")
    logger.propagate = False
    logger.addHandler(QueueLogHandler(writer))
    threads = [threading.Thread(target=lambda: [logger.warning("x %d", i)
                                                for i in range(2000)]) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads), "a logging thread waited"
    assert writer.dropped >= 8000 - 51
    writer.close(timeout_s=0.1)
    os.close(read_fd)


def test_bounded_log_logs_the_first_few_then_one_summary_per_interval(records):
    now = [0.0]
    bounded = BoundedLog(logging.getLogger("qbdi.test"), "OSC input", first=3, every_s=10.0,
                         now_s=lambda: now[0])
    for i in range(1000):
        bounded.event("malformed", "bad packet %d", i)
    bounded.event("refused senders", "from %s", "192.0.2.9")
    assert [r.getMessage() for r in records][:3] == [
        "bad packet 0", "bad packet 1",
        "bad packet 2 (further ones are counted and summed up every 10 s)"]
    assert len(records) == 4  # and the first refused sender; no summary before 10 s
    now[0] = 10.0
    bounded.tick()
    assert records[-1].getMessage() == ("OSC input since the last report: 997 more malformed "
                                        "(1,000 in all)")
    bounded.tick()
    bounded.flush()
    assert len(records) == 5, "nothing new: no summary"
    bounded.event("malformed", "bad packet")
    now[0] = 15.0
    bounded.tick()
    assert len(records) == 5, "within the interval"
    bounded.flush()
    assert records[-1].getMessage().endswith("1 more malformed (1,001 in all)")
    assert bounded.counts == {"malformed": 1001, "refused senders": 1}


def test_a_flood_of_100k_bad_datagrams_writes_a_few_dozen_lines(tiny_checkpoint, records):
    """Malformed, refused senders, rate-limited, unknown addresses and refused values,
    through the real transport (bound on the LAN with an allowlist) and control."""
    clock = ManualClock(120.0)
    server = Server(MemoryPorts(now=clock.now_s), clock,
                    Improviser.from_checkpoint(load_checkpoint(tiny_checkpoint)),
                    load_preset("default"), feedback=MemoryFeedback())
    transport = OscTransport("0.0.0.0", 0, allow=["192.0.2.254"], rate_per_s=1e9)
    transport.on_message = server.post_osc
    friend, stranger = ("127.0.0.1", 5000), ("192.0.2.77", 5000)
    bad = [(b"\x00junk", friend), (encode("/qbdi/mode", ["free"]), stranger),
           (encode("/qbdi/nowhere", []), friend), (encode("/qbdi/bits", [-3]), friend)]
    try:
        for i in range(100_000):
            transport.receive(*bad[i % len(bad)])
            if i % 1000 == 0:
                server.step()
        server.step()
        slow = OscTransport("127.0.0.1", 0, rate_per_s=1.0)
        for _ in range(1000):
            slow.receive(encode("/qbdi/status", []), friend)
        for log in (transport.input_log, slow.input_log, server.control.log):
            log.flush()
        slow.close()
    finally:
        transport.close()
    counts = dict(zip(*[iter(server.control.status_pairs())] * 2, strict=True))
    assert transport.counters.malformed == 25_000
    assert transport.counters.refused_sender == 25_000
    assert slow.counters.rate_limited == 999
    assert counts["osc_errors"] == 50_000
    lines = [r.getMessage() for r in records]
    # 5 of each of the 5 kinds, and per source one summary each 10 s (the flood takes a
    # few seconds here, longer on a loaded machine) and one at the end.
    assert len(lines) <= 40, "\n".join(lines)
    assert sum("since the last report" in line for line in lines) >= 3, "\n".join(lines)

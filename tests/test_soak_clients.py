"""Soak with outside programs, in real time: ``qbdi serve`` at 480 BPM fed by
``jack_midiseq``'s looped clip, recorded by ``jack_midi_dump``, its budget turned by liblo's
``oscsend`` every 0.2 s (0, 16, 64, 256, 1024, full, ...), its feedback read by ``oscdump``.

Not in CI: ``pytest tests/test_soak_clients.py --soak-clients-minutes 30 -s``. It asserts
that every bar was answered (consecutive reports, none skipped, the count the clock
gives), no overrun, no note left sounding after SIGTERM and none struck twice (beyond the
events ``jack_midi_dump`` says it skipped, a full ring buffer), no player
note dropped as an echo, and resident memory grown by at most 5 MB after a one-minute
warm-up; and prints the figures with the load average of the machine during the run.
"""

from __future__ import annotations

import itertools
import os
import threading
import time

import pytest
from jack_session import session
from outside_clients import (
    MidiDump,
    OscDump,
    note_ons,
    oscsend,
    preset_file,
    sounding_after,
    start_clip,
    start_serve,
)

TEMPO_BPM = 480.0
CLOSE_AHEAD_MS = "60"  # half a sixteenth is 15.6 ms here; the machine stalls up to 56 ms
BAR_S = 4 * 60.0 / TEMPO_BPM
CLIP = [(0, 60, 2), (4, 64, 2), (8, 67, 2), (12, 72, 2)]
BUDGETS = (0, 16, 64, 256, 1024, "full")
WARMUP_S = 60.0
MAX_GROWTH_KB = 5 * 1024


@pytest.fixture
def minutes(request) -> float:
    value = request.config.getoption("--soak-clients-minutes")
    if not value:
        pytest.skip("real-time soak with outside programs: --soak-clients-minutes 30")
    return float(value)


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


def _turn_budget(port: int, stop: threading.Event, sent: list[int]) -> None:
    for budget in itertools.cycle(BUDGETS):
        if stop.wait(0.2):
            return
        types, value = ("s", "full") if budget == "full" else ("i", budget)
        oscsend(port, "/qbdi/bits", types, value)
        sent[0] += 1


def _double_note_ons(events) -> list[int]:
    """Indexes of note-ons struck while their key was sounding (a note-off missing between)."""
    sounding, doubles = set(), []
    for index, event in enumerate(events):
        kind, key = event.data[0] & 0xF0, (event.data[0] & 0x0F, event.data[1])
        if kind == 0x90 and event.data[2] > 0:
            if key in sounding:
                doubles.append(index)
            sounding.add(key)
        elif kind in (0x80, 0x90):
            sounding.discard(key)
        elif kind == 0xB0 and event.data[1] == 123:
            sounding.clear()
    return doubles


def test_outside_clients_for_half_an_hour_in_real_time(minutes, tmp_path):
    loads: list[float] = []
    budget_messages = [0]
    with session("soak") as jack:
        dump = OscDump(jack)
        serve = start_serve(jack, preset_file(tmp_path, TEMPO_BPM), dump.port,
                            "--close-ahead-ms", CLOSE_AHEAD_MS, "--lock-memory")
        recorder = MidiDump(jack, "recorder")
        start_clip(jack, "clip", TEMPO_BPM, CLIP)
        jack.connect("clip:out", serve.in_port)
        jack.connect(serve.out_port, "recorder:input")
        stop = threading.Event()
        turner = threading.Thread(target=_turn_budget,
                                  args=(serve.osc_port, stop, budget_messages))
        turner.start()
        started_s = time.monotonic()
        time.sleep(WARMUP_S)
        rss_start_kb = _rss_kb(serve.process.pid)
        while time.monotonic() - started_s < minutes * 60:
            loads.append(os.getloadavg()[0])
            time.sleep(10)
        stop.set()
        turner.join()
        rss_end_kb = _rss_kb(serve.process.pid)
        status = dump.status(serve.osc_port)
        assert serve.stop() == 0
        time.sleep(0.2)
        heard = recorder.stop()
    reports = [m.args for m in dump.messages("/qbdi/bar")]
    indexes = [r[0] for r in reports]
    elapsed_bars = (minutes * 60) / BAR_S
    print(f"\n{minutes:g} min at {TEMPO_BPM:g} BPM: {status['bars']} bars "
          f"({len(reports)} reports, {elapsed_bars:.0f} by the clock), "
          f"{status['overruns']} overruns, {status['skipped_bars']} skipped, "
          f"notes in {status['notes_in']}, out {status['notes_out']}, "
          f"{budget_messages[0]} budget changes, echoes dropped {status['echoes_dropped']}, "
          f"RSS {rss_start_kb} -> {rss_end_kb} kB ({rss_end_kb - rss_start_kb:+d}), "
          f"load average {min(loads):.2f}-{max(loads):.2f} "
          f"(mean {sum(loads) / len(loads):.2f}), recorded note-ons {len(note_ons(heard))}, "
          f"sounding after SIGTERM {sorted(sounding_after(heard))}")
    overran = [line for _, line in serve.output.lines if "overran" in line]
    print("\n".join(overran[:20]))  # each says whether the loop woke late or worked long
    # jack_midi_dump says so when its ring buffer was full and it skipped an event
    skipped = sum("ringbuffer was full" in line for _, line in recorder.output.lines)
    doubles = _double_note_ons(heard)
    print(f"recorder skipped {skipped} events; {len(doubles)} note-ons struck while sounding")
    for index in doubles[:3]:
        key = heard[index].data[1]
        print("  ", [e for e in heard[max(index - 40, 0) : index + 1]
                     if len(e.data) > 1 and e.data[1] == key])
    assert indexes == list(range(indexes[0], indexes[0] + len(indexes))), "a bar went missing"
    assert status["skipped_bars"] == 0 and status["bar_errors"] == 0
    assert abs(status["bars"] - elapsed_bars) <= 3
    assert status["overruns"] == 0
    assert status["echoes_dropped"] == 0
    assert sounding_after(heard) == set()
    assert len(doubles) <= skipped  # a note-off the recorder skipped shows as a double
    assert rss_end_kb - rss_start_kb <= MAX_GROWTH_KB

"""Round trips of the notes we send: a loop is found from the data, exactly when the
verdicts say, and a player's look-alike notes never make one."""

from __future__ import annotations

from qbdi.server.round_trips import FIND_AFTER, LOSE_MISSES, MAX_OPEN, RoundTrips, Trip

KEY = (0, 60, 64)


def _note(trips: RoundTrips, t_s: float, key=KEY, length_s: float = 0.1,
          back_on_s: float | None = None, back_off_s: float | None = None) -> list:
    """Send one note at ``t_s``; hear it back after the delays given (None: not at all).
    Returns what :meth:`RoundTrips.judge` said at each event."""
    said = []
    trips.sent_on(t_s, key)
    if back_on_s is not None:
        assert trips.heard_on(t_s + back_on_s, key)
        said.append(trips.judge(t_s + back_on_s))
    trips.sent_off(t_s + length_s, key[0], key[1])
    if back_off_s is not None:
        trips.heard_off(t_s + length_s + back_off_s, key[0], key[1])
    said.append(trips.judge(t_s + length_s + 0.2))
    return said


def test_a_loop_is_found_after_the_fourth_whole_round_trip_with_its_latency():
    trips = RoundTrips()
    said = []
    for i in range(6):
        said += _note(trips, i * 1.0, key=(0, 60 + i, 64), back_on_s=0.003, back_off_s=0.004)
    assert said.count(True) == 1  # reported once
    assert trips.looped
    assert list(trips.recent) == [Trip.ROUND] * 6
    assert abs(trips.latency_s - 0.003) < 1e-9
    # found exactly at the FIND_AFTER-th verdict
    first = RoundTrips()
    for i in range(FIND_AFTER - 1):
        _note(first, i * 1.0, back_on_s=0.003, back_off_s=0.003)
    assert not first.looped
    _note(first, 10.0, back_on_s=0.003, back_off_s=0.003)
    assert first.looped


def test_a_look_alike_note_that_ends_elsewhere_is_half_and_never_makes_a_loop():
    """A clip at a fixed velocity meets our note-ons, but its notes end where the clip says:
    the note-off comes back after another delay than the note-on (or not at all)."""
    trips = RoundTrips()
    for i in range(40):
        off_delay_s = 0.040 if i % 2 else None  # 40 ms later than ours, or before ours
        _note(trips, i * 0.5, back_on_s=0.010, back_off_s=off_delay_s)
    assert trips.trips[Trip.HALF] == 40 and trips.trips[Trip.ROUND] == 0
    assert not trips.looped


def test_one_miss_in_the_recent_trips_keeps_a_loop_from_being_found():
    trips = RoundTrips()
    for i in range(30):
        if i % 7 == 3:  # one note in seven does not come back: a player's coincidences
            _note(trips, i * 0.5)
        else:
            _note(trips, i * 0.5, back_on_s=0.002, back_off_s=0.002)
    assert trips.trips[Trip.MISS] > 0 and not trips.looped


def test_a_found_loop_is_lost_after_enough_notes_do_not_come_back():
    trips = RoundTrips()
    for i in range(8):
        _note(trips, i * 0.5, back_on_s=0.002, back_off_s=0.002)
    assert trips.looped
    said = []
    for i in range(LOSE_MISSES):
        said += _note(trips, 10 + i * 0.5)
    assert said[-1] is False and not trips.looped
    assert said.count(False) == 1


def test_jitter_within_the_tolerance_still_makes_whole_round_trips():
    trips = RoundTrips(tolerance_s=0.015)
    for i in range(8):
        _note(trips, i * 0.5, back_on_s=0.002 + 0.01 * (i % 2), back_off_s=0.012 - 0.01 * (i % 2))
    assert trips.looped
    late = RoundTrips(tolerance_s=0.015)
    _note(late, 0.0, back_on_s=0.002, back_off_s=0.020)  # 18 ms apart: not alike
    assert list(late.recent) == [Trip.HALF]


def test_each_note_we_send_is_met_once_and_only_within_the_window():
    trips = RoundTrips(window_s=0.05)
    trips.sent_on(1.0, KEY)
    assert not trips.heard_on(0.999, KEY)  # before we sent it: not ours
    assert not trips.heard_on(1.0, (0, 60, 65))  # another velocity
    assert not trips.heard_on(1.051, KEY)  # too late
    assert trips.heard_on(1.02, KEY)
    assert not trips.heard_on(1.03, KEY)  # the echo was met already
    assert not trips.heard_off(1.04, 0, 60)  # our note-off has not gone yet


def test_a_note_the_player_could_have_played_anyway_is_no_evidence():
    trips = RoundTrips()
    for i in range(10):
        trips.sent_on(i * 0.5, KEY, counts=False)
        trips.heard_on(i * 0.5 + 0.002, KEY)
        trips.sent_off(i * 0.5 + 0.1, 0, 60)
        trips.heard_off(i * 0.5 + 0.102, 0, 60)
        trips.judge(i * 0.5 + 0.3)
    assert trips.uncounted == 10 and list(trips.recent) == [] and not trips.looped


def test_a_key_arriving_twice_around_a_note_is_evidence_after_all():
    """The clip's own note and our echo: only a loop adds the second arrival."""
    after = RoundTrips()
    after.sent_on(1.0, KEY, counts=False)
    met = after.heard_on(1.002, KEY)
    assert met is not None and not met.counts
    assert after.heard_on(1.03, KEY) is None  # the second: the player's, and evidence
    assert met.counts
    before = RoundTrips()
    before.sent_on(1.0, KEY, counts=False, heard_before=True)  # the clip's came first
    assert before.heard_on(1.002, KEY).counts
    once = RoundTrips()
    once.sent_on(1.0, KEY, counts=False)
    assert not once.heard_on(1.002, KEY).counts
    assert once.heard_on(1.06, KEY) is None and not once._open[0].counts  # out of the window


def test_of_two_note_offs_the_one_delayed_as_the_note_on_was_makes_it_whole():
    """Our echo's note-on came back after 30 ms; the clip's note-off of that pitch comes
    1 ms after ours, the echo's 30 ms after: the trip waits for it and is whole."""
    trips = RoundTrips(window_s=0.05, tolerance_s=0.015)
    trips.sent_on(1.0, KEY)
    trips.heard_on(1.030, KEY)
    trips.sent_off(1.2, 0, 60)
    trips.heard_off(1.201, 0, 60)  # the clip's
    assert trips.judge(1.202) is None and list(trips.recent) == []  # the echo's may come
    trips.heard_off(1.230, 0, 60)  # the echo's
    trips.judge(1.231)
    assert list(trips.recent) == [Trip.ROUND]
    alone = RoundTrips(window_s=0.05, tolerance_s=0.015)
    alone.sent_on(1.0, KEY)
    alone.heard_on(1.030, KEY)
    alone.sent_off(1.2, 0, 60)
    alone.heard_off(1.201, 0, 60)
    alone.judge(1.3)  # the window passed with that one alone
    assert list(alone.recent) == [Trip.HALF]


def test_a_missed_note_can_still_be_met_late_once():
    trips = RoundTrips(window_s=0.05)
    trips.sent_on(1.0, KEY)
    trips.judge(1.06)
    assert list(trips.recent) == [Trip.MISS]
    assert not trips.heard_late(1.2, (0, 61, 64), late_s=0.25)  # another key
    assert trips.heard_late(1.2, KEY, late_s=0.25)
    assert list(trips.recent) == [Trip.HALF], "it came back: a half trip, not a miss"
    assert not trips.heard_late(1.21, KEY, late_s=0.25)  # met once
    trips.sent_on(2.0, KEY)
    trips.judge(2.06)
    assert not trips.heard_late(2.3, KEY, late_s=0.25)  # too late
    assert list(trips.recent) == [Trip.HALF, Trip.MISS]
    assert trips.trips[Trip.MISS] == 1 and trips.trips[Trip.HALF] == 1


def test_a_found_loop_survives_a_stall_that_delays_every_echo():
    trips = RoundTrips(window_s=0.05)
    for i in range(FIND_AFTER):
        _note(trips, float(i), back_on_s=0.002, back_off_s=0.002)
    assert trips.looped
    for i in range(FIND_AFTER, FIND_AFTER + 2 * LOSE_MISSES):  # every echo 0.2 s late
        trips.sent_on(float(i), KEY)
        trips.sent_off(i + 0.1, 0, 60)
        assert trips.judge(i + 0.1) is None
        assert trips.heard_late(i + 0.2, KEY, late_s=0.5)
    assert trips.looped and Trip.MISS not in trips.recent
    for i in range(20, 20 + LOSE_MISSES):  # the loop is unplugged: nothing comes back
        trips.sent_on(float(i), KEY)
        trips.judge(i + 0.1)
    assert not trips.looped


def test_open_trips_are_bounded():
    trips = RoundTrips()
    for i in range(MAX_OPEN + 100):
        trips.sent_on(0.0, (0, i % 128, 64))  # held notes whose note-offs never go
    assert len(trips._open) == MAX_OPEN
    trips.forget()
    assert len(trips._open) == 0 and not trips.looped

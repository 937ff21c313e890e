import numpy as np
import pytest

from qbdi.bars import BAR_SHAPE, flatten_bars, notes_to_bars
from qbdi.improviser import Improviser, ImproviserSettings
from qbdi.midifile import read_midi
from qbdi.models.checkpoint import load_checkpoint
from qbdi.models.runtime import InferenceModel, logits_to_bars


@pytest.fixture(scope="module")
def checkpoint(tiny_checkpoint):
    return load_checkpoint(tiny_checkpoint)


@pytest.fixture(scope="module")
def query_bars(queries_dir):
    return notes_to_bars(read_midi(queries_dir / "prokofiev-visions-fugitives-vf_no3.mid").notes)


def _run(checkpoint, bars, **settings):
    improviser = Improviser.from_checkpoint(checkpoint, ImproviserSettings(**settings))
    return improviser.improvise(bars)


def test_same_seed_same_output_other_seed_differs(checkpoint, query_bars):
    # Bernoulli decoding, so every random draw shows in the output
    a, _ = _run(checkpoint, query_bars, stats="query", budget_bits=8, seed=4, sampling=True)
    b, _ = _run(checkpoint, query_bars, stats="query", budget_bits=8, seed=4, sampling=True)
    c, _ = _run(checkpoint, query_bars, stats="query", budget_bits=8, seed=5, sampling=True)
    assert a.any() and np.array_equal(a, b) and not np.array_equal(a, c)


def test_full_rate_with_mean_encoding_is_decode_of_mu(checkpoint, query_bars):
    out, answers = _run(checkpoint, query_bars, stats="query", budget_bits="full",
                        encoding="mean", threshold=0.3)
    model = InferenceModel.from_checkpoint(checkpoint)
    mu, _ = model.encode(flatten_bars(query_bars))
    expected = logits_to_bars(model.decode_logits(mu), 0.3).reshape(out.shape)
    assert np.array_equal(out, expected)
    assert all(a.bits is None for a in answers)


def test_zero_bits_gives_one_static_bar_for_the_whole_query(checkpoint, query_bars):
    out, answers = _run(checkpoint, query_bars, stats="query", budget_bits=0, threshold=0.2)
    assert all(np.array_equal(bar, out[0]) for bar in out)
    assert all(a.dims_with_bits == 0 for a in answers)


def test_budget_spreads_over_dimensions(checkpoint, query_bars):
    _, answers = _run(checkpoint, query_bars, stats="query", budget_bits=12)
    assert answers[0].bits.sum() == 12 and 1 <= answers[0].dims_with_bits <= 12


def test_window_stats_offline_is_the_live_path(checkpoint, query_bars):
    settings = ImproviserSettings(stats="window", budget_bits=10, seed=2, threshold=0.2)
    offline, _ = Improviser.from_checkpoint(checkpoint, settings).improvise(query_bars)
    live = Improviser.from_checkpoint(checkpoint, settings)
    stepped = np.stack([live.step(bar).bar for bar in query_bars])
    assert np.array_equal(offline, stepped)


def test_corpus_stats_batch_equals_steps_when_deterministic(checkpoint, query_bars):
    settings = ImproviserSettings(stats="corpus", budget_bits="full", encoding="mean",
                                  threshold=0.2)
    batch, _ = Improviser.from_checkpoint(checkpoint, settings).improvise(query_bars)
    live = Improviser.from_checkpoint(checkpoint, settings)
    assert np.array_equal(batch, np.stack([live.step(bar).bar for bar in query_bars]))


def test_echo_mute_and_free(checkpoint, query_bars):
    echo, _ = _run(checkpoint, query_bars, mode="echo")
    assert np.array_equal(echo, query_bars)
    mute, _ = _run(checkpoint, query_bars, mode="mute")
    assert not mute.any()
    free_a, _ = _run(checkpoint, query_bars, mode="free", seed=1, threshold=0.2)
    free_b, _ = _run(checkpoint, np.zeros_like(query_bars), mode="free", seed=1, threshold=0.2)
    assert np.array_equal(free_a, free_b)  # free ignores the query


def test_silence_in_is_answered(checkpoint):
    improviser = Improviser.from_checkpoint(checkpoint, ImproviserSettings())
    answer = improviser.step(None)
    assert answer.bar.shape == (16, 2, 78) and answer.compute_s >= 0


def test_posterior_allocation_and_per_bar_reallocation_run(checkpoint, query_bars):
    _, notebook = _run(checkpoint, query_bars, stats="query", budget_bits=16,
                       allocation="posterior")
    _, per_bar = _run(checkpoint, query_bars, stats="query", budget_bits=16,
                      reallocate_per_bar=True)
    assert notebook[0].bits.sum() == 16
    assert all(a.bits.sum() == 16 for a in per_bar)
    assert not all(np.array_equal(per_bar[0].bits, a.bits) for a in per_bar)


@pytest.mark.parametrize("bad", [{"budget_bits": -1}, {"mode": "loud"}, {"threshold": 1.5},
                                 {"stats": "nope"}, {"extra": 1}, {"budget_bits": "lots"}])
def test_bad_settings_are_refused(bad):
    with pytest.raises(ValueError):
        ImproviserSettings(**bad)


@pytest.mark.parametrize("stats", ["window", "query"])
def test_improvise_reports_progress_adding_up_to_every_bar(tiny_checkpoint, stats):
    from qbdi.models.runtime import CHUNK_BARS

    improviser = Improviser.from_checkpoint(load_checkpoint(tiny_checkpoint),
                                            ImproviserSettings(stats=stats, budget_bits=16))
    bars = np.zeros((CHUNK_BARS + 5, *BAR_SHAPE), dtype=bool)
    bars[:, 0, 0, 40] = True
    reports: list[int] = []
    out, _ = improviser.improvise(bars, reports.append)
    assert sum(reports) == len(bars) == len(out)
    assert len(reports) == (len(bars) if stats == "window" else 2)  # per bar, or per block
    silent, _ = improviser.improvise(bars)  # no callback: the same answer
    assert np.array_equal(silent, out)

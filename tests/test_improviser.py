import numpy as np
import pytest
from query_data import CHORDS_MELODY

from qbdi.bars import BAR_SHAPE, flatten_bars, notes_to_bars
from qbdi.channel import ChannelParams, LatentStats, allocate_bits, transmit
from qbdi.improviser import Improviser
from qbdi.midifile import read_midi
from qbdi.models.checkpoint import load_checkpoint
from qbdi.models.runtime import InferenceModel, logits_to_bars
from qbdi.render import improvise
from qbdi.settings import ImproviserSettings


@pytest.fixture(scope="module")
def checkpoint(tiny_checkpoint):
    return load_checkpoint(tiny_checkpoint)


@pytest.fixture(scope="module")
def query_bars(queries_dir):
    return notes_to_bars(read_midi(queries_dir / CHORDS_MELODY).notes)


def _run(checkpoint, bars, **settings):
    return improvise(Improviser.from_checkpoint(checkpoint), bars, ImproviserSettings(**settings))


def _steps(checkpoint, bars, settings):
    improviser = Improviser.from_checkpoint(checkpoint)
    return [improviser.step(bar, settings) for bar in bars]


def test_same_seed_same_output_other_seed_differs(checkpoint, query_bars):
    # Bernoulli decoding, so every random draw shows in the output
    a = _run(checkpoint, query_bars, stats="query", budget_bits=8, seed=4, sampling=True).bars
    b = _run(checkpoint, query_bars, stats="query", budget_bits=8, seed=4, sampling=True).bars
    c = _run(checkpoint, query_bars, stats="query", budget_bits=8, seed=5, sampling=True).bars
    assert a.any() and np.array_equal(a, b) and not np.array_equal(a, c)


def test_full_rate_with_mean_encoding_is_decode_of_mu(checkpoint, query_bars):
    answers = _run(checkpoint, query_bars, stats="query", budget_bits="full",
                   encoding="mean", threshold=0.3)
    model = InferenceModel.from_checkpoint(checkpoint)
    mu, _ = model.encode(flatten_bars(query_bars))
    expected = logits_to_bars(model.decode_logits(mu), 0.3).reshape(answers.bars.shape)
    assert np.array_equal(answers.bars, expected)
    assert answers.bits is None


def test_zero_bits_gives_one_static_bar_for_the_whole_query(checkpoint, query_bars):
    answers = _run(checkpoint, query_bars, stats="query", budget_bits=0, threshold=0.2)
    assert all(np.array_equal(bar, answers.bars[0]) for bar in answers.bars)
    assert answers.mean_dims_with_bits() == 0


def test_budget_spreads_over_dimensions(checkpoint, query_bars):
    answers = _run(checkpoint, query_bars, stats="query", budget_bits=12)
    assert answers.bits.shape == (1, 16) and answers.bits.sum() == 12
    assert 1 <= answers.mean_dims_with_bits() <= 12


def test_offline_query_path_is_the_stages_written_out(checkpoint, query_bars):
    """Encode, statistics of the whole query, water-filling, the test channel, the decoder:
    each stage by hand, with one random stream."""
    answers = _run(checkpoint, query_bars, stats="query", budget_bits=12, seed=11,
                   threshold=0.4)
    model = InferenceModel.from_checkpoint(checkpoint)
    mu, logvar = model.encode(flatten_bars(query_bars))
    stats = LatentStats.from_latents(mu, logvar=logvar)
    bits = allocate_bits(stats.source_var, 12)
    z_d = transmit(mu, ChannelParams(stats.mean, stats.source_var, bits),
                   np.random.default_rng(11))
    expected = logits_to_bars(model.decode_logits(z_d), 0.4).reshape(answers.bars.shape)
    np.testing.assert_allclose(answers.z_d, z_d, rtol=1e-6, atol=1e-6)
    # equal cell for cell, but for cells whose logit is within float rounding of the cut
    assert np.count_nonzero(answers.bars != expected) <= answers.bars.size * 1e-5
    assert np.array_equal(answers.bits[0], bits)


def test_window_stats_offline_is_the_live_path(checkpoint, query_bars):
    settings = ImproviserSettings(stats="window", budget_bits=10, seed=2, threshold=0.2)
    offline = improvise(Improviser.from_checkpoint(checkpoint), query_bars, settings)
    stepped = np.stack([a.bar for a in _steps(checkpoint, query_bars, settings)])
    assert np.array_equal(offline.bars, stepped)


def test_corpus_stats_batch_equals_steps_when_deterministic(checkpoint, query_bars):
    settings = ImproviserSettings(stats="corpus", budget_bits="full", encoding="mean",
                                  threshold=0.2)
    batch = improvise(Improviser.from_checkpoint(checkpoint), query_bars, settings)
    stepped = np.stack([a.bar for a in _steps(checkpoint, query_bars, settings)])
    assert np.array_equal(batch.bars, stepped)


def test_live_query_stats_are_every_bar_so_far(checkpoint, query_bars):
    """Live, query statistics are those of the bars heard so far (pooled with the corpus
    seed), not a window: the fifth bar's channel uses all five bars."""
    settings = ImproviserSettings(stats="query", budget_bits=12, seed=1)
    improviser = Improviser.from_checkpoint(checkpoint)
    answers = [improviser.step(bar, settings) for bar in query_bars[:5]]
    mu, _ = improviser.model.encode(flatten_bars(query_bars[:5]))
    heard = improviser.heard.current()
    seed, w, k = improviser.seed_stats(settings), 4.0, 5
    np.testing.assert_allclose(heard.mean, (w * seed.mean + k * mu.mean(axis=0)) / (w + k),
                               rtol=1e-5, atol=1e-6)
    assert np.array_equal(answers[-1].bits, allocate_bits(heard.source_var, 12))


def test_echo_mute_and_free(checkpoint, query_bars):
    echo = _run(checkpoint, query_bars, mode="echo")
    assert np.array_equal(echo.bars, query_bars)
    assert not _run(checkpoint, query_bars, mode="mute").bars.any()
    free_a = _run(checkpoint, query_bars, mode="free", seed=1, threshold=0.2).bars
    free_b = _run(checkpoint, np.zeros_like(query_bars), mode="free", seed=1, threshold=0.2).bars
    assert np.array_equal(free_a, free_b)  # free ignores the query


def test_silence_in_is_answered(checkpoint):
    answer = Improviser.from_checkpoint(checkpoint).step(None, ImproviserSettings())
    assert answer.bar.shape == (16, 2, 78) and answer.compute_s >= 0


def test_posterior_allocation_and_per_bar_reallocation_run(checkpoint, query_bars):
    notebook = _run(checkpoint, query_bars, stats="query", budget_bits=16,
                    allocation="posterior")
    per_bar = _run(checkpoint, query_bars, stats="query", budget_bits=16,
                   reallocate_per_bar=True)
    assert notebook.bits.shape == (1, 16) and notebook.bits.sum() == 16
    assert per_bar.bits.shape == (len(query_bars), 16)
    assert (per_bar.bits.sum(axis=1) == 16).all()
    assert not all(np.array_equal(per_bar.bits[0], row) for row in per_bar.bits)


@pytest.mark.parametrize("bad", [{"budget_bits": -1}, {"mode": "loud"}, {"threshold": 1.5},
                                 {"stats": "nope"}, {"extra": 1}, {"budget_bits": "lots"}])
def test_bad_settings_are_refused(bad):
    with pytest.raises(ValueError):
        ImproviserSettings(**bad)


@pytest.mark.parametrize("stats", ["window", "query"])
def test_improvise_reports_progress_adding_up_to_every_bar(checkpoint, stats):
    from qbdi.models.runtime import CHUNK_BARS

    improviser = Improviser.from_checkpoint(checkpoint)
    settings = ImproviserSettings(stats=stats, budget_bits=16)
    n_bars = CHUNK_BARS + 5 if stats == "query" else 40
    bars = np.zeros((n_bars, *BAR_SHAPE), dtype=bool)
    bars[:, 0, 0, 40] = True
    reports: list[int] = []
    answers = improvise(improviser, bars, settings, reports.append)
    assert sum(reports) == n_bars == len(answers.bars)
    assert len(reports) == (n_bars if stats == "window" else 2)  # per bar, or per chunk
    silent = improvise(improviser, bars, settings)  # no callback: the same answer
    assert np.array_equal(silent.bars, answers.bars)


@pytest.mark.parametrize("settings", [{"stats": "query"}, {"stats": "corpus"}, {"mode": "free"},
                                      {"stats": "query", "budget_bits": "full"},
                                      {"stats": "window"}, {"mode": "echo"}])
def test_no_bars_in_no_bars_out(checkpoint, settings):
    answers = _run(checkpoint, np.zeros((0, *BAR_SHAPE), bool), **settings)
    assert answers.bars.shape == (0, *BAR_SHAPE)
    assert answers.mean_dims_with_bits() == 0.0


def test_live_changes_keep_or_restart_what_the_answers_remember(checkpoint, query_bars):
    """A new budget keeps the random stream and the bars heard; a new allocation (or seed,
    window, encoding) restarts both; a new statistics source keeps the stream and starts the
    bars heard afresh. Live with source allocation the bars heard keep no posterior
    variances; after the switch to posterior allocation they do."""
    source = ImproviserSettings(stats="window", budget_bits=16, seed=1)
    improviser = Improviser.from_checkpoint(checkpoint)
    for bar in query_bars[:4]:
        improviser.step(bar, source)
    assert improviser.heard.bars == 4 and improviser.heard.current().posterior_var is None
    improviser.step(query_bars[4], source.model_copy(update={"budget_bits": 32}))
    assert improviser.heard.bars == 5  # other changes keep the window
    posterior = source.model_copy(update={"allocation": "posterior"})
    answers = [improviser.step(bar, posterior) for bar in query_bars[5:9]]
    assert improviser.heard.bars == 4 and all(a.bits.sum() == 16 for a in answers)
    assert improviser.heard.current().posterior_var is not None
    fresh = _steps(checkpoint, query_bars[5:9], posterior)
    assert all(np.array_equal(a.bar, b.bar) for a, b in zip(answers, fresh, strict=True))
    stream = improviser.rng
    improviser.step(query_bars[9], posterior.model_copy(update={"stats": "corpus"}))
    assert improviser.heard is None and improviser.rng is stream

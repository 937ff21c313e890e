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
    from qbdi.blocks import BLOCK_BARS

    improviser = Improviser.from_checkpoint(load_checkpoint(tiny_checkpoint),
                                            ImproviserSettings(stats=stats, budget_bits=16))
    bars = np.zeros((2 * BLOCK_BARS + 5, *BAR_SHAPE), dtype=bool)
    bars[:, 0, 0, 40] = True
    reports: list[int] = []
    out, _ = improviser.improvise(bars, reports.append)
    assert sum(reports) == len(bars) == len(out)
    assert len(reports) == (len(bars) if stats == "window" else 3)  # per bar, or per block
    silent, _ = improviser.improvise(bars)  # no callback: the same answer
    assert np.array_equal(silent, out)


@pytest.fixture(scope="module")
def default_checkpoint():
    return load_checkpoint(None)


@pytest.fixture(scope="module")
def long_bars(queries_dir):
    bars = notes_to_bars(read_midi(queries_dir / "prokofiev-prksn2_4-six-eight.mid").notes)
    return bars[np.arange(2500) % len(bars)]  # three blocks, the last one short


@pytest.mark.parametrize("settings", [
    {"stats": "query", "budget_bits": 256},
    {"stats": "query", "budget_bits": 64, "encoding": "sample", "allocation": "posterior"},
    {"stats": "corpus", "budget_bits": 32, "sampling": True},
    {"mode": "free"},
])
def test_offline_answers_do_not_depend_on_the_number_of_cores(
        default_checkpoint, long_bars, monkeypatch, settings):
    from qbdi import blocks

    settings = ImproviserSettings(seed=3, **settings)
    monkeypatch.setattr(blocks, "usable_cores", lambda: 2)
    parallel, answers = Improviser.from_checkpoint(default_checkpoint, settings).improvise(
        long_bars)
    monkeypatch.setattr(blocks, "usable_cores", lambda: 1)
    inline, inline_answers = Improviser.from_checkpoint(
        default_checkpoint, settings).improvise(long_bars)
    assert parallel.any() and np.array_equal(parallel, inline)
    assert np.array_equal(answers.z_d, inline_answers.z_d)


def test_offline_path_equals_the_channel_and_decoder_written_out(default_checkpoint, long_bars):
    """The fused block path (mu-only encoder, sparse first layer, statistics summed over
    blocks, zero-bit dimensions folded into the decoder's bias) against the plain steps:
    encode, statistics of the whole query, water-filling, the test channel with block k's
    spawned stream, the full decoder, the threshold."""
    from qbdi.blocks import block_slices
    from qbdi.channel import LatentStats, allocate_bits, transmit

    settings = ImproviserSettings(stats="query", budget_bits=256, seed=11, threshold=0.5)
    out, answers = Improviser.from_checkpoint(default_checkpoint, settings).improvise(long_bars)

    model = InferenceModel.from_checkpoint(default_checkpoint)
    flat = flatten_bars(long_bars)
    mu, logvar = model.encode(flat)
    stats = LatentStats.from_latents(mu, logvar=logvar)
    bits = allocate_bits(stats.source_var, 256)
    rngs = np.random.default_rng(11).spawn(len(block_slices(len(flat))))
    z_d = np.concatenate([transmit(mu[part], stats.mean, stats.source_var, bits, rngs[k])
                          for k, part in enumerate(block_slices(len(flat)))])
    expected = logits_to_bars(model.decode_logits(z_d), 0.5).reshape(out.shape)
    np.testing.assert_allclose(answers.z_d, z_d, rtol=1e-5, atol=1e-5)
    # equal cell for cell, but for cells whose logit is within float rounding of 0
    assert np.count_nonzero(out != expected) <= out.size * 1e-6
    assert np.array_equal(answers[0].bits, bits)


def test_answers_index_like_a_list(checkpoint, query_bars):
    out, answers = _run(checkpoint, query_bars, stats="query", budget_bits=12, seed=1)
    n = len(query_bars)
    assert len(answers) == n and answers.bars is out
    last = answers[-1]
    assert np.array_equal(last.bar, out[n - 1]) and np.array_equal(last.z_d, answers.z_d[n - 1])
    assert [a.dims_with_bits for a in answers[1:3]] == [answers[1].dims_with_bits] * 2
    assert answers.mean_dims_with_bits() == answers[0].dims_with_bits
    with pytest.raises(IndexError):
        answers[n]
    _, echo = _run(checkpoint, query_bars, mode="echo")
    assert echo.z_d is None and echo[0].bits is None and echo.mean_dims_with_bits() == 0.0


@pytest.mark.parametrize("settings", [{"stats": "query"}, {"stats": "corpus"}, {"mode": "free"},
                                      {"stats": "query", "budget_bits": "full"},
                                      {"stats": "window"}, {"mode": "echo"}])
def test_no_bars_in_no_bars_out(checkpoint, settings):
    out, answers = _run(checkpoint, np.zeros((0, *BAR_SHAPE), bool), **settings)
    assert out.shape == (0, *BAR_SHAPE) and len(answers) == 0
    assert answers.mean_dims_with_bits() == 0.0


def test_live_switch_to_posterior_allocation_restarts_the_window(checkpoint, query_bars):
    """Live with source allocation the window keeps no posterior variances (the encoder's
    logvar head is skipped); switching to posterior allocation starts a fresh window that
    keeps them, and the answers go on."""
    source = ImproviserSettings(stats="window", budget_bits=16, seed=1)
    improviser = Improviser.from_checkpoint(checkpoint, source)
    for bar in query_bars[:4]:
        improviser.step(bar)
    assert improviser.window.bars == 4 and improviser.window.current().posterior_var is None
    improviser.update(source.model_copy(update={"budget_bits": 32}))
    assert improviser.window.bars == 4  # other changes keep the window
    posterior = source.model_copy(update={"allocation": "posterior"})
    improviser.update(posterior)
    assert improviser.window.bars == 0
    answers = [improviser.step(bar) for bar in query_bars[4:8]]
    assert all(a.bits.sum() == 16 for a in answers)
    assert improviser.window.current().posterior_var is not None
    fresh = Improviser.from_checkpoint(checkpoint, posterior)
    assert all(np.array_equal(a.bar, fresh.step(bar).bar)
               for a, bar in zip(answers, query_bars[4:8], strict=True))

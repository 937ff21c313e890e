import subprocess
import sys

import numpy as np
import pytest

from qbdi.models.checkpoint import load_checkpoint

pytest.importorskip("torch", reason="training needs torch (the train extra)")
from qbdi.models.train import TrainSettings, train, transpose_batch

TINY = {"latent_size": 8, "hidden_size": 16}


def _train(corpus, out, **extra):
    settings = TrainSettings(corpus=str(corpus), out=out, **{**TINY, **extra})
    return train(settings, progress=False, log=lambda _: None)


def test_one_epoch_cli_on_our_queries(tmp_path, queries_dir):
    out = tmp_path / "m.safetensors"
    result = subprocess.run(
        [sys.executable, "-m", "qbdi.cli", "train", "--corpus", str(queries_dir), "--out",
         str(out), "--epochs", "1", "--latent-dim", "8", "--hidden-dim", "16", "--no-progress"],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "epoch 1/1" in result.stdout
    checkpoint = load_checkpoint(out)
    card = checkpoint.card
    assert card.epochs == 1 and card.pieces_heldout == 1 and card.pieces_train == 3
    assert card.heldout_note_f1 is not None and "qbdi train" in card.command
    # the 6/8 piece is skipped, not crammed into 4/4 frames; the others give every bar:
    # 20 (4/4) + 10 (20 bars of 2/4) + 40 (4/4) + 16 (4/4)
    assert card.bars_train + card.bars_heldout == 86


def test_same_seed_same_weights_and_resume_continues_exactly(tmp_path, queries_dir):
    straight = tmp_path / "straight.safetensors"
    _train(queries_dir, straight, epochs=2, seed=3)
    again = tmp_path / "again.safetensors"
    _train(queries_dir, again, epochs=2, seed=3)
    resumed = tmp_path / "resumed.safetensors"
    _train(queries_dir, resumed, epochs=1, seed=3)
    state = resumed.with_name(resumed.name + ".train-state.safetensors")
    assert not state.exists()  # removed once a run completes
    # re-run epoch 1 keeping its state, then resume to epoch 2
    _keep_state_run(queries_dir, resumed, seed=3)
    _train(queries_dir, resumed, epochs=2, seed=3, resume=True)
    a, b, c = (load_checkpoint(p).weights for p in (straight, again, resumed))
    for name in a:
        assert np.array_equal(a[name], b[name]), name
        np.testing.assert_allclose(a[name], c[name], atol=1e-6, err_msg=name)


def _keep_state_run(corpus, out, seed):
    """Train one epoch of a two-epoch run and stop, as if interrupted."""
    import qbdi.models.train as module

    original = module._finish
    module._finish = lambda *args, **kwargs: None
    try:
        settings = TrainSettings(corpus=str(corpus), out=out, epochs=1, seed=seed, **TINY)
        module.train(settings, progress=False, log=lambda _: None)
    finally:
        module._finish = original
    assert out.with_name(out.name + ".train-state.safetensors").exists()


def test_different_seeds_differ(tmp_path, queries_dir):
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    _train(queries_dir, a, epochs=1, seed=1)
    _train(queries_dir, b, epochs=1, seed=2)
    assert not np.array_equal(load_checkpoint(a).weights["enc_mu.weight"],
                              load_checkpoint(b).weights["enc_mu.weight"])


def test_transposition_moves_notes_and_drops_those_pushed_out():
    import torch

    batch = torch.zeros(2, 16, 2, 78)
    batch[0, 0, 0, 10] = 1
    batch[1, 0, 0, 77] = 1
    shifted = transpose_batch(batch, torch.tensor([3, 2]))
    assert shifted[0, 0, 0, 13] == 1 and shifted[0].sum() == 1
    assert shifted[1].sum() == 0  # pitch 101 + 2 is out of range
    down = transpose_batch(batch, torch.tensor([-4, -4]))
    assert down[0, 0, 0, 6] == 1 and down[1, 0, 0, 73] == 1


def test_bad_settings_are_refused_with_the_flag_named(tmp_path, queries_dir):
    result = subprocess.run(
        [sys.executable, "-m", "qbdi.cli", "train", "--corpus", str(queries_dir), "--out",
         str(tmp_path / "x.safetensors"), "--epochs", "0"],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "--epochs" in result.stderr


def test_missing_corpus_is_a_clear_error(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "qbdi.cli", "train", "--corpus", str(tmp_path / "none"),
         "--out", str(tmp_path / "x.safetensors")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "not a folder" in result.stderr


def test_torchrun_two_processes_ddp_gloo(tmp_path, queries_dir):
    pytest.importorskip("torch.distributed.run")
    out = tmp_path / "ddp.safetensors"
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", "qbdi.cli", "train", "--corpus", str(queries_dir), "--out", str(out),
         "--epochs", "2", "--latent-dim", "8", "--hidden-dim", "16", "--no-progress"],
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("epoch 2/2") == 1  # only rank 0 reports
    assert load_checkpoint(out).card.epochs == 2


def _melody_folder(folder):
    """Synthetic other music: one-voice eighth-note tunes, written as MIDI files."""
    from qbdi.bars import Note
    from qbdi.midifile import Track, write_midi

    rng = np.random.default_rng(0)
    folder.mkdir()
    for index in range(6):
        pitches = 60 + np.cumsum(rng.integers(-2, 3, size=64)) % 12
        notes = [Note(2 * i, int(p), 2 * i + 2) for i, p in enumerate(pitches)]
        write_midi(folder / f"tune{index}.mid", [Track(notes)])
    return folder


def test_answers_are_calibrated_to_the_corpus_density_and_a_style_measure_is_stored(
        tmp_path, queries_dir):
    import torch

    from qbdi.models.decoding import answer_bars
    from qbdi.models.density import starts_per_bar, voices_per_step
    from qbdi.models.register import centre_octaves, sounding_range
    from qbdi.models.texture import retexture
    from qbdi.models.train import split_by_piece
    from qbdi.models.train_answer import DENSITY_TOLERANCE

    out = tmp_path / "m.safetensors"
    card = _train(queries_dir, out, epochs=3, seed=1, texture_noise=0.5, texture_keep_min=0.6,
                  style_negatives=[str(_melody_folder(tmp_path / "tunes"))],
                  frontier_queries=queries_dir, frontier_seeds=1)
    checkpoint = load_checkpoint(out)
    answer = checkpoint.answer
    # a three-epoch model flickers too much for voices; the calibration falls back
    assert answer.method in ("voices", "notes", "cells") and answer.centre_pitch is not None
    from qbdi.corpus import load_corpus
    split = split_by_piece(load_corpus(str(queries_dir)), 0.1, 1)
    assert answer.min_voices == answer.max_voices == voices_per_step(split.train)
    # answers sound where the training bars do, and nowhere else
    assert answer.pitch_range == sounding_range(split.train)
    # the answers to re-textured held-out bars, as calibrated, are as dense as the corpus
    noisy = retexture(torch.from_numpy(split.heldout.astype(np.float32)), 1.0,
                      torch.Generator().manual_seed(0)).numpy() > 0.5
    from qbdi.models.runtime import InferenceModel
    runtime = InferenceModel.from_checkpoint(checkpoint)
    mu, _ = runtime.encode(centre_octaves(noisy, answer.centre_pitch).reshape(len(noisy), -1))
    decoded = answer_bars(runtime.decode_logits(mu), answer)
    target = answer.corpus_starts_per_bar
    assert abs(starts_per_bar(decoded) - target) <= DENSITY_TOLERANCE * target
    # the style measure is stored, validated, and tells the corpus from the tunes
    assert checkpoint.style is not None
    assert card.style_heldout_corpus > 0.8 and card.style_heldout_other < 0.2
    assert checkpoint.style.metadata["validation"]["heldout_corpus"] == pytest.approx(
        card.style_heldout_corpus, abs=1e-4)
    assert card.texture_noise == 0.5 and card.heldout_answer_chroma_cosine is not None
    assert card.texture_keep_min == 0.6
    # the frontier on the query folder, one row per budget, and free mode's style
    assert [row.budget_bits for row in card.frontier] == [0, 16, 32, 64, 128, 256, 512,
                                                          1024, "full"]
    assert all(0 <= row.style_min <= row.style_mean <= 1 for row in card.frontier)
    assert 0 <= card.free_style <= 1 and card.free_starts_per_bar > 0


def test_texture_keep_min_bounds_the_pitches_dropped():
    """Re-texturing keeps each pitch with a probability drawn in [keep_min, 1]: at 1 every
    pitch class of a bar survives (moved, doubled or re-rhythmed); at 0.35 many do not."""
    import torch

    from qbdi.bars import ARTICULATED, N_PITCHES, SOUNDING
    from qbdi.models.texture import retexture

    rng = np.random.default_rng(3)
    bars = np.zeros((256, 16, 2, N_PITCHES), dtype=np.float32)
    for bar in bars:  # chords of four pitches in the middle of the range (no octave falls out)
        pitches = rng.choice(np.arange(24, 54), size=4, replace=False)
        bar[:, SOUNDING, pitches] = 1.0
        bar[0, ARTICULATED, pitches] = 1.0

    def pitch_classes(x: np.ndarray) -> np.ndarray:
        sounding = x[:, :, SOUNDING].max(axis=1) > 0.5  # (n, 78)
        return np.stack([sounding[:, pc::12].any(axis=1) for pc in range(12)], axis=1)

    def kept(keep_min: float) -> float:
        noisy = retexture(torch.from_numpy(bars), 1.0, torch.Generator().manual_seed(0),
                          keep_min).numpy()
        before, after = pitch_classes(bars), pitch_classes(noisy)
        assert not (after & ~before).any(), "re-texturing adds no pitch class"
        return float((after & before).sum() / before.sum())

    assert kept(1.0) == 1.0
    assert kept(0.35) < 0.85

import json

import numpy as np
import pytest
from query_data import CHORDS_MELODY, DYNAMICS_PEDAL
from safetensors.numpy import load_file, save_file

from qbdi.bars import BAR_SIZE, flatten_bars, notes_to_bars
from qbdi.errors import CheckpointError
from qbdi.midifile import read_midi
from qbdi.models.checkpoint import (
    CorpusStats,
    default_checkpoint_path,
    load_checkpoint,
    save_checkpoint,
)
from qbdi.models.config import ModelCard, ModelConfig
from qbdi.models.runtime import InferenceModel, logits_to_bars

torch = pytest.importorskip("torch", reason="the model's torch side needs torch (the train extra)")
from qbdi.models.vae import BarVAE  # noqa: E402  (imports torch)

TINY = ModelConfig(hidden_size=24, latent_size=8, beta=0.5)


def _card() -> ModelCard:
    return ModelCard(corpus="test", pieces_train=1, pieces_heldout=0, bars_train=1,
                     bars_heldout=0, epochs=0, seed=0, train_seconds=0.0)


def _stats(latent: int) -> CorpusStats:
    rng = np.random.default_rng(0)
    return CorpusStats.from_encodings(rng.normal(size=(10, latent)), rng.normal(size=(10, latent)))


def _saved(tmp_path, config=TINY, dtype="float32"):
    torch.manual_seed(0)
    model = BarVAE(config)
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, config, _card(), model.numpy_weights(), _stats(config.latent_size), dtype)
    return path, model


def test_paper_defaults():
    config = ModelConfig()
    assert (config.input_size, config.hidden_size, config.latent_size, config.beta) == (
        2496, 500, 500, 1.0)


def test_shapes_and_separate_calls():
    model = BarVAE(TINY)
    x = torch.zeros(3, BAR_SIZE)
    mu, logvar = model.encode(x)
    assert mu.shape == logvar.shape == (3, 8)
    z = model.reparametrize(mu, logvar, torch.Generator().manual_seed(1))
    assert z.shape == (3, 8)
    assert model.decode(z).shape == (3, BAR_SIZE)


def test_reparametrize_is_seeded():
    mu, logvar = torch.zeros(2, 8), torch.zeros(2, 8)
    a = BarVAE.reparametrize(mu, logvar, torch.Generator().manual_seed(5))
    b = BarVAE.reparametrize(mu, logvar, torch.Generator().manual_seed(5))
    c = BarVAE.reparametrize(mu, logvar, torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_loss_is_bce_sum_plus_beta_kl():
    torch.manual_seed(0)
    model = BarVAE(TINY)
    x = (torch.rand(4, BAR_SIZE) < 0.05).float()
    total, bce, kl = model.loss(x, torch.Generator().manual_seed(0))
    assert torch.isclose(total, bce + 0.5 * kl)
    assert bce > 0 and kl >= 0


def test_numpy_runtime_equals_torch(tmp_path, queries_dir):
    path, model = _saved(tmp_path)
    runtime = InferenceModel.from_checkpoint(load_checkpoint(path))
    bars = flatten_bars(notes_to_bars(read_midi(queries_dir / CHORDS_MELODY).notes))
    with torch.no_grad():
        mu_t, logvar_t = model.encode(torch.from_numpy(bars))
        logits_t = model.decode(mu_t)
    mu, logvar = runtime.encode(bars)
    np.testing.assert_allclose(mu, mu_t.numpy(), atol=1e-4)
    np.testing.assert_allclose(logvar, logvar_t.numpy(), atol=1e-4)
    np.testing.assert_allclose(runtime.decode_logits(mu), logits_t.numpy(), atol=1e-4)
    # the sparse single-bar path gives the batch's answer
    single_mu, _ = runtime.encode(bars[3:4])
    np.testing.assert_allclose(single_mu[0], mu[3], atol=1e-5)


def test_a_batch_of_bars_encodes_as_each_bar_alone_and_decode_above_is_the_threshold(
        queries_dir):
    from qbdi.models.runtime import CHUNK_BARS

    runtime = InferenceModel.from_checkpoint(load_checkpoint(None))
    bars = flatten_bars(notes_to_bars(read_midi(queries_dir / DYNAMICS_PEDAL).notes))
    bars = bars[np.arange(CHUNK_BARS + 7) % len(bars)]  # more than one chunk...
    bars[::7] = False  # (with empty bars too)
    mu, logvar = runtime.encode(bars)
    one_by_one = [runtime.encode(bars[i : i + 1]) for i in range(len(bars))]
    # ...against bar-by-bar gathers of the used features
    np.testing.assert_allclose(mu, np.concatenate([m for m, _ in one_by_one]), rtol=1e-5,
                               atol=1e-5)
    np.testing.assert_allclose(logvar, np.concatenate([v for _, v in one_by_one]), rtol=1e-5,
                               atol=1e-5)
    logits = runtime.decode_logits(mu[:300])
    out = runtime.decode_above(mu[:300], 0.3)
    # the bias on the threshold's side: equal but within float rounding of the cut
    assert out.any() and np.count_nonzero(out != logits_to_bars(logits, 0.3)) <= 2
    with pytest.raises(ValueError, match="threshold"):
        runtime.decode_above(mu[:3], 0.0)


def test_the_decoder_halves_and_the_mean_alone_are_the_whole_layers(tmp_path):
    path, _ = _saved(tmp_path)
    runtime = InferenceModel.from_checkpoint(load_checkpoint(path))
    rng = np.random.default_rng(4)
    z = rng.normal(size=(5, runtime.latent_size)).astype(np.float32)
    logits = runtime.decode_logits(z).reshape(5, 16, 2, 78)
    hidden = runtime.decode_hidden(z)
    np.testing.assert_allclose(runtime.sounding_logits(hidden), logits[:, :, 0], atol=1e-5)
    bar, step, pitch = rng.integers(0, 5, 40), rng.integers(0, 16, 40), rng.integers(0, 78, 40)
    np.testing.assert_allclose(runtime.articulated_logits_at(hidden, bar, step, pitch),
                               logits[bar, step, 1, pitch], atol=1e-5)
    bars = rng.random((6, BAR_SIZE)) < 0.05
    np.testing.assert_allclose(runtime.encode_mu(bars), runtime.encode(bars)[0], atol=1e-6)


def test_threshold_and_seeded_sampling():
    logits = np.array([[-3.0, 0.0, 0.5, 1.0, 3.0]], dtype=np.float32)
    assert logits_to_bars(logits, 0.7).tolist() == [[False, False, False, True, True]]
    assert logits_to_bars(logits, 0.5).tolist() == [[False, False, True, True, True]]
    many = np.zeros((1, 20000), dtype=np.float32)
    draws = logits_to_bars(many, rng=np.random.default_rng(3))
    assert abs(draws.mean() - 0.5) < 0.02
    assert np.array_equal(draws, logits_to_bars(many, rng=np.random.default_rng(3)))
    with pytest.raises(ValueError, match="threshold"):
        logits_to_bars(logits, 1.0)


def test_save_load_round_trip(tmp_path):
    path, model = _saved(tmp_path)
    checkpoint = load_checkpoint(path)
    assert checkpoint.config == TINY
    assert checkpoint.card.corpus == "test"
    restored = BarVAE.from_checkpoint(checkpoint)
    for name, value in model.state_dict().items():
        assert torch.equal(restored.state_dict()[name], value)
    assert checkpoint.stats.z_var.shape == (8,)
    np.testing.assert_allclose(checkpoint.stats.z_var,
                               checkpoint.stats.mu_var + checkpoint.stats.posterior_var, rtol=1e-5)


def test_fp16_weights_load_as_float32(tmp_path):
    path, model = _saved(tmp_path, dtype="float16")
    checkpoint = load_checkpoint(path)
    assert checkpoint.card.weights_dtype == "float16"
    weight = checkpoint.weights["dec_out.weight"]
    assert weight.dtype == np.float32
    np.testing.assert_allclose(weight, model.state_dict()["dec_out.weight"].numpy(), atol=1e-3)


def _rewrite(path, tensors=None, metadata=None):
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as handle:
        old_metadata = handle.metadata()
    save_file(tensors if tensors is not None else load_file(str(path)), str(path),
              metadata=metadata if metadata is not None else old_metadata)
    return old_metadata


def test_missing_file_is_named(tmp_path):
    with pytest.raises(CheckpointError, match="nope.safetensors: file: no such file"):
        load_checkpoint(tmp_path / "nope.safetensors")


@pytest.mark.parametrize("cut", [0, 10, 200])
def test_truncated_or_garbage_file_is_refused(tmp_path, cut):
    path, _ = _saved(tmp_path)
    path.write_bytes(path.read_bytes()[:cut] if cut else b"\x80\x04garbage pickle-ish")
    with pytest.raises(CheckpointError, match="m.safetensors: file"):
        load_checkpoint(path)


def test_a_pickle_checkpoint_is_refused_not_executed(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"weights": torch.zeros(3)}, path)
    with pytest.raises(CheckpointError, match="not a safetensors checkpoint"):
        load_checkpoint(path)


def test_wrong_format_tag(tmp_path):
    path, _ = _saved(tmp_path)
    metadata = _rewrite(path)
    _rewrite(path, metadata={**metadata, "format": "something-else"})
    with pytest.raises(CheckpointError, match="format"):
        load_checkpoint(path)


def test_bad_config_field_is_named(tmp_path):
    path, _ = _saved(tmp_path)
    metadata = _rewrite(path)
    config = json.loads(metadata["config"])
    config["latent_size"] = -4
    _rewrite(path, metadata={**metadata, "config": json.dumps(config)})
    with pytest.raises(CheckpointError, match="config: latent_size"):
        load_checkpoint(path)


def test_config_that_does_not_match_the_tensors(tmp_path):
    path, _ = _saved(tmp_path)
    metadata = _rewrite(path)
    config = json.loads(metadata["config"])
    config["latent_size"] = 9
    _rewrite(path, metadata={**metadata, "config": json.dumps(config)})
    with pytest.raises(CheckpointError, match="enc_mu.weight: shape"):
        load_checkpoint(path)


def test_nan_in_a_tensor_is_named(tmp_path):
    path, _ = _saved(tmp_path)
    tensors = load_file(str(path))
    tensors["stats.z_var"][2] = np.nan
    _rewrite(path, tensors=tensors)
    with pytest.raises(CheckpointError, match="stats.z_var: contains NaN"):
        load_checkpoint(path)


def test_missing_tensor_is_named(tmp_path):
    path, _ = _saved(tmp_path)
    tensors = load_file(str(path))
    del tensors["dec_hidden.bias"]
    _rewrite(path, tensors=tensors)
    with pytest.raises(CheckpointError, match="dec_hidden.bias: tensor missing"):
        load_checkpoint(path)


def test_default_checkpoint_is_shipped_in_the_package():
    assert default_checkpoint_path().is_file()
    checkpoint = load_checkpoint()
    assert checkpoint.config == ModelConfig(**checkpoint.config.model_dump())
    assert checkpoint.card.corpus == "music21:bach"


def _style_classifier():
    from qbdi.analysis.style import FEATURE_VERSION, N_FEATURES, StyleClassifier

    rng = np.random.default_rng(0)
    return StyleClassifier(
        np.zeros(N_FEATURES, np.float32), np.ones(N_FEATURES, np.float32),
        rng.normal(size=(4, N_FEATURES)).astype(np.float32), np.zeros(4, np.float32),
        rng.normal(size=4).astype(np.float32), np.zeros(1, np.float32),
        {"feature_version": FEATURE_VERSION, "corpus": "test"})


def test_answer_and_style_round_trip(tmp_path):
    from qbdi.models.config import AnswerConfig

    path = tmp_path / "m.safetensors"
    answer = AnswerConfig(centre_pitch=62.0, method="voices", sounding_bias=0.3,
                          onset_bias=-0.2, corpus_starts_per_bar=17.2, calibrated_on="test")
    style = _style_classifier()
    save_checkpoint(path, TINY, _card(), BarVAE(TINY).numpy_weights(), _stats(8),
                    answer=answer, style=style)
    checkpoint = load_checkpoint(path)
    assert checkpoint.answer == answer
    bars = np.random.default_rng(2).random((3, 16, 2, 78)) < 0.05
    assert np.array_equal(checkpoint.style.probability(bars), style.probability(bars))
    assert checkpoint.style.metadata["corpus"] == "test"


def test_a_checkpoint_without_them_loads_with_the_old_behaviour(tmp_path):
    path, _ = _saved(tmp_path)
    checkpoint = load_checkpoint(path)
    assert checkpoint.answer.method == "threshold" and checkpoint.answer.centre_pitch is None
    assert checkpoint.style is None


def test_a_bad_style_tensor_is_named(tmp_path):
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, TINY, _card(), BarVAE(TINY).numpy_weights(), _stats(8),
                    style=_style_classifier())
    tensors = load_file(str(path))
    tensors["style.out_weight"] = tensors["style.out_weight"][:2].copy()
    _rewrite(path, tensors)
    with pytest.raises(CheckpointError, match="style"):
        load_checkpoint(path)

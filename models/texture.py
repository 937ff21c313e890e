"""Texture noise for training: the same harmony in another texture, as the encoder's input.

The product answers a player in *another* style with the corpus's texture over the player's
harmony. A VAE trained to reconstruct corpus bars from corpus bars never sees another
texture, so an out-of-style bar encodes off the corpus's manifold and decodes to the
player's own texture or to mush. Trained as a *denoising* VAE instead (Im et al., 2017), the
encoder reads a corpus bar re-textured at random and the decoder must give back the corpus
bar itself: the model learns "this harmony, in any texture -> this harmony, in the corpus's
texture".

:func:`retexture` keeps each bar's pitch classes on the whole (notes move by octaves, are
dropped or doubled, re-rhythmed) and changes what a style classifier sees: voices, register,
spacing, rhythm and note lengths. Pure torch, batched, drawn from a generator.
"""

from __future__ import annotations

import torch

from qbdi.bars import ARTICULATED, N_PITCHES, SOUNDING, STEPS_PER_BAR

OCTAVE = 12


def _octave_shift(x: torch.Tensor, semitones: int) -> torch.Tensor:
    """``(B, 16, 2, 78)`` moved along the pitch axis, notes pushed out of range dropped."""
    out = torch.zeros_like(x)
    if semitones > 0:
        out[..., semitones:] = x[..., :-semitones]
    else:
        out[..., :semitones] = x[..., -semitones:]
    return out


def _blocks(sounding: torch.Tensor, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every pitch sounding anywhere in a block of ``steps`` held as a chord through it."""
    b = len(sounding)
    union = sounding.reshape(b, STEPS_PER_BAR // steps, steps, N_PITCHES).amax(dim=2)
    held = union.repeat_interleave(steps, dim=1)
    struck = torch.zeros_like(held)
    struck[:, ::steps] = union
    return held, struck


def retexture(bars: torch.Tensor, rate: float, generator: torch.Generator,
              keep_low: float = 0.35) -> torch.Tensor:
    """Each bar of ``(B, 16, 2, 78)`` (0/1 floats), with probability ``rate``, re-textured:

    * pitches dropped (each kept with a probability drawn in [keep_low, 1] per bar);
    * pitches moved or doubled an octave up or down (each with probability 1/8 per kind);
    * re-rhythmed, one of: as it is (40 %), chords held per beat (20 %) or per half bar
      (10 %), re-struck every eighth (15 %) or at random sixteenths (15 %).

    A bar the drops would silence is kept as it is. The result is a valid bar (articulated
    cells sound). ``rate = 0`` returns ``bars`` unchanged (the same tensor).
    """
    if rate <= 0:
        return bars
    b = len(bars)
    device = bars.device

    def uniform(*shape: int) -> torch.Tensor:
        return torch.rand(shape, generator=generator, device=device)

    x = bars
    keep_probability = keep_low + (1.0 - keep_low) * uniform(b, 1, 1, 1)
    keep = (uniform(b, 1, 1, N_PITCHES) < keep_probability).to(x.dtype)
    x = x * keep
    kind = uniform(b, 1, 1, N_PITCHES)
    move_up, move_down = (kind < 0.125), (kind >= 0.125) & (kind < 0.25)
    double_up, double_down = (kind >= 0.25) & (kind < 0.375), (kind >= 0.375) & (kind < 0.5)
    up = _octave_shift(x * (move_up | double_up), OCTAVE)
    down = _octave_shift(x * (move_down | double_down), -OCTAVE)
    x = (x * ~(move_up | move_down) + up + down).clamp(max=1.0)

    sounding, articulated = x[:, :, SOUNDING], x[:, :, ARTICULATED]
    beat_held, beat_struck = _blocks(sounding, 4)
    half_held, half_struck = _blocks(sounding, 8)
    eighths = torch.zeros_like(sounding)
    eighths[:, ::2] = 1.0
    rhythm = uniform(b, 1, 1)
    is_beat, is_half = (rhythm >= 0.4) & (rhythm < 0.6), (rhythm >= 0.6) & (rhythm < 0.7)
    is_eighths, is_random = (rhythm >= 0.7) & (rhythm < 0.85), rhythm >= 0.85
    sounding = torch.where(is_beat, beat_held, torch.where(is_half, half_held, sounding))
    articulated = torch.where(is_beat, beat_struck, torch.where(is_half, half_struck,
                                                                articulated))
    extra = torch.where(is_eighths, sounding * eighths,
                        torch.where(is_random, sounding * (uniform(b, 16, N_PITCHES) < 0.5),
                                    torch.zeros_like(sounding)))
    articulated = (articulated + extra).clamp(max=1.0) * sounding
    noisy = torch.stack([sounding, articulated], dim=2)

    chosen = uniform(b) < rate
    audible = noisy[:, :, SOUNDING].flatten(1).amax(dim=1) > 0
    use = (chosen & audible).reshape(b, 1, 1, 1)
    return torch.where(use, noisy, bars)

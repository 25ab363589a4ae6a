"""The zoom loop's colour hold (loops/zoom.py): an affine map that moves colours least, and a
pull whose integral term takes a lasting push away, held from the frame the dream has settled."""

import torch

from zoomdream.loops.zoom import (LoopSettings, LoopState, colour_state, colour_stats, colour_target,
                                  match_colour)


def _picture(seed: int) -> torch.Tensor:
    """Correlated channels, as in a photo or a dream: a shared lightness plus a tint."""
    g = torch.Generator().manual_seed(seed)
    light = torch.rand(1, 1, 48, 48, generator=g)
    tint = torch.rand(1, 3, 48, 48, generator=g) * torch.tensor([0.3, 0.2, 0.1]).view(1, 3, 1, 1)
    return (0.6 * light + tint + 0.1).clamp(0, 1)


def test_full_strength_gives_the_target_mean_and_covariance():
    img = _picture(0)
    target = colour_stats(0.15 + 0.7 * _picture(1).flip(1))  # other colours, other correlations
    out = match_colour(img, target, 1.0)
    assert not torch.allclose(colour_stats(img), target, atol=1e-3)
    assert torch.allclose(colour_stats(out), target, atol=5e-5), colour_stats(out) - target


def test_a_picture_that_already_has_the_target_is_left_as_it_is():
    img = _picture(2)
    assert torch.allclose(match_colour(img, colour_stats(img), 0.5), img, atol=1e-6)


def test_the_map_moves_colours_least():
    # The target is the picture's colours mixed by a symmetric matrix about their mean. Many
    # linear maps give that covariance (any rotation after them too: a Cholesky factor's map
    # lands up to 0.03 away here); the one that moves colours least is that mixing itself, so
    # every pixel lands where the mixed picture has it.
    img = 0.3 + 0.4 * _picture(3)
    mix = torch.tensor([[1.2, 0.3, 0.0], [0.3, 0.9, 0.2], [0.0, 0.2, 1.1]])
    mean = img.mean(dim=(2, 3), keepdim=True)
    mixed = mean + torch.einsum("ij,bjhw->bihw", mix, img - mean)
    assert mixed.min() >= 0 and mixed.max() <= 1
    out = match_colour(img, colour_stats(mixed), 1.0)
    assert (out - mixed).abs().max() < 1e-3  # the floor under both covariances: 4e-4


def _push(x: torch.Tensor) -> torch.Tensor:
    """A stand-in for the dream that pushes the same way every frame: brighter, more contrast, redder."""
    return (x * torch.tensor([1.02, 1.01, 1.0]).view(1, 3, 1, 1) + 0.002).clamp(0, 1)


def _dream_like(frames: int, loop: LoopSettings, integral: bool = True) -> list[torch.Tensor]:
    """The loop's colour bookkeeping as dream_key does it, with `_push` for the dream:
    colour_stats of each frame shown."""
    state, shown = LoopState(0, _picture(4)), []
    for key in range(frames):
        d = _push(state.frame)
        stats = colour_stats(d)
        ref, err = colour_state(stats, state, loop, key)
        err = err if integral else None
        shown.append(stats)
        state = LoopState(key + 1, match_colour(d, colour_target(ref, err, loop.color_strength), loop.color_strength),
                          ref, color_err=err)
    return shown


def test_the_integral_term_takes_a_lasting_push_away():
    loop = LoopSettings(24, 0, color_strength=0.1)
    ref = colour_stats(_push(_picture(4)))
    pulled = (_dream_like(200, loop, integral=False)[-1] - ref).abs().max()
    held = (_dream_like(200, loop)[-1] - ref).abs().max()
    # A pull alone settles where the push balances it, off by push ÷ strength.
    assert pulled > 5e-3 and held < 0.05 * pulled, (pulled, held)


def test_hold_keeps_the_colours_of_the_frame_it_starts_from():
    shown = _dream_like(200, LoopSettings(24, 0, color_strength=0.1, color_from=48))
    # Before frame 48 the pull aims at frame 0's colours and the push keeps its lead over
    # them; from 48 on, frame 48's colours are held, not frame 0's.
    lead = (shown[47] - shown[0]).abs().max()
    assert lead > 0.01
    assert (shown[-1] - shown[48]).abs().max() < 0.1 * lead

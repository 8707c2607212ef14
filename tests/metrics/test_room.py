"""Room-acoustics metrics against an analytic exponential decay of known T60."""

from __future__ import annotations

import numpy as np
import pytest

from wavesurrogate.metrics.room import decay_time, schroeder_edc, t20, t30, t60, t60_direct

FS = 8000.0


def decaying(t60_s: float, seconds: float, carrier: str = "ones", seed: int = 0) -> np.ndarray:
    """h(t) = carrier(t) · exp(−3 ln10 · t / T60): the amplitude falls 60 dB in T60."""
    t = np.arange(int(seconds * FS)) / FS
    env = np.exp(-3.0 * np.log(10.0) * t / t60_s)
    if carrier == "ones":
        return env
    return np.random.default_rng(seed).standard_normal(t.size) * env


def test_edc_of_an_exponential_is_a_line_of_slope_minus_60_db_per_t60():
    h = decaying(0.5, 2.0)
    edc = schroeder_edc(h)
    t = np.arange(h.size) / FS
    assert edc[0] == 0.0
    # a geometric series: EDC(t) = -60 t / T60 up to the truncation term 10^(-6 L / T60) (-240 dB here)
    np.testing.assert_allclose(edc[: int(0.75 * FS)], -60.0 * t[: int(0.75 * FS)] / 0.5, atol=1e-6)


@pytest.mark.parametrize("t60_s", [0.3, 0.8, 1.7])
def test_reverberation_times_match_the_known_t60_within_1_percent(t60_s):
    h = decaying(t60_s, 2.5 * t60_s)
    for fn in (t20, t30, t60, t60_direct):
        assert abs(float(fn(h, FS)) - t60_s) / t60_s < 0.01, fn.__name__
    # a white-noise carrier (a diffuse tail): the fit sees the envelope through the noise's fluctuations,
    # about 2 % at 8 kHz here; a wrong slope (e.g. amplitude instead of energy) would be off by 100 %
    noisy = decaying(t60_s, 2.5 * t60_s, carrier="noise", seed=3)
    assert abs(float(t30(noisy, FS)) - t60_s) / t60_s < 0.03


def test_batched_shapes_silence_and_too_short_responses():
    h = np.stack([decaying(0.4, 1.0), decaying(0.9, 2.0)[: int(FS)], np.zeros(int(FS))])
    got = t30(h, FS)
    assert got.shape == (3,)
    np.testing.assert_allclose(got[:2], [0.4, 0.9], rtol=0.01)
    assert np.isnan(got[2])
    assert np.isnan(t60_direct(decaying(1.0, 0.5), FS))  # only 30 dB of decay recorded
    with pytest.raises(ValueError, match="lo > hi"):
        decay_time(h, FS, -35.0, -5.0)

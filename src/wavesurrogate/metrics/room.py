"""Room-acoustics metrics of an impulse response: Schroeder's energy-decay curve and reverberation times.

- :func:`schroeder_edc`: ``EDC(t) = ∫_t^∞ h²(τ) dτ / ∫_0^∞ h²(τ) dτ`` in dB (Schroeder 1965), by backward
  cumulative sum of the sampled ``h²``;
- :func:`decay_time`: the time for a 60 dB decay extrapolated from a least-squares line through the EDC
  between ``lo`` and ``hi`` dB (ISO 3382-1); :func:`t30` fits −5 … −35 dB, :func:`t20` −5 … −25 dB;
- :func:`t60`: the reverberation time the issue names T60: the same −5 … −35 dB fit (a measured response
  rarely decays a full 60 dB above its noise or truncation), so ``t60 == t30``; :func:`t60_direct` is the
  time at which the EDC itself first reaches −60 dB (NaN if it never does), for long, clean responses.

Every function takes an array ``[..., n_times]`` (NumPy or anything ``np.asarray`` reads) and the sampling
rate ``fs`` in Hz, and returns float64 (``[...]`` for the times); a silent response gives NaN.
"""

from __future__ import annotations

import numpy as np

__all__ = ["schroeder_edc", "decay_time", "t20", "t30", "t60", "t60_direct"]


def schroeder_edc(ir: np.ndarray) -> np.ndarray:
    """Energy-decay curve in dB re the total energy ``[..., n_times]`` (0 dB at t = 0, −inf past the end)."""
    h2 = np.square(np.asarray(ir, dtype=np.float64))
    tail = np.cumsum(h2[..., ::-1], axis=-1)[..., ::-1]
    total = tail[..., :1]
    with np.errstate(divide="ignore", invalid="ignore"):
        return 10.0 * np.log10(np.where(total > 0, tail / np.where(total > 0, total, 1.0), np.nan))


def decay_time(ir: np.ndarray, fs: float, lo: float = -5.0, hi: float = -35.0) -> np.ndarray:
    """60 dB decay time (s) from a line fitted to the EDC between ``lo`` and ``hi`` dB (``0 > lo > hi``).

    The fit uses every sample whose EDC lies in ``[hi, lo]`` up to the first crossing of ``hi``; NaN if the
    EDC does not reach ``hi`` or the slope is not negative.
    """
    if not 0.0 >= lo > hi:
        raise ValueError(f"decay_time: need 0 >= lo > hi (dB), got lo={lo}, hi={hi}")
    if not fs > 0:
        raise ValueError(f"decay_time: fs must be positive, got {fs}")
    edc = schroeder_edc(ir)
    flat = edc.reshape(-1, edc.shape[-1])
    t = np.arange(edc.shape[-1], dtype=np.float64) / float(fs)
    out = np.full(flat.shape[0], np.nan)
    for i, e in enumerate(flat):
        below = np.flatnonzero(~(e > hi))  # NaN (silent) counts as below: no fit
        if not np.isfinite(e[0]) or not below.size:
            continue
        end = below[0]
        sel = np.flatnonzero(e[:end + 1] <= lo)
        sel = sel[np.isfinite(e[sel])]
        if sel.size < 2:
            continue
        slope = np.polyfit(t[sel], e[sel], 1)[0]  # dB / s
        if slope < 0:
            out[i] = -60.0 / slope
    return out.reshape(edc.shape[:-1])


def t20(ir: np.ndarray, fs: float) -> np.ndarray:
    """Reverberation time (s) from the −5 … −25 dB part of the EDC."""
    return decay_time(ir, fs, -5.0, -25.0)


def t30(ir: np.ndarray, fs: float) -> np.ndarray:
    """Reverberation time (s) from the −5 … −35 dB part of the EDC (ISO 3382-1's T30)."""
    return decay_time(ir, fs, -5.0, -35.0)


def t60(ir: np.ndarray, fs: float) -> np.ndarray:
    """T60 (s), the 60 dB decay time extrapolated from the −5 … −35 dB fit (equal to :func:`t30`)."""
    return t30(ir, fs)


def t60_direct(ir: np.ndarray, fs: float) -> np.ndarray:
    """Time (s) at which the EDC first reaches −60 dB, linearly interpolated; NaN if it never does."""
    edc = schroeder_edc(ir)
    flat = edc.reshape(-1, edc.shape[-1])
    out = np.full(flat.shape[0], np.nan)
    for i, e in enumerate(flat):
        below = np.flatnonzero(~(e > -60.0))
        if not np.isfinite(e[0]) or not below.size or below[0] == 0 or not np.isfinite(e[below[0]]):
            continue
        k = below[0]
        out[i] = (k - 1 + (e[k - 1] + 60.0) / (e[k - 1] - e[k])) / float(fs)
    return out.reshape(edc.shape[:-1])

"""``wavesurrogate auralize``: a dry recording heard at a receiver of a room, through a trained surrogate.

The run (task ``source_to_receiver`` on 3-D room data) predicts the impulse response from the source to the
receiver at its trace rate; it is low-passed at the data's ``f_max`` (zero-phase Butterworth: the surrogate
has seen nothing above it), resampled to 48 kHz (``scipy.signal.resample_poly``), convolved with the dry
signal (``fftconvolve``; the dry signal is resampled to 48 kHz first if it is at another rate), normalised
to a peak of ``PEAK`` and written as a 48 kHz float WAV with soundfile, atomically.

A moving source follows a path of points with times (CSV ``t_s,x_m,y_m,z_m``, times increasing): the dry
signal is convolved with the response of every path point and the results are cross-faded with linear
(triangular) weights in time, so at a path time the output is that point's convolution. Doppler shift is
ignored (the responses are those of a fixed source at each point), as is the motion within one response.

Bad input gives one line and exit 2 with nothing written: a position outside the room or inside an
obstacle, a missing or non-WAV dry file, a bad path file, a run of another task or of 2-D data.
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from wavesurrogate.errors import CheckpointError, ConfigError, DataFileError

__all__ = ["FS_OUT", "PEAK", "auralize", "impulse_response_48k", "read_path", "read_dry"]

FS_OUT = 48_000
PEAK = 0.9  # peak of the normalised output (−0.9 dBFS)
LOWPASS_ORDER = 8


def _load(run: str | Path) -> tuple[Any, dict[str, Any]]:
    from wavesurrogate.runs.load import load_run
    from wavesurrogate.tasks.source_to_receiver import TASK

    model, info = load_run(Path(run), "best")
    s = info.stats
    dims = len(s.get("coord_min", [0, 0, 0])) - 1
    if s.get("task") != TASK.name or dims != 3 or "room" not in s:
        raise CheckpointError(f"{run}: auralize needs a run of task {TASK.name} on 3-D room data, "
                              f"this one is {s.get('task')!r} on {dims}-D data")
    return model.eval(), s


def impulse_response_48k(model: Any, stats: dict[str, Any], source: np.ndarray,
                         receiver: np.ndarray) -> np.ndarray:
    """The predicted impulse response from ``source`` to ``receiver`` (m), low-passed at ``f_max`` and
    resampled to 48 kHz, float64 ``[n]`` (field units)."""
    from scipy import signal

    from wavesurrogate.tasks.source_to_receiver import predict_irs

    names = list(stats["param_names"])
    params = {k: float(v) for k, v in zip(("source_x_m", "source_y_m", "source_z_m"), source, strict=True)}
    missing = [k for k in names if k not in params]
    if missing:
        raise CheckpointError(f"auralize: the run also takes parameters {missing}, which a position alone "
                              "does not give")
    ir = predict_irs(model, stats, params, np.asarray(receiver, np.float64)[None])[0]
    fs = 1.0 / float(stats["receivers"]["dt_s"])
    f_max = stats.get("f_max_hz")
    if f_max is not None and f_max < 0.5 * fs:
        sos = signal.butter(LOWPASS_ORDER, float(f_max), fs=fs, output="sos")
        ir = signal.sosfiltfilt(sos, ir)
    ratio = Fraction(FS_OUT / fs).limit_denominator(1000)
    return signal.resample_poly(ir, ratio.numerator, ratio.denominator)


def read_dry(path: str | Path) -> np.ndarray:
    """The dry signal ``[n, channels]`` float64 at 48 kHz; DataFileError if missing, not a WAV, or empty."""
    import soundfile as sf
    from scipy import signal

    p = Path(path)
    if not p.is_file():
        raise DataFileError(f"{p}: dry file not found")
    try:
        info = sf.info(str(p))
        data, fs = sf.read(str(p), dtype="float64", always_2d=True)
    except (RuntimeError, sf.LibsndfileError, ValueError) as exc:
        raise DataFileError(f"{p}: not a readable WAV file ({str(exc).splitlines()[0] if str(exc) else exc})"
                            ) from None
    if info.format != "WAV":
        raise DataFileError(f"{p}: the dry file must be a WAV file, this one is {info.format}")
    if data.shape[0] == 0 or not np.all(np.isfinite(data)):
        raise DataFileError(f"{p}: the dry signal is empty or not finite")
    if fs != FS_OUT:
        g = math.gcd(int(fs), FS_OUT)
        data = signal.resample_poly(data, FS_OUT // g, int(fs) // g, axis=0)
    return data


def read_path(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(times ``[K]`` s, points ``[K, 3]`` m) of a moving source's CSV ``t_s,x_m,y_m,z_m`` (header line);
    ConfigError (one line) unless the times start at 0 or later and increase."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"--path {p}: file not found")
    try:
        rows = np.loadtxt(p, delimiter=",", skiprows=1, ndmin=2, dtype=np.float64)
    except ValueError as exc:
        raise ConfigError(f"--path {p}: expected CSV rows t_s,x_m,y_m,z_m after a header ({exc})") from None
    if rows.shape[1] != 4 or rows.shape[0] < 1 or not np.all(np.isfinite(rows)):
        raise ConfigError(f"--path {p}: expected at least one row of 4 finite numbers t_s,x_m,y_m,z_m")
    t = rows[:, 0]
    if t[0] < 0 or np.any(np.diff(t) <= 0):
        raise ConfigError(f"--path {p}: times must start at 0 or later and increase, got {list(t)}")
    return t, rows[:, 1:]


def crossfade_weights(times: np.ndarray, n: int, fs: float) -> np.ndarray:
    """``[K, n]`` linear (hat) weights of the path points at the output samples; they sum to 1."""
    t = np.arange(n) / fs
    k = len(times)
    if k == 1:
        return np.ones((1, n))
    eye = np.eye(k)
    return np.stack([np.interp(t, times, eye[i]) for i in range(k)])


def auralize(run: str | Path, receiver: Any, dry: str | Path, out: str | Path, source: Any = None,
             path: str | Path | None = None) -> dict[str, Any]:
    """Write ``out`` (48 kHz WAV): ``dry`` as heard at ``receiver`` from ``source`` (x, y, z in m) or along
    the moving-source ``path`` (CSV). Returns a summary: out, fs_hz, samples, seconds, n_points,
    ir_samples."""
    from scipy.signal import fftconvolve

    from wavesurrogate.io import atomic_path
    from wavesurrogate.tasks.source_to_receiver import check_position

    if (source is None) == (path is None):
        raise ConfigError("auralize: give either --source X Y Z or --path FILE")
    model, stats = _load(run)
    room = stats["room"]
    rec = check_position(room, receiver, "--receiver")
    if path is not None:
        times, points = read_path(path)
    else:
        times, points = np.zeros(1), np.asarray(source, np.float64).reshape(1, -1)
    points = np.stack([check_position(room, p, "--source" if path is None else f"--path point {i}")
                       for i, p in enumerate(points)])
    signal_in = read_dry(dry)
    out = Path(out)
    if out.suffix.lower() != ".wav":
        raise ConfigError(f"--out {out}: the output must be a .wav file")
    irs = [impulse_response_48k(model, stats, p, rec) for p in points]
    n = signal_in.shape[0] + max(len(h) for h in irs) - 1
    wet = np.zeros((n, signal_in.shape[1]))
    weights = crossfade_weights(times, n, FS_OUT)
    for w, h in zip(weights, irs, strict=True):
        y = fftconvolve(signal_in, h[:, None], axes=0)
        wet[: y.shape[0]] += w[: y.shape[0], None] * y
    peak = float(np.max(np.abs(wet)))
    if not np.isfinite(peak) or peak == 0:
        raise ConfigError("auralize: the result is silent or not finite (a silent dry signal?)")
    wet *= PEAK / peak
    import soundfile as sf

    with atomic_path(out) as tmp:
        sf.write(str(tmp), wet.astype(np.float32), FS_OUT, subtype="FLOAT", format="WAV")
    return {"out": str(out), "fs_hz": FS_OUT, "samples": int(n), "seconds": n / FS_OUT,
            "n_points": len(points), "ir_samples": int(len(irs[0]))}

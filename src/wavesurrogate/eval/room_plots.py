"""Figures of a 3-D room surrogate (PNG): the room, impulse responses, energy-decay curves and T30/T60.

- :func:`room_layout`: three projections (plan x–y, elevations x–z and y–z) of the room with its obstacles,
  sources (training and held-out) and receivers (training and held-out);
- :func:`impulse_responses`: predicted against the solver's impulse response, one panel per pair;
- :func:`decay_curves`: Schroeder energy-decay curves predicted against the solver's, one panel per pair,
  with their T30 and T60 (``metrics.room``), and a panel of T30 predicted against the solver's over every
  pair given.

Same conventions as ``eval/plots.py``: arrays in, one file written atomically, its path returned.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from wavesurrogate.eval.plots import DPI, _save
from wavesurrogate.metrics.room import schroeder_edc, t30, t60

__all__ = ["room_layout", "impulse_responses", "decay_curves"]

_PLANES = (("x", "y", 0, 1), ("x", "z", 0, 2), ("y", "z", 1, 2))


def room_layout(room: Mapping[str, Any], out: Path, sources: Mapping[str, np.ndarray] | None = None,
                receivers: Mapping[str, np.ndarray] | None = None, title: str = "") -> Path:
    """The room (``min_m``, ``max_m``, ``obstacles`` as in ``stats["room"]``) in three projections, with
    point sets ``sources``/``receivers`` (label → ``[N, 3]`` m; e.g. "train", "held out")."""
    fig = Figure(figsize=(13.0, 4.2), dpi=DPI)
    lo, hi = np.asarray(room["min_m"], float), np.asarray(room["max_m"], float)
    styles = {"sources": ("*", ("tab:red", "darkred", "orange")),
              "receivers": ("o", ("tab:blue", "navy", "tab:cyan"))}
    for k, (a, b, i, j) in enumerate(_PLANES):
        ax = fig.add_subplot(1, 3, k + 1)
        ax.add_patch(Rectangle((lo[i], lo[j]), hi[i] - lo[i], hi[j] - lo[j], fill=False, lw=1.5, color="k"))
        for n, box in enumerate(room.get("obstacles", [])):
            (x0, x1), (y0, y1) = box[f"{a}_m"], box[f"{b}_m"]
            ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, color="0.6", alpha=0.6,
                                   label="obstacle" if n == 0 else None))
        for kind, sets in (("sources", sources or {}), ("receivers", receivers or {})):
            marker, colours = styles[kind]
            for m, (label, pts) in enumerate(sets.items()):
                p = np.asarray(pts, float).reshape(-1, 3)
                ax.scatter(p[:, i], p[:, j], marker=marker, s=28 if marker == "*" else 10,
                           color=colours[m % len(colours)], label=f"{kind[:-1]}s: {label} ({len(p)})")
        ax.set_xlim(lo[i] - 0.1, hi[i] + 0.1)
        ax.set_ylim(lo[j] - 0.1, hi[j] + 0.1)
        ax.set_aspect("equal")
        ax.set_xlabel(f"{a} (m)")
        ax.set_ylabel(f"{b} (m)")
        ax.set_title(["plan", "elevation", "side elevation"][k])
    handles, labels = fig.axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 5), fontsize=8)
    fig.suptitle(title or "room")
    fig.tight_layout(rect=(0, 0.08, 1, 0.95))
    return _save(fig, out)


def _grid(n: int) -> tuple[int, int]:
    cols = min(n, 3)
    return (n + cols - 1) // cols, cols


def impulse_responses(t_s: np.ndarray, pred: np.ndarray, true: np.ndarray, out: Path,
                      labels: Sequence[str] | None = None, title: str = "") -> Path:
    """Predicted (dashed) against the solver's (solid) impulse responses ``[N, n_t]`` at times ``t_s``."""
    pred, true = np.atleast_2d(pred), np.atleast_2d(true)
    rows, cols = _grid(len(true))
    fig = Figure(figsize=(4.2 * cols, 2.6 * rows), dpi=DPI)
    for k in range(len(true)):
        ax = fig.add_subplot(rows, cols, k + 1)
        ax.plot(1e3 * t_s, true[k], color="k", lw=1.0, label="solver")
        ax.plot(1e3 * t_s, pred[k], color="tab:red", lw=1.0, ls="--", label="surrogate")
        peak = float(np.max(np.abs(true[k]))) or 1.0
        err = float(np.sqrt(np.mean((pred[k] - true[k]) ** 2)) / peak)
        ax.set_title(f"{labels[k] if labels else f'pair {k}'}: RMSE/peak {err:.3f}", fontsize=9)
        ax.set_xlabel("t (ms)")
        if k == 0:
            ax.legend(fontsize=8)
    fig.suptitle(title or "impulse responses")
    fig.tight_layout()
    return _save(fig, out)


def decay_curves(pred: np.ndarray, true: np.ndarray, fs_hz: float, out: Path,
                 labels: Sequence[str] | None = None, title: str = "", show: int = 3) -> Path:
    """EDCs of the first ``show`` pairs (predicted dashed, solver solid; T30/T60 in the titles) and T30
    predicted against the solver's over all pairs ``[N, n_t]``."""
    pred, true = np.atleast_2d(pred), np.atleast_2d(true)
    n = min(show, len(true))
    fig = Figure(figsize=(4.2 * (n + 1), 3.4), dpi=DPI)
    t = np.arange(true.shape[1]) / fs_hz
    tp, tt = t30(pred, fs_hz), t30(true, fs_hz)
    p60, s60 = t60(pred, fs_hz), t60(true, fs_hz)
    for k in range(n):
        ax = fig.add_subplot(1, n + 1, k + 1)
        ax.plot(1e3 * t, schroeder_edc(true[k]), color="k", lw=1.0, label="solver")
        ax.plot(1e3 * t, schroeder_edc(pred[k]), color="tab:red", lw=1.0, ls="--", label="surrogate")
        for lvl in (-5.0, -35.0):
            ax.axhline(lvl, color="0.7", lw=0.6)
        ax.set_ylim(-60, 2)
        ax.set_xlabel("t (ms)")
        ax.set_ylabel("EDC (dB)")
        ax.set_title(f"{labels[k] if labels else f'pair {k}'}\nT30 {1e3 * tp[k]:.0f} / {1e3 * tt[k]:.0f} ms, "
                     f"T60 {1e3 * p60[k]:.0f} / {1e3 * s60[k]:.0f} ms", fontsize=8)
        if k == 0:
            ax.legend(fontsize=8)
    ax = fig.add_subplot(1, n + 1, n + 1)
    ok = np.isfinite(tp) & np.isfinite(tt)
    ax.scatter(1e3 * tt[ok], 1e3 * tp[ok], s=8, color="tab:red")
    if ok.any():
        lim = (0.0, 1.1e3 * float(max(tt[ok].max(), tp[ok].max())))
        ax.plot(lim, lim, color="k", lw=0.8)
        ax.plot(lim, [0.9 * v for v in lim], color="0.6", lw=0.6, ls=":")
        ax.plot(lim, [1.1 * v for v in lim], color="0.6", lw=0.6, ls=":")
        med = float(np.median(np.abs(tp[ok] / tt[ok] - 1.0)))
        ax.set_title(f"T30 surrogate vs solver ({ok.sum()} pairs)\nmedian |error| {100 * med:.1f} %",
                     fontsize=8)
    ax.set_xlabel("T30 solver (ms)")
    ax.set_ylabel("T30 surrogate (ms)")
    fig.suptitle(title or "energy decay")
    fig.tight_layout()
    return _save(fig, out)

"""Figures of a comparison (PNG, and one animated GIF): snapshots, rollout errors, Pareto fronts, training.

Every function takes arrays or plain records, writes one file atomically and returns its path. Figures
are built with ``matplotlib.figure.Figure`` (no pyplot state). Fields use a symmetric diverging colour
scale shared by truth and prediction; the error has its own symmetric scale.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from wavesurrogate.io import atomic_path

__all__ = [
    "snapshots",
    "rollout_curves",
    "pareto",
    "pareto_front",
    "solver_pareto",
    "elastic_curves",
    "training_curves",
    "rollout_gif",
]

FIELD_CMAP = "RdBu_r"
ERROR_CMAP = "PuOr_r"
DPI = 110
GIF_LEVELS = 112  # colour-map levels per map in the GIF palette (2 maps + greys ≤ 256 colours)


def _write_atomic(out: Path, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``out`` (``io.atomic_path``), then rename it."""
    with atomic_path(out) as tmp:
        write(str(tmp))
    return Path(out)


def _save(fig: Figure, out: Path) -> Path:
    """Save ``fig`` to ``out`` atomically, in the format of its suffix."""
    fmt = Path(out).suffix.lstrip(".") or "png"
    return _write_atomic(out, lambda tmp: fig.savefig(tmp, dpi=DPI, format=fmt))


def _symmetric_limit(*arrays: np.ndarray) -> float:
    """Largest absolute finite value over ``arrays`` (1 if all are zero)."""
    m = max(float(np.nanmax(np.abs(a))) if np.size(a) else 0.0 for a in arrays)
    return m if m > 0 and math.isfinite(m) else 1.0


def snapshots(true: np.ndarray, pred: np.ndarray, times_s: Sequence[float], out: Path,
              extent_m: tuple[float, float, float, float] | None = None, title: str = "") -> Path:
    """Rows truth / prediction / error, one column per frame; ``true``, ``pred`` of shape [frame, y, x]."""
    true, pred = np.asarray(true, dtype=np.float64), np.asarray(pred, dtype=np.float64)
    if true.shape != pred.shape or true.ndim != 3:
        raise ValueError(f"snapshots: expected equal [frame, y, x] arrays, got {true.shape} and {pred.shape}")
    err = pred - true
    n = true.shape[0]
    vmax, emax = _symmetric_limit(true, pred), _symmetric_limit(err)
    fig = Figure(figsize=(2.6 * n + 1.2, 7.4), layout="constrained")
    axes = fig.subplots(3, n, squeeze=False, sharex=True, sharey=True)
    kw: dict[str, Any] = {"origin": "lower", "extent": extent_m, "interpolation": "nearest"}
    rows = (("truth", true, FIELD_CMAP, vmax), ("prediction", pred, FIELD_CMAP, vmax),
            ("error (pred − true)", err, ERROR_CMAP, emax))
    for r, (name, arr, cmap, lim) in enumerate(rows):
        for c in range(n):
            ax = axes[r, c]
            im = ax.imshow(arr[c], cmap=cmap, vmin=-lim, vmax=lim, **kw)
            if r == 0:
                ax.set_title(f"t = {times_s[c] * 1e3:.1f} ms", fontsize=9)
            if c == 0:
                ax.set_ylabel(f"{name}\ny (m)" if extent_m else name, fontsize=9)
            if r == 2 and extent_m:
                ax.set_xlabel("x (m)", fontsize=9)
            ax.tick_params(labelsize=7)
        fig.colorbar(im, ax=axes[r, :].tolist(), shrink=0.9, label="u (a.u.)" if r < 2 else "error (a.u.)")
    if title:
        fig.suptitle(title, fontsize=11)
    return _save(fig, out)


def rollout_curves(curves: Mapping[str, tuple[Sequence[float], Sequence[float]]], out: Path,
                   xlabel: str = "rollout horizon (frames)", title: str = "Rollout error") -> Path:
    """Relative L2 error against horizon, one line per label: ``curves[label] = (horizons, errors)``."""
    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.subplots()
    for label, (h, e) in curves.items():
        ax.plot(np.asarray(h), 100 * np.asarray(e, dtype=float), marker="o", ms=3, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("relative L2 error (%)")
    ax.set_yscale("log")
    _plain_log_ticks(ax.yaxis)
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title(title)
    ax.legend()
    return _save(fig, out)


def pareto_front(cost: Sequence[float], error: Sequence[float]) -> list[int]:
    """Indices of the points no other point beats on both cost and error (lower is better), by cost."""
    pts = sorted(range(len(cost)), key=lambda i: (cost[i], error[i]))
    front, best = [], math.inf
    for i in pts:
        if error[i] < best:
            front.append(i)
            best = error[i]
    return front


def _plain_log_ticks(axis: Any) -> None:
    """Label a log axis at 1-2-5 steps with plain numbers (readable also within one decade)."""
    axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.6g}"))
    axis.set_minor_formatter(NullFormatter())


def _pareto_panel(ax: Any, x: Sequence[float], err: Sequence[float], labels: Sequence[str],
                  xlabel: str) -> None:
    e = [100 * v for v in err]
    ax.scatter(x, e, s=36, zorder=3)
    for xi, ei, lab in zip(x, e, labels, strict=True):
        ax.annotate(lab, (xi, ei), textcoords="offset points", xytext=(5, 4), fontsize=8)
    front = pareto_front(x, e)
    if len(front) > 1:
        ax.step([x[i] for i in front], [e[i] for i in front], where="post", color="C3", alpha=0.7,
                label="Pareto front", zorder=2)
        ax.legend(fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test relative L2 error (%)")
    ax.grid(True, which="both", alpha=0.3)
    ax.margins(x=0.15, y=0.15)
    if min(x) > 0 and max(x) / min(x) < 10:  # less than a decade: widen it, label 1-2-5 ticks plainly
        mid = math.sqrt(max(x) * min(x))
        ax.set_xlim(mid / 4, mid * 4)
    _plain_log_ticks(ax.xaxis)


def pareto(points: Sequence[Mapping[str, Any]], out: Path,
           title: str = "Error against size and latency") -> Path:
    """Two panels: error vs trainable parameters and error vs latency (ms/sample, batch 1).

    Each point: ``{"label", "params", "latency_ms", "error"}`` (error a fraction).
    """
    if not points:
        raise ValueError("pareto: no points")
    labels = [str(p["label"]) for p in points]
    err = [float(p["error"]) for p in points]
    fig = Figure(figsize=(10.5, 4.2), layout="constrained")
    a1, a2 = fig.subplots(1, 2, sharey=True)
    _pareto_panel(a1, [float(p["params"]) for p in points], err, labels, "trainable parameters")
    _pareto_panel(a2, [float(p["latency_ms"]) for p in points], err, labels,
                  "inference latency (ms per sample, batch 1)")
    a2.set_ylabel("")
    fig.suptitle(title)
    return _save(fig, out)


def elastic_curves(records: Sequence[Mapping[str, Any]], out: Path,
                   title: str = "Elastic families beside networks trained alone") -> Path:
    """One-step test error against parameters and batch-1 latency: each elastic family (bench records with
    the same ``elastic["family"]``) a line through its slices by size, every other run a point.

    Records: bench records (``run``, ``params``, ``latency_b1["median_ms"]``, ``test_rel_l2``, ``elastic``).
    """
    pts = [r for r in records if r.get("test_rel_l2") is not None]
    if not pts:
        raise ValueError("elastic_curves: no records with a test error")
    fams: dict[str, list[Mapping[str, Any]]] = {}
    for r in pts:
        if r.get("elastic"):
            fams.setdefault(str(r["elastic"]["family"]), []).append(r)
    alone = [r for r in pts if not r.get("elastic")]
    fig = Figure(figsize=(10.5, 4.2), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    for ax, xkey, xlabel in ((axes[0], "params", "trainable parameters"),
                             (axes[1], "latency", "inference latency (ms, batch 1)")):
        def xval(r: Mapping[str, Any], k: str = xkey) -> float:
            return float(r["params"]) if k == "params" else float(r["latency_b1"]["median_ms"])

        for i, (fam, members) in enumerate(sorted(fams.items())):
            ms = sorted(members, key=lambda r: float(r["params"]))
            ax.plot([xval(r) for r in ms], [100 * float(r["test_rel_l2"]) for r in ms], "-o", color=f"C{i}",
                    label=f"elastic {Path(fam).name}", zorder=3)
            for r in ms:
                e = r["elastic"]
                first = e.get("blocks", e.get("modes"))  # (modes, rank) for an FNO family
                ax.annotate(f"({first}, {e['rank']})", (xval(r), 100 * float(r["test_rel_l2"])),
                            textcoords="offset points", xytext=(4, 4), fontsize=7)
        if alone:
            ax.scatter([xval(r) for r in alone], [100 * float(r["test_rel_l2"]) for r in alone], marker="s",
                       color="k", s=30, zorder=4, label="trained alone")
            for r in alone:
                ax.annotate(str(r["run"]), (xval(r), 100 * float(r["test_rel_l2"])),
                            textcoords="offset points", xytext=(4, -9), fontsize=7)
        ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.grid(True, which="both", alpha=0.3)
        ax.margins(x=0.15, y=0.15)
    axes[0].set_ylabel("one-step test relative L2 error (%)")
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    return _save(fig, out)


def solver_pareto(models: Sequence[Mapping[str, Any]], rows: Sequence[Mapping[str, Any]], out: Path,
                  title: str = "Surrogates against coarse solves") -> Path:
    """Error against wall seconds for the same frames: surrogates (circles) and coarse solves (squares).

    ``models``: ``{"name", "error", "seconds"}``; ``rows``: coarse-solver rows (``label``, ``error``,
    ``seconds``), as in ``bench.json["coarse"]``. The Pareto front is taken over both kinds together.
    """
    pts = [(str(m["name"]), float(m["seconds"]), float(m["error"]), "o") for m in models
           if m.get("error") is not None and m.get("seconds")]
    pts += [(f"FD {r['label']}", float(r["seconds"]), float(r["error"]), "s") for r in rows
            if r.get("error") is not None and r.get("seconds")]
    if not pts:
        raise ValueError("solver_pareto: no points with an error and a time")
    fig = Figure(figsize=(6.4, 4.4), layout="constrained")
    ax = fig.subplots()
    floor = min([e for *_, e, _ in pts if e > 0] or [1e-6])  # the fine solve's 0 error, on a log axis
    for marker, kind in (("o", "surrogate"), ("s", "coarse solve")):
        sel = [p for p in pts if p[3] == marker]
        if sel:
            ax.scatter([1e3 * p[1] for p in sel], [100 * max(p[2], floor / 10) for p in sel], marker=marker,
                       s=40, zorder=3, label=kind)
    for lab, s, e, _ in pts:
        ax.annotate(lab, (1e3 * s, 100 * max(e, floor / 10)), textcoords="offset points", xytext=(5, 4),
                    fontsize=8)
    x, y = [1e3 * p[1] for p in pts], [100 * max(p[2], floor / 10) for p in pts]
    front = pareto_front(x, y)
    if len(front) > 1:
        ax.step([x[i] for i in front], [y[i] for i in front], where="post", color="C3", alpha=0.7,
                label="Pareto front", zorder=2)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("wall ms for the predicted frames (one thread)")
    ax.set_ylabel("relative L2 error (%)")
    ax.grid(True, which="both", alpha=0.3)
    ax.margins(x=0.15, y=0.15)
    ax.legend(fontsize=8)
    ax.set_title(title)
    return _save(fig, out)


def training_curves(curves: Mapping[str, Sequence[Mapping[str, Any]]], out: Path,
                    title: str = "Training curves") -> Path:
    """Train (dashed) and validation (solid) loss against epoch, one colour per run (metrics.jsonl rows)."""
    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.subplots()
    for k, (label, rows) in enumerate(curves.items()):
        ep = [r["epoch"] for r in rows]
        for key, style, name in (("train_loss", "--", "train"), ("val_loss", "-", "validation")):
            ys = [r.get(key) for r in rows]
            if any(y is not None for y in ys):
                ax.plot(ep, [np.nan if y is None else y for y in ys], style, color=f"C{k}", marker="o", ms=3,
                        label=f"{label} ({name})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (normalised MSE)")
    ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    _plain_log_ticks(ax.yaxis)
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title(title)
    ax.legend(fontsize=8)
    return _save(fig, out)


def rollout_gif(true: np.ndarray, pred: np.ndarray, out: Path, times_s: Sequence[float] | None = None,
                fps: float = 8.0, title: str = "") -> Path:
    """Animated GIF: truth, prediction and error side by side for each frame of [frame, y, x] arrays."""
    from PIL import Image

    true, pred = np.asarray(true, dtype=np.float64), np.asarray(pred, dtype=np.float64)
    if true.shape != pred.shape or true.ndim != 3:
        raise ValueError(f"rollout_gif: expected equal [frame, y, x] arrays, got {true.shape}, {pred.shape}")
    vmax, emax = _symmetric_limit(true, pred), _symmetric_limit(pred - true)
    # A fixed GIF palette: the two colour maps at GIF_LEVELS levels each, plus greys for text and lines.
    fcmap, ecmap = colormaps[FIELD_CMAP].resampled(GIF_LEVELS), colormaps[ERROR_CMAP].resampled(GIF_LEVELS)
    greys = np.linspace(0, 1, 256 - 2 * GIF_LEVELS)[:, None].repeat(3, axis=1)
    levels = np.arange(GIF_LEVELS)
    palette = np.concatenate([fcmap(levels)[:, :3], ecmap(levels)[:, :3], greys])
    pal_img = Image.new("P", (1, 1))
    pal_img.putpalette(np.round(palette * 255).astype(np.uint8).ravel().tolist())
    fig = Figure(figsize=(9.0, 3.3), dpi=90, layout="constrained")
    canvas = FigureCanvasAgg(fig)
    axes = fig.subplots(1, 3)
    ims = []
    for ax, name, arr, cmap, lim in ((axes[0], "truth (solver)", true, fcmap, vmax),
                                     (axes[1], "surrogate rollout", pred, fcmap, vmax),
                                     (axes[2], "error", pred - true, ecmap, emax)):
        ims.append(ax.imshow(arr[0], cmap=cmap, vmin=-lim, vmax=lim, origin="lower", interpolation="nearest"))
        ax.set_title(name, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(ims[1], ax=axes[:2].tolist(), shrink=0.85, label="u (a.u.)")
    fig.colorbar(ims[2], ax=axes[2], shrink=0.85, label="error (a.u.)")
    def label(i: int) -> str:
        t = f"t = {times_s[i] * 1e3:.1f} ms" if times_s is not None else f"frame {i}"
        return f"{title}  {t}".strip()

    head = fig.suptitle(label(0))
    for a in (*ims, head):
        a.set_animated(True)  # drawn per frame over a background rendered once (blitting)
    canvas.draw()
    fig.set_layout_engine("none")  # keep the first frame's layout: faster, and no jitter
    background = canvas.copy_from_bbox(fig.bbox)
    frames = []
    for i in range(true.shape[0]):
        canvas.restore_region(background)
        for im, arr in zip(ims, (true, pred, pred - true), strict=True):
            im.set_data(arr[i])
        head.set_text(label(i))
        for a in (*ims, head, *(sp for ax in axes for sp in ax.spines.values())):
            fig.draw_artist(a)
        rgb = Image.fromarray(np.asarray(canvas.buffer_rgba())[..., :3].copy())
        frames.append(rgb.quantize(palette=pal_img, dither=Image.Dither.NONE))
    def write(tmp: str) -> None:
        frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:],
                       duration=round(1000.0 / fps), loop=0)

    return _write_atomic(out, write)

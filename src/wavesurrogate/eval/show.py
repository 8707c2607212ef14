"""``wavesurrogate show``: one case of a data file as a PNG grid of frames and an animated GIF."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from wavesurrogate.data.store import SPLITS, open_data
from wavesurrogate.io import atomic_path
from wavesurrogate.outputs import check_output_dir

FIELD_CMAP = "RdBu_r"
VELOCITY_CMAP = "viridis"
N_PANELS = 8  # frames in the PNG grid (plus the velocity panel)
MAX_GIF_FRAMES = 120
DPI = 100


def field_limit(fields: np.ndarray, skip_frames: int = 0) -> float:
    """Symmetric colour limit: 99.9th percentile of |u| (the source node spikes otherwise dominate)."""
    a = np.abs(np.asarray(fields[skip_frames:], dtype=np.float64))
    lim = float(np.percentile(a, 99.9)) if a.size else 0.0
    if not (lim > 0 and math.isfinite(lim)):
        lim = float(a.max()) if a.size and a.max() > 0 else 1.0
    return lim


def pick_frames(n_frames: int, n: int = N_PANELS) -> list[int]:
    """n frame indices spread evenly from the first to the last (all frames when there are fewer)."""
    if n_frames <= n:
        return list(range(n_frames))
    return [int(round(k)) for k in np.linspace(0, n_frames - 1, n)]


def _title(d, case: int) -> str:
    p = {k: v[case] for k, v in d.params.items()}
    bits = [f"case {case} ({SPLITS.get(int(d.split[case]), '?')})"]
    if "freq_hz" in p:
        bits.append(f"f = {p['freq_hz']:.1f} Hz")
    if "source_x_m" in p:
        bits.append(f"source ({p['source_x_m']:.0f}, {p['source_y_m']:.0f}) m")
    return ",  ".join(bits)


def frames_png(fields: np.ndarray, velocity: np.ndarray, t_s: np.ndarray, extent_m: tuple, out: Path,
               title: str = "", source_xy_m: tuple[float, float] | None = None) -> Path:
    """PNG: the velocity map then N_PANELS frames [frame, y, x] on one symmetric colour scale."""
    idx = pick_frames(fields.shape[0])
    lim = field_limit(fields)
    n = len(idx) + 1
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(3.2 * cols + 1.0, 3.0 * rows + 0.5), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False, sharex=True, sharey=True)
    kw = {"origin": "lower", "extent": extent_m, "interpolation": "nearest"}
    ax = axes[0, 0]
    vim = ax.imshow(velocity, cmap=VELOCITY_CMAP, **kw)
    ax.set_title("velocity c (m/s)", fontsize=10)
    fig.colorbar(vim, ax=ax, shrink=0.85)
    if source_xy_m is not None:
        ax.plot(*source_xy_m, marker="*", color="red", markersize=10, markeredgecolor="white")
    im = None
    for k, i in enumerate(idx, start=1):
        ax = axes.flat[k]
        im = ax.imshow(fields[i], cmap=FIELD_CMAP, vmin=-lim, vmax=lim, **kw)
        ax.set_title(f"t = {t_s[i] * 1e3:.1f} ms", fontsize=10)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("y (m)", fontsize=9)
    for ax in axes[-1, :]:
        ax.set_xlabel("x (m)", fontsize=9)
    for ax in axes.flat:
        ax.tick_params(labelsize=7)
    if im is not None:
        fig.colorbar(im, ax=axes.flat[1:n].tolist(), shrink=0.6, label="u (a.u.)", extend="both")
    if title:
        fig.suptitle(title, fontsize=11)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=DPI, format="png")
    return out


def frames_gif(fields: np.ndarray, t_s: np.ndarray, out: Path, title: str = "", fps: float = 12.0) -> Path:
    """Animated GIF of the wavefield (at most MAX_GIF_FRAMES frames), labelled with t in ms."""
    import imageio.v3 as iio

    step = max(1, math.ceil(fields.shape[0] / MAX_GIF_FRAMES))
    lim = field_limit(fields)
    fig = Figure(figsize=(4.2, 3.8), dpi=80, layout="constrained")
    canvas = FigureCanvasAgg(fig)
    ax = fig.subplots()
    im = ax.imshow(fields[0], cmap=colormaps[FIELD_CMAP], vmin=-lim, vmax=lim, origin="lower",
                   interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    fig.colorbar(im, ax=ax, shrink=0.85, label="u (a.u.)", extend="both")
    head = ax.set_title(f"{title}  t = {t_s[-1] * 1e3:.1f} ms".strip())  # widest label, for the layout
    canvas.draw()
    fig.set_layout_engine("none")  # freeze the layout: no jitter between frames
    head.set_text("")
    canvas.draw()
    background = canvas.copy_from_bbox(fig.bbox)  # everything but the image and the title
    images = []
    for i in range(0, fields.shape[0], step):  # blit: redraw only the image, its frame and the title
        canvas.restore_region(background)
        im.set_data(fields[i])
        head.set_text(f"{title}  t = {t_s[i] * 1e3:.1f} ms".strip())
        for artist in (im, *ax.spines.values(), head):
            ax.draw_artist(artist)
        images.append(np.asarray(canvas.buffer_rgba())[..., :3].copy())
    with atomic_path(out) as tmp:
        iio.imwrite(tmp, np.stack(images), extension=".gif", duration=round(1000.0 / fps), loop=0)
    return out


def show_case(path: str | Path, case: int, out_dir: str | Path, overwrite: bool = False) -> list[Path]:
    """Write ``case{N}.png`` (frames grid) and ``case{N}.gif`` (animation) for one case; returns both
    (existing ones replaced only with ``overwrite``)."""
    out_dir = Path(out_dir)
    check_output_dir(out_dir, [f"case{case:04d}.png", f"case{case:04d}.gif"], [path], overwrite=overwrite)
    with open_data(path) as d:
        fields, velocity = d.case(case)
        t = d.t
        hx, hy = d.dx / 2, d.dy / 2  # pixels centred on the nodes (a 1-node axis keeps a width)
        extent = (float(d.x[0]) - hx, float(d.x[-1]) + hx, float(d.y[0]) - hy, float(d.y[-1]) + hy)
        title = _title(d, case)
        p = d.params
        src = (float(p["source_x_m"][case]), float(p["source_y_m"][case])) if "source_x_m" in p else None
    png = frames_png(fields, velocity, t, extent, out_dir / f"case{case:04d}.png", title, src)
    gif = frames_gif(fields, t, out_dir / f"case{case:04d}.gif", f"case {case}")
    return [png, gif]

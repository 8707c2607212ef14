"""Room figures: written, readable PNGs of the expected size; the T30 panel reads metrics.room."""

from __future__ import annotations

import numpy as np
from PIL import Image

from wavesurrogate.eval import room_plots
from wavesurrogate.metrics.room import t30


def _decay(t60_s: float, n: int = 2000, fs: float = 4000.0, seed: int = 0) -> np.ndarray:
    t = np.arange(n) / fs
    return np.random.default_rng(seed).standard_normal(n) * np.exp(-3 * np.log(10) * t / t60_s)


def test_room_ir_and_decay_figures(tmp_path):
    room = {"min_m": [0, 0, 0], "max_m": [5, 4, 3],
            "obstacles": [{"x_m": [1, 2], "y_m": [1, 1.8], "z_m": [0, 0.75]}]}
    rng = np.random.default_rng(0)
    p = room_plots.room_layout(room, tmp_path / "room.png",
                               sources={"train": rng.uniform(0, 3, (20, 3)),
                                        "held out": rng.uniform(0, 3, (4, 3))},
                               receivers={"held out": rng.uniform(0, 3, (8, 3))})
    with Image.open(p) as im:
        assert im.format == "PNG" and im.size[0] > 3 * im.size[1] / 1.2
    true = np.stack([_decay(0.3, seed=s) for s in range(4)])
    pred = true * 1.05
    fs = 4000.0
    p = room_plots.impulse_responses(np.arange(true.shape[1]) / fs, pred[:2], true[:2], tmp_path / "ir.png")
    assert Image.open(p).format == "PNG"
    p = room_plots.decay_curves(pred, true, fs, tmp_path / "edc.png", show=2)
    assert Image.open(p).format == "PNG"
    # a scaled response has the same decay: T30 of the two agree (what the scatter panel shows)
    np.testing.assert_allclose(t30(pred, fs), t30(true, fs), rtol=1e-9)
    assert not list(tmp_path.glob(".*.tmp"))

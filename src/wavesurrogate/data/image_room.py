"""A 3-D campaign of analytic box-room impulse responses (image sources), in the data schema's layout.

Independent of the FD solvers: a file of exact (rigid walls) or image-source (R < 1) responses of a
Gaussian-pulse point source at a lattice of receivers, for tests of the 3-D surrogate path and as a
reference campaign. Schema ``wavesurrogate/2``, ``n_spatial_dims = 3``; the receivers are grid nodes of a
``spacing_m`` grid over the room (``traces/receivers``, index ``[R, 3]`` as (z, y, x)); the fields are not
recorded: one frame of zeros (the schema requires the dataset; a 3-D campaign's full field is optional).
Parameters ``source_x_m``, ``source_y_m``, ``source_z_m`` and ``freq_hz`` (f_max / 2.5, the points tasks'
``RICKER_BAND`` convention, so ``f_max_hz`` comes out as given).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import yaml

from wavesurrogate.data.writer import DataWriter
from wavesurrogate.physics.image_source import box_response

__all__ = ["write_image_room"]


def write_image_room(path: str | Path, *, room: tuple[float, float, float] = (5.0, 4.0, 3.0),
                     spacing_m: float = 0.25, sources: np.ndarray, split: np.ndarray | None = None,
                     receiver_stride: tuple[int, int, int] = (4, 4, 4), margin: int = 2,
                     duration_s: float = 0.1, fs_hz: float = 4000.0, f_max_hz: float = 500.0,
                     c_mps: float = 343.0, reflection: float = 0.9, seed: int = 0) -> Path:
    """Write the campaign: one case per row of ``sources`` ``[N, 3]`` (m), ``split`` per case (0 train,
    1 test; default all 0); receivers every ``receiver_stride`` (z, y, x) nodes from ``margin`` nodes inside
    the walls; traces of ``duration_s`` at ``fs_hz``. Atomic: nothing appears at ``path`` on failure."""
    sources = np.asarray(sources, np.float64).reshape(-1, 3)
    n = sources.shape[0]
    split = np.zeros(n, np.uint8) if split is None else np.asarray(split, np.uint8)
    x, y, z = (np.arange(int(round(length / spacing_m)) + 1) * spacing_m for length in room)
    ax = [np.arange(margin, len(a) - margin, s) for a, s in zip((z, y, x), receiver_stride, strict=True)]
    index = np.stack(np.meshgrid(*ax, indexing="ij"), axis=-1).reshape(-1, 3)  # (z, y, x) node indices
    rec_m = index[:, ::-1] * spacing_m  # (x, y, z) metres
    t = np.arange(int(round(duration_s * fs_hz))) / fs_hz
    cfg = {"image_source": {"room_m": list(room), "reflection": reflection, "c_mps": c_mps,
                            "f_max_hz": f_max_hz, "fs_hz": fs_hz, "duration_s": duration_s}, "obstacles": []}
    attrs = {"solver": "image_source", "space_order": 0, "dt": 1.0 / fs_hz, "frame_stride": 1,
             "boundary": f"image sources, R = {reflection:g}", "seed": int(seed), "package_version": "0",
             "config_yaml": yaml.safe_dump(cfg), "dx": spacing_m, "dy": spacing_m, "dz": spacing_m}
    names = ["freq_hz", "source_x_m", "source_y_m", "source_z_m"]
    with DataWriter(path, n_cases=n, n_frames=1, x=x, y=y, z=z, t=np.zeros(1), attrs=attrs,
                    param_names=names, solve_s=True, traces={"receivers": (t, index)}) as w:
        velocity = np.full((len(z), len(y), len(x)), c_mps, np.float32)
        zeros = np.zeros((1, len(z), len(y), len(x)), np.float32)
        for i, s in enumerate(sources):
            t0 = time.perf_counter()
            tr = box_response(s, rec_m, room, t, c_mps, f_max_hz, reflection).astype(np.float32)
            w.write_case(i, zeros, velocity, dict(zip(names, [f_max_hz / 2.5, *s], strict=True)),
                         split=int(split[i]), traces={"receivers": tr}, solve_s=time.perf_counter() - t0)
    return Path(path)

"""The ``record`` section of a campaign config: what each case stores (frames or a ZOI window, boundary
traces, FD receivers, solve time). Pure schema; ``config.campaign`` checks it against the grid and solver."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field, SerializerFunctionWrapHandler, model_serializer

from wavesurrogate.config.base import Strict
from wavesurrogate.errors import ConfigError

NonNegInt = Annotated[int, Field(strict=True, ge=0)]
PosInt = Annotated[int, Field(strict=True, gt=0)]

__all__ = ["ZoiConfig", "ReceiversConfig", "RecordConfig", "check_receivers", "check_record",
           "receiver_index"]


class ZoiConfig(Strict):
    """Zone of interest: nx × ny grid nodes from node (i0, j0); centred in the grid when i0/j0 are omitted."""

    nx: Annotated[int, Field(strict=True, ge=3)]
    ny: Annotated[int, Field(strict=True, ge=3)]
    i0: NonNegInt | None = None
    j0: NonNegInt | None = None


class ReceiversConfig(Strict):
    """FD receivers: an nx_r × ny_r (× nz_r) lattice of evenly spaced interior nodes, explicit ``[i, j(, k)]``
    nodes, or ``positions_m`` ``[x, y(, z)]`` in metres (each at its nearest node), sampled every ``stride``
    solver steps (stride divides time.frame_stride); stored as traces/receivers."""

    lattice: tuple[PosInt, PosInt] | tuple[PosInt, PosInt, PosInt] | None = None
    nodes: list[tuple[NonNegInt, NonNegInt] | tuple[NonNegInt, NonNegInt, NonNegInt]] | None = Field(
        None, min_length=1)
    positions_m: list[tuple[float, float] | tuple[float, float, float]] | None = Field(None, min_length=1)
    stride: PosInt = 1

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {k: v for k, v in handler(self).items() if v is not None}  # only the form given


class RecordConfig(Strict):
    """What each case stores: full frames or the ZOI window; the ZOI boundary every n steps; FD receivers;
    solve time."""

    frames: Literal["full", "zoi"] = "full"
    zoi: ZoiConfig | None = None
    boundary_trace_stride: Annotated[int, Field(strict=True, ge=1, le=5)] | None = None
    receivers: ReceiversConfig | None = None
    solve_s: bool = Field(False, description="store each case's solve wall time (s): bytes then vary")


_FORMS = "give exactly one of lattice, nodes [[i, j(, k)], ...] or positions_m [[x, y(, z)], ...]"


def check_receivers(r: ReceiversConfig | None, grid: Any, solver: str, frame_stride: int,
                    obstacles: Any = ()) -> None:
    """FD only; exactly one of lattice/nodes/positions_m, with one entry per grid axis; distinct nodes
    inside the grid and outside obstacles; stride divides frame_stride. ConfigError naming the field."""
    if r is None:
        return
    if solver != "fd":
        raise ConfigError("record.receivers: needs solver.kind 'fd'")
    if sum(x is not None for x in (r.lattice, r.nodes, r.positions_m)) != 1:
        raise ConfigError(f"record.receivers: {_FORMS}")
    nd, sizes = grid.ndim, (grid.nx, grid.ny, grid.nz)[:grid.ndim]
    given = r.lattice if r.lattice is not None else (r.nodes or r.positions_m)[0]
    if len(given) != nd or any(len(n) != nd for n in (r.nodes or r.positions_m or [])):
        names = "x, y, z" if nd == 3 else "x, y"
        raise ConfigError(f"record.receivers: need {nd} entries ({names}) per receiver")
    if r.lattice is not None and any(m > n - 2 for m, n in zip(r.lattice, sizes, strict=True)):
        raise ConfigError(f"record.receivers.lattice: at most {[n - 2 for n in sizes]} interior nodes, "
                          f"got {list(r.lattice)}")
    if r.nodes is not None:
        bad = [list(n) for n in r.nodes if any(i >= m for i, m in zip(n, sizes, strict=True))]
        if bad:
            raise ConfigError(f"record.receivers.nodes: {bad[0]} lies outside the grid of "
                              f"{' × '.join(map(str, sizes))} nodes")
        if len(set(r.nodes)) != len(r.nodes):
            raise ConfigError("record.receivers.nodes: nodes must be distinct")
    if r.positions_m is not None:
        lengths = (grid.lx, grid.ly, grid.lz)[:nd]
        bad = [list(p) for p in r.positions_m
               if any(not 0 <= v <= n for v, n in zip(p, lengths, strict=True))]
        if bad:
            raise ConfigError(f"record.receivers.positions_m: {bad[0]} lies outside the domain")
        idx = receiver_index(grid, r)
        if len({tuple(i) for i in idx.tolist()}) != len(idx):
            raise ConfigError("record.receivers.positions_m: two receivers share the nearest grid node")
    if obstacles:
        from wavesurrogate.physics.fd.boundaries import obstacle_mask

        idx, mask = receiver_index(grid, r), obstacle_mask(grid, obstacles)
        inside = mask[tuple(idx.T)]
        if inside.any():
            raise ConfigError(f"record.receivers: receiver {int(np.argmax(inside))} lies inside an obstacle")
    if frame_stride % r.stride:
        raise ConfigError(f"record.receivers.stride: must divide time.frame_stride ({frame_stride}), "
                          f"got {r.stride}")


def receiver_index(grid: Any, r: ReceiversConfig | None) -> np.ndarray | None:
    """Full-grid indices in array axis order (``(j, i)`` or ``(k, j, i)``) ``[n_receivers, ndim]`` int32 of
    ``r`` on a grid, or None.

    Nodes in the given order; positions at their nearest node; a lattice row by row from low y (then z),
    node m of n_r along an axis of n nodes at ``round((m + 1)·(n − 1)/(n_r + 1))`` (evenly spaced, edges
    excluded).
    """
    if r is None:
        return None
    nd = grid.ndim
    if r.nodes is not None:
        return np.array([tuple(n)[::-1] for n in r.nodes], dtype=np.int32).reshape(-1, nd)
    if r.positions_m is not None:
        h = np.asarray(grid.spacing[::-1])  # x, y(, z)
        return np.round(np.asarray(r.positions_m) / h).astype(np.int32)[:, ::-1].reshape(-1, nd)
    if r.lattice is None:
        raise ConfigError(f"record.receivers: {_FORMS}")

    def axis(m: int, n: int) -> np.ndarray:
        return np.round((np.arange(m) + 1) * (n - 1) / (m + 1)).astype(np.int32)

    sizes = (grid.nx, grid.ny, grid.nz)[:nd]
    per_axis = [axis(m, n) for m, n in zip(r.lattice, sizes, strict=True)][::-1]  # array order
    mesh = np.meshgrid(*per_axis, indexing="ij")
    return np.stack([m.ravel() for m in mesh], axis=1).astype(np.int32)


def check_record(cfg: Any) -> None:
    """ZOI inside the grid, trace stride dividing frame_stride, the source band inside the grid."""
    r, g, band = cfg.record, cfg.grid_obj(), cfg.source.zoi_band_m
    check_receivers(r.receivers, g, cfg.solver.kind, cfg.time.frame_stride, cfg.obstacle_objs())
    need = [k for k, used in (("record.frames: zoi", r.frames == "zoi"), ("source.zoi_band_m", band),
                              ("record.boundary_trace_stride", r.boundary_trace_stride)) if used]
    z = cfg.zoi_obj()
    if z is None:
        if need:
            raise ConfigError(f"record.zoi: required by {need[0]}")
        return
    from wavesurrogate.physics.zoi import check_zoi

    try:
        check_zoi(g, z)
    except ConfigError as exc:
        raise ConfigError(f"record.{exc}") from None
    i0, j0, nx, ny = z.i0, z.j0, z.nx, z.ny
    if r.boundary_trace_stride is not None:
        if cfg.solver.kind != "fe":
            raise ConfigError("record.boundary_trace_stride: needs solver.kind 'fe'")
        if cfg.time.frame_stride % r.boundary_trace_stride:
            raise ConfigError(f"time.frame_stride: must be a multiple of record.boundary_trace_stride "
                              f"({r.boundary_trace_stride}), got {cfg.time.frame_stride}")
    if band is not None:
        if cfg.source.x_m is not None or cfg.source.y_m is not None or cfg.source.kind == "none":
            raise ConfigError("source.zoi_band_m: replaces source.x_m/y_m and needs a source")
        if not band[0] < band[1]:
            raise ConfigError(f"source.zoi_band_m: needs min < max (a band of some width), got {list(band)}")
        x0, x1 = i0 * g.dx - band[1], (i0 + nx - 1) * g.dx + band[1]
        y0, y1 = j0 * g.dy - band[1], (j0 + ny - 1) * g.dy + band[1]
        if x0 < 0 or y0 < 0 or x1 > g.lx or y1 > g.ly:
            raise ConfigError(f"source.zoi_band_m: the band up to {band[1]:g} m around the ZOI leaves the "
                              f"grid [0, {g.lx:g}] × [0, {g.ly:g}] m")

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

__all__ = ["ZoiConfig", "ReceiversConfig", "RecordConfig", "check_receivers", "receiver_index"]


class ZoiConfig(Strict):
    """Zone of interest: nx × ny grid nodes from node (i0, j0); centred in the grid when i0/j0 are omitted."""

    nx: Annotated[int, Field(strict=True, ge=3)]
    ny: Annotated[int, Field(strict=True, ge=3)]
    i0: NonNegInt | None = None
    j0: NonNegInt | None = None


class ReceiversConfig(Strict):
    """FD receivers: an nx_r × ny_r lattice of evenly spaced interior nodes or explicit ``[i, j]`` nodes,
    sampled every ``stride`` solver steps (stride divides time.frame_stride); stored as traces/receivers."""

    lattice: tuple[PosInt, PosInt] | None = None
    nodes: list[tuple[NonNegInt, NonNegInt]] | None = Field(None, min_length=1)
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


def check_receivers(r: ReceiversConfig | None, nx: int, ny: int, solver: str, frame_stride: int) -> None:
    """FD only; exactly one of lattice/nodes; distinct nodes inside the nx × ny grid; stride divides
    frame_stride. ConfigError naming the field."""
    if r is None:
        return
    if solver != "fd":
        raise ConfigError("record.receivers: needs solver.kind 'fd'")
    if (r.lattice is None) == (r.nodes is None):
        raise ConfigError("record.receivers: give exactly one of lattice [nx_r, ny_r] or nodes [[i, j], ...]")
    if r.lattice is not None and (r.lattice[0] > nx - 2 or r.lattice[1] > ny - 2):
        raise ConfigError(f"record.receivers.lattice: at most [{nx - 2}, {ny - 2}] interior nodes, "
                          f"got {list(r.lattice)}")
    if r.nodes is not None:
        bad = [list(n) for n in r.nodes if n[0] >= nx or n[1] >= ny]
        if bad:
            raise ConfigError(f"record.receivers.nodes: {bad[0]} lies outside the grid of {nx} × {ny} nodes")
        if len(set(r.nodes)) != len(r.nodes):
            raise ConfigError("record.receivers.nodes: nodes must be distinct")
    if frame_stride % r.stride:
        raise ConfigError(f"record.receivers.stride: must divide time.frame_stride ({frame_stride}), "
                          f"got {r.stride}")


def receiver_index(nx: int, ny: int, r: ReceiversConfig | None) -> np.ndarray | None:
    """Full-grid indices ``(j, i)`` ``[n_receivers, 2]`` int32 of ``r`` on an nx × ny grid, or None.

    Nodes in the given order; a lattice row by row from low y, node k of n_r along an axis of n nodes at
    ``round((k + 1)·(n − 1)/(n_r + 1))``, k = 0 … n_r − 1 (evenly spaced, edges excluded).
    """
    if r is None:
        return None
    if r.nodes is not None:
        return np.array([(j, i) for i, j in r.nodes], dtype=np.int32).reshape(-1, 2)
    if r.lattice is None:
        raise ConfigError("record.receivers: give exactly one of lattice [nx_r, ny_r] or nodes [[i, j], ...]")

    def axis(m: int, n: int) -> np.ndarray:
        return np.round((np.arange(m) + 1) * (n - 1) / (m + 1)).astype(np.int32)

    jj, ii = np.meshgrid(axis(r.lattice[1], ny), axis(r.lattice[0], nx), indexing="ij")
    return np.stack([jj.ravel(), ii.ravel()], axis=1).astype(np.int32)

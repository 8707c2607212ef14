"""The 3-D room parts of a campaign config: walls per face (rigid, absorbing, impedance Z) and rigid
obstacles as boxes. Pure schema; ``config.campaign`` checks them against the grid."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, SerializerFunctionWrapHandler, model_serializer

from wavesurrogate.config.base import Strict
from wavesurrogate.errors import ConfigError
from wavesurrogate.physics.problem import Boundary, Box

PosFloat = Annotated[float, Field(strict=True, gt=0)]
NonNegInt = Annotated[int, Field(strict=True, ge=0)]
Interval = tuple[Annotated[float, Field(strict=True)], Annotated[float, Field(strict=True)]]
FACES = ("x_lo", "x_hi", "y_lo", "y_hi", "z_lo", "z_hi")

__all__ = ["FACES", "ObstacleConfig", "WallConfig", "WallsConfig", "check_room", "face_walls",
           "obstacle_boxes"]


class _DropNone(Strict):
    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {k: v for k, v in handler(self).items() if v is not None}  # only what was given


class WallConfig(_DropNone):
    """One wall: rigid (``neumann``), ``dirichlet``, ``absorbing`` (a sponge of ``width`` cells) or
    ``impedance`` (real Z in Pa·s/m: normal-incidence reflection (ξ−1)/(ξ+1), ξ = Z/(ρc))."""

    kind: Literal["absorbing", "dirichlet", "neumann", "impedance"]
    width: NonNegInt | None = None
    impedance_rayl: PosFloat | None = None


class WallsConfig(_DropNone):
    """Per-face walls; a face not given takes ``boundary.kind`` (and its width / impedance)."""

    x_lo: WallConfig | None = None
    x_hi: WallConfig | None = None
    y_lo: WallConfig | None = None
    y_hi: WallConfig | None = None
    z_lo: WallConfig | None = None
    z_hi: WallConfig | None = None


class ObstacleConfig(_DropNone):
    """A rigid box (furniture): the grid nodes in [x0, x1] × [y0, y1] × [z0, z1] metres (a range may reach
    past a wall, so that the box stands against it: the wall node is then inside)."""

    name: str | None = None
    x_m: Interval
    y_m: Interval
    z_m: Interval | None = None


def face_walls(boundary: Any, ndim: int) -> Boundary | tuple:
    """The physics boundary of a config's ``boundary`` section: one Boundary when every face is the same,
    else per axis (array order) a pair (low, high)."""
    rho = boundary.rho_kgm3
    default = Boundary(boundary.kind, boundary.width, boundary.impedance_rayl, rho)
    walls = boundary.walls
    if walls is None:
        return default
    axes = ("z", "y", "x")[3 - ndim:]
    out = []
    for a in axes:
        pair = []
        for side in ("lo", "hi"):
            w = getattr(walls, f"{a}_{side}")
            pair.append(default if w is None else Boundary(
                w.kind, boundary.width if w.width is None else w.width,
                w.impedance_rayl if w.impedance_rayl is not None else boundary.impedance_rayl, rho))
        out.append(tuple(pair))
    return tuple(out)


def obstacle_boxes(obstacles: list[ObstacleConfig]) -> tuple[Box, ...]:
    """The physics boxes of the config's obstacles."""
    return tuple(Box(tuple(o.x_m), tuple(o.y_m), None if o.z_m is None else tuple(o.z_m)) for o in obstacles)


def check_room(cfg: Any) -> None:
    """Walls, obstacles and solver agree with the grid (2-D or 3-D); ConfigError naming the field."""
    b, ndim = cfg.boundary, 2 if cfg.grid.nz is None else 3
    if b.walls is not None:
        for face in FACES:
            w = getattr(b.walls, face)
            if w is not None and face.startswith("z") and ndim == 2:
                raise ConfigError(f"boundary.walls.{face}: a 2-D grid has no z faces")
            if w is not None and w.kind == "impedance" and (w.impedance_rayl or b.impedance_rayl) is None:
                raise ConfigError(f"boundary.walls.{face}.impedance_rayl: an impedance wall needs Z (Pa·s/m)")
            if w is not None and w.kind == "absorbing" and (b.width if w.width is None else w.width) < 1:
                raise ConfigError(f"boundary.walls.{face}.width: an absorbing layer needs ≥ 1 cell")
    if b.kind == "impedance" and b.impedance_rayl is None:
        raise ConfigError("boundary.impedance_rayl: an impedance wall needs Z (Pa·s/m)")
    lengths = {"x_m": cfg.grid_obj().lx, "y_m": cfg.grid_obj().ly, "z_m": cfg.grid_obj().lz}
    for k, o in enumerate(cfg.obstacles):
        if (o.z_m is None) != (ndim == 2):
            why = "required on a 3-D grid" if ndim == 3 else "not on a 2-D grid"
            raise ConfigError(f"obstacles[{k}].z_m: {why}")
        for name in ("x_m", "y_m", "z_m")[:ndim]:
            lo, hi = getattr(o, name)
            if not (lo < hi and lo <= lengths[name] and hi >= 0):  # may reach past a wall: clipped
                raise ConfigError(f"obstacles[{k}].{name}: needs min < max overlapping "
                                  f"[0, {lengths[name]:.6g}] m, got [{lo}, {hi}]")
    uses = [n for n, used in (("a 3-D grid", ndim == 3), ("obstacles", bool(cfg.obstacles)),
                              ("per-face walls", b.walls is not None), ("impedance walls", _any_impedance(b)))
            if used]
    if uses and cfg.solver.kind != "fd":
        raise ConfigError(f"solver.kind: {uses[0]} needs the FD solver")
    if ndim == 3 and cfg.record.frames == "zoi":
        raise ConfigError("record.frames: the ZOI window is 2-D only")


def _any_impedance(b: Any) -> bool:
    return b.kind == "impedance" or (b.walls is not None and any(
        getattr(b.walls, f) is not None and getattr(b.walls, f).kind == "impedance" for f in FACES))

"""Campaign configs: what to simulate, with ranges to sample from; pure schema, no solver is built here.

A *range* is a scalar (fixed value) or ``[min, max]`` (uniform draw per case, min ≤ max). Loading checks
types, signs, ranges, the domain and the memory one case needs. The medium file and the CFL bound, which
fix one time step ``time.dt_s`` for the whole campaign, are checked by ``wavesurrogate.data.cases.resolve``
before anything is written.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import (
    AfterValidator,
    Field,
    PlainSerializer,
    PlainValidator,
    SerializerFunctionWrapHandler,
    model_serializer,
)
from pydantic_core import PydanticCustomError

from wavesurrogate.config.base import Strict, read_yaml, validate
from wavesurrogate.config.record import (  # noqa: F401  (RecordConfig, ZoiConfig: re-exported)
    RecordConfig,
    ZoiConfig,
    check_receivers,
    check_record,
    receiver_index,
)
from wavesurrogate.config.room import ObstacleConfig, WallsConfig, check_room, face_walls, obstacle_boxes
from wavesurrogate.errors import ConfigError
from wavesurrogate.limits import MAX_MAGNITUDE, MAX_SEED, MAX_SOLVER_STEPS, memory_bytes
from wavesurrogate.physics.problem import Boundary, Box, Grid, TimeAxis

MIN_POSITIVE = 1.0 / MAX_MAGNITUDE  # a positive float below this is refused (its square's inverse overflows)
Float = Annotated[float, Field(strict=True, ge=-MAX_MAGNITUDE, le=MAX_MAGNITUDE)]


def _not_tiny(v: float) -> float:
    if 0 < v < MIN_POSITIVE:
        raise PydanticCustomError("too_small", f"must be at least {MIN_POSITIVE:g}, got {v}")
    return v


PosFloat = Annotated[float, Field(strict=True, gt=0, le=MAX_MAGNITUDE), AfterValidator(_not_tiny)]
NonNegFloat = Annotated[float, Field(strict=True, ge=0, le=MAX_MAGNITUDE)]
MAX_CASES = 1_000_000  # cases (and test cases) of one campaign, listed up front: 0.1 s each is a day
PosInt = Annotated[int, Field(strict=True, gt=0)]
NonNegInt = Annotated[int, Field(strict=True, ge=0)]
Seed = Annotated[int, Field(strict=True, ge=0, le=MAX_SEED)]


def _number(v: object) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise PydanticCustomError("range_type", f"expected a number or [min, max], got {type(v).__name__}")
    if not math.isfinite(v):
        raise PydanticCustomError("range_finite", "must be a finite number")
    if abs(v) > MAX_MAGNITUDE or 0 < abs(v) < MIN_POSITIVE:
        raise PydanticCustomError("range_magnitude", f"must be 0 or of magnitude {MIN_POSITIVE:g} … "
                                  f"{MAX_MAGNITUDE:g}, got {v}")
    return float(v)


def _range(low: float | None = None, strict_low: bool = False, below: float | None = None,
           pair_only: bool = False) -> PlainValidator:
    """Validator of a range: a number or [min, max] (min ≤ max), finite, above ``low``, below ``below``."""

    def parse(v: object) -> float | tuple[float, float]:
        if isinstance(v, list | tuple):
            if len(v) != 2:
                raise PydanticCustomError("range_len", f"expected [min, max], got {len(v)} values")
            lo, hi = _number(v[0]), _number(v[1])
            if lo > hi:
                raise PydanticCustomError("range_order", f"needs min <= max, got [{lo}, {hi}]")
            out: float | tuple[float, float] = (lo, hi)
        elif pair_only:
            raise PydanticCustomError("range_pair", "expected [min, max]")
        else:
            lo = hi = _number(v)
            out = lo
        if low is not None and (lo <= low if strict_low else lo < low):
            raise PydanticCustomError("range_low", f"must be {'>' if strict_low else '>='} {low:g}, got {lo}")
        if below is not None and hi >= below:
            raise PydanticCustomError("range_high", f"must be below {below:.4g}, got {hi}")
        return out

    return PlainValidator(parse)


def _dump_range(v: float | tuple[float, float]) -> float | list[float]:
    return list(v) if isinstance(v, tuple) else v


_SER = PlainSerializer(_dump_range, return_type=Any)
Range = Annotated[float | tuple[float, float], _range(), _SER]
PosRange = Annotated[float | tuple[float, float], _range(0.0, strict_low=True), _SER]
PosPair = Annotated[tuple[float, float], _range(0.0, strict_low=True, pair_only=True), _SER]
Contrast = Annotated[float | tuple[float, float], _range(0.0, below=1 / 3), _SER]
Gradient = Annotated[float | tuple[float, float], _range(-1.0, strict_low=True, below=1.0), _SER]
Band = Annotated[tuple[float, float], _range(0.0, pair_only=True), _SER]


def bounds(r: float | tuple[float, float]) -> tuple[float, float]:
    """(min, max) of a range given as a scalar or a pair."""
    return (float(r[0]), float(r[1])) if isinstance(r, tuple) else (float(r), float(r))


class SolverConfig(Strict):
    """Which ground-truth solver: finite differences (order 2 or 4, devito or numpy) or finite elements."""

    kind: Literal["fd", "fe"] = "fd"
    space_order: Literal[2, 4] = 4
    backend: Literal["devito", "numpy"] = "devito"
    element: Literal["p1", "q1"] = "p1"


class GridConfig(Strict):
    """nx × ny (× nz) nodes, spacings in metres; nz and dz_m together make a 3-D box."""

    nx: Annotated[int, Field(strict=True, ge=3)]
    ny: Annotated[int, Field(strict=True, ge=3)]
    dx_m: PosFloat
    dy_m: PosFloat
    nz: Annotated[int, Field(strict=True, ge=3)] | None = None
    dz_m: PosFloat | None = None


class TimeConfig(Strict):
    """n_frames stored frames, one every frame_stride solver steps; dt_s from the CFL bound when omitted."""

    n_frames: Annotated[int, Field(strict=True, ge=2)]
    frame_stride: PosInt = 1
    dt_s: PosFloat | None = None
    cfl_safety: Annotated[float, Field(strict=True, gt=0, le=1)] = 0.9


class BoundaryConfig(Strict):
    """Boundary on all faces (``walls``: per face); an absorbing layer is ``width`` cells thick; an
    impedance wall has real impedance ``impedance_rayl`` (Pa·s/m) in air of density ``rho_kgm3``."""

    kind: Literal["absorbing", "dirichlet", "neumann", "impedance"] = "absorbing"
    width: NonNegInt = 20
    impedance_rayl: PosFloat | None = None
    rho_kgm3: PosFloat = 1.2
    walls: WallsConfig | None = None

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        d = handler(self)  # a 2-D config without the room keys dumps (and is stored) exactly as before
        for k in ("impedance_rayl", "walls"):
            if d.get(k) is None:
                d.pop(k, None)
        if self.rho_kgm3 == 1.2 and self.impedance_rayl is None and self.walls is None:
            d.pop("rho_kgm3", None)
        return d


class ConstantMedium(Strict):
    """Homogeneous medium with speed c_mps (m/s)."""

    kind: Literal["constant"]
    c_mps: PosRange


class LayeredMedium(Strict):
    """Horizontal layers: one velocity range per layer, fixed interface depths along y (m)."""

    kind: Literal["layered"]
    velocities_mps: list[PosRange] = Field(min_length=1)
    interfaces_m: list[Float] = Field(default_factory=list)


class GRFMedium(Strict):
    """Smooth Gaussian random field c = mean·(1 + contrast·z), z clipped at ±3 (so contrast < 1/3)."""

    kind: Literal["grf"]
    mean_mps: PosRange
    contrast: Contrast
    correlation_length_m: PosRange


class InclusionsMedium(Strict):
    """Background with n random circular inclusions (radius and speed drawn from ranges)."""

    kind: Literal["inclusions"]
    background_mps: PosRange
    n: NonNegInt = 3
    radius_m: PosPair
    c_mps: PosPair


class GradientMedium(Strict):
    """Vertical gradient c = c0·(1 + gradient·(y − ly/2)/(ly/2)) in m/s (|gradient| < 1)."""

    kind: Literal["gradient"]
    c0_mps: PosRange
    gradient: Gradient


class FileMedium(Strict):
    """One fixed velocity model from a .npy file or an HDF5 dataset (path relative to the config file)."""

    kind: Literal["file"]
    path: str
    dataset: str | None = None


Medium = Annotated[ConstantMedium | LayeredMedium | GRFMedium | InclusionsMedium | GradientMedium
                   | FileMedium, Field(discriminator="kind")]


class SourceConfig(Strict):
    """Source term; positions default to the whole domain. Ranges are sampled per case."""

    kind: Literal["point", "gaussian", "none"] = "point"
    wavelet: Literal["ricker", "gaussian"] = "ricker"
    x_m: Range | None = None
    y_m: Range | None = None
    z_m: Range | None = None
    freq_hz: PosRange = 10.0
    amplitude: Range = 1.0
    width_m: PosFloat | None = None
    delay_s: NonNegFloat | None = None
    zoi_band_m: Band | None = Field(None, description="[lo, hi] Chebyshev distance outside record.zoi, m")


class InitialConfig(Strict):
    """Initial displacement: zero, a Gaussian pulse (ranges sampled per case) or a standing mode (m, n)."""

    kind: Literal["zero", "gaussian", "mode"] = "zero"
    x_m: Range | None = None
    y_m: Range | None = None
    z_m: Range | None = None
    width_m: PosRange = 1.0
    amplitude: Range = 1.0
    m: PosInt = 1
    n: PosInt = 1


class CampaignConfig(Strict):
    """A simulation campaign: N training cases (seed) and T test cases (test_seed) from the same ranges."""

    name: str = "campaign"
    seed: Seed = 0
    cases: Annotated[int, Field(strict=True, gt=0, le=MAX_CASES)]  # bounded: cases are listed up front
    test_cases: Annotated[int, Field(strict=True, ge=0, le=MAX_CASES)] = 0
    test_seed: Seed = 1
    solver: SolverConfig = Field(default_factory=SolverConfig)
    grid: GridConfig
    time: TimeConfig
    boundary: BoundaryConfig = Field(default_factory=BoundaryConfig)
    medium: Medium
    source: SourceConfig = Field(default_factory=SourceConfig)
    initial: InitialConfig = Field(default_factory=InitialConfig)
    record: RecordConfig = Field(default_factory=RecordConfig)
    obstacles: list[ObstacleConfig] = Field(default_factory=list)

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        d = handler(self)  # configs without the record keys dump (and are stored) exactly as before them
        if not self.obstacles:
            d.pop("obstacles", None)
        for section, keys in (("grid", ("nz", "dz_m")), ("source", ("z_m",)), ("initial", ("z_m",))):
            for k in keys:
                if isinstance(d.get(section), dict) and d[section].get(k) is None:
                    d[section].pop(k, None)
        if self.record == RecordConfig():
            d.pop("record", None)
        elif self.record.receivers is None and isinstance(d.get("record"), dict):
            d["record"].pop("receivers", None)
        if self.source.zoi_band_m is None and isinstance(d.get("source"), dict):
            d["source"].pop("zoi_band_m", None)
        return d

    @property
    def n_total(self) -> int:
        """Training plus test cases."""
        return self.cases + self.test_cases

    def grid_obj(self) -> Grid:
        """The physics Grid (3-D when grid.nz is given)."""
        return Grid(self.grid.nx, self.grid.ny, self.grid.dx_m, self.grid.dy_m, self.grid.nz, self.grid.dz_m)

    def time_obj(self) -> TimeAxis:
        """The physics TimeAxis (requires the resolved dt_s)."""
        if self.time.dt_s is None:
            raise ValueError("time.dt_s not resolved: use wavesurrogate.data.cases.resolve or load_campaign")
        return TimeAxis(self.time.dt_s, self.time.n_frames, self.time.frame_stride)

    def boundary_obj(self) -> Boundary | tuple:
        """The physics Boundary (one for every face), or per axis (array order) pairs (low, high)."""
        return face_walls(self.boundary, self.grid_obj().ndim)

    def obstacle_objs(self) -> tuple[Box, ...]:
        """The physics boxes of the obstacles."""
        return obstacle_boxes(self.obstacles)

    def receiver_index(self) -> np.ndarray | None:
        """Full-grid indices ((k,) j, i) of record.receivers ``[n_receivers, ndim]`` int32, or None."""
        return receiver_index(self.grid_obj(), self.record.receivers)

    def zoi_obj(self) -> Any:
        """The physics Zoi of record.zoi (centred unless i0/j0 are given), or None."""
        from wavesurrogate.physics.zoi import Zoi

        z = self.record.zoi
        return None if z is None else Zoi((self.grid.nx - z.nx) // 2 if z.i0 is None else z.i0,
                                          (self.grid.ny - z.ny) // 2 if z.j0 is None else z.j0, z.nx, z.ny)


def _check_inside(name: str, r: float | tuple[float, float] | None, length: float) -> None:
    if r is None:
        return
    lo, hi = bounds(r)
    if lo < 0 or hi > length:
        raise ConfigError(f"{name}: must lie within the domain [0, {length:.6g}] m, got {r}")


FE_BYTES_PER_NODE = 4096  # peak memory of FESolver set-up, measured 2.6–4.0 KB per node (p1/q1, 150²–300²)


def _check_size(cfg: CampaignConfig) -> None:
    """ConfigError if one case's frames (float32), or the FE solver's set-up, cannot fit in memory."""
    g, t = cfg.grid, cfg.time
    need, have = 4 * g.nx * g.ny * (g.nz or 1) * t.n_frames, memory_bytes()
    if have is not None and need > have:
        nz = f" · {g.nz}" if g.nz else ""
        names = f"grid.nx · grid.ny{' · grid.nz' if g.nz else ''} · time.n_frames"
        raise ConfigError(f"grid: one case of {names} = {g.nx} · {g.ny}{nz} · {t.n_frames} float32 values "
                          f"needs {need / 1e9:.3g} GB, more than the "
                          f"{have / 1e9:.3g} GB of memory available")
    pad = 2 * cfg.boundary.width if cfg.boundary.kind == "absorbing" else 0
    fe_need = FE_BYTES_PER_NODE * (g.nx + pad) * (g.ny + pad)
    if cfg.solver.kind == "fe" and have is not None and fe_need > have:  # built by resolve for the CFL
        raise ConfigError(f"grid: the FE solver on {g.nx} × {g.ny} nodes needs about {fe_need / 1e9:.3g} GB "
                          f"(~{FE_BYTES_PER_NODE} bytes per node), more than the "
                          f"{have / 1e9:.3g} GB of memory available")


def check_campaign(cfg: CampaignConfig, base_dir: Path | None = None) -> CampaignConfig:
    """Cross-field checks (size, domain, seeds, layers) without solvers; a medium path made absolute.

    The time step is fixed later, from the solvers' CFL bound: ``wavesurrogate.data.cases.resolve``.
    """
    _check_size(cfg)
    if (cfg.grid.nz is None) != (cfg.grid.dz_m is None):
        raise ConfigError("grid: give both nz and dz_m (a 3-D box) or neither")
    check_room(cfg)
    if cfg.grid.nz is not None and not isinstance(cfg.medium, ConstantMedium | FileMedium):
        raise ConfigError(f"medium.kind: a 3-D grid takes 'constant' or 'file', got {cfg.medium.kind!r}")
    if cfg.grid.nz is None and (cfg.source.z_m is not None or cfg.initial.z_m is not None):
        raise ConfigError("source.z_m: only on a 3-D grid (grid.nz, grid.dz_m)")
    steps = (cfg.time.n_frames - 1) * cfg.time.frame_stride
    if steps > MAX_SOLVER_STEPS:
        raise ConfigError(f"time.frame_stride: (time.n_frames - 1) · time.frame_stride = {steps} solver "
                          f"steps per case, more than the {MAX_SOLVER_STEPS} allowed")
    if isinstance(cfg.medium, FileMedium) and "\x00" in cfg.medium.path:
        raise ConfigError("medium.path: must not contain a NUL character")
    if isinstance(cfg.medium, FileMedium) and base_dir is not None:
        p = Path(cfg.medium.path)
        if not p.is_absolute():
            p = (base_dir / p).resolve()
        cfg = cfg.model_copy(update={"medium": cfg.medium.model_copy(update={"path": str(p)})})
    g = cfg.grid_obj()
    if cfg.test_cases > 0 and cfg.test_seed == cfg.seed:
        raise ConfigError("test_seed: must differ from seed so that test cases are drawn independently")
    if isinstance(cfg.medium, LayeredMedium):
        if len(cfg.medium.velocities_mps) != len(cfg.medium.interfaces_m) + 1:
            raise ConfigError("medium.interfaces_m: need exactly one interface fewer than velocities_mps")
        if any(b <= a for a, b in zip(cfg.medium.interfaces_m, cfg.medium.interfaces_m[1:], strict=False)):
            raise ConfigError("medium.interfaces_m: interfaces must increase")
    for name, r, length in (("source.x_m", cfg.source.x_m, g.lx), ("source.y_m", cfg.source.y_m, g.ly),
                            ("source.z_m", cfg.source.z_m, g.lz), ("initial.x_m", cfg.initial.x_m, g.lx),
                            ("initial.y_m", cfg.initial.y_m, g.ly), ("initial.z_m", cfg.initial.z_m, g.lz)):
        _check_inside(name, r, length)
    check_record(cfg)
    if cfg.source.kind == "none" and cfg.initial.kind == "zero":
        raise ConfigError("source.kind: 'none' with initial.kind 'zero' gives an all-zero wavefield")
    return cfg


def load_campaign_config(path: str | Path) -> CampaignConfig:
    """Read and check a campaign config (schema only: no solver, no medium file read, ``time.dt_s`` as given).

    One-line ConfigError naming the field otherwise. ``wavesurrogate.data.cases.load_campaign`` also
    resolves the time step.
    """
    path = Path(path)
    cfg = validate(CampaignConfig, read_yaml(path), source=str(path))
    try:
        return check_campaign(cfg, base_dir=path.parent)
    except ConfigError as exc:
        raise type(exc)(f"{path}: {exc}") from None

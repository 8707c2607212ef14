"""Devito backend of the FD solver: one compiled Operator per layout, reused for every run.

The Operator advances the computational grid (ghosts included) over a time range: the stencil update on
the updated nodes (a SubDomain), the source injected at precomputed grid points, Dirichlet edges zeroed,
ghosts filled by odd/even extension, and every ``stride``-th state saved into a snapshot buffer. Sign and
edge factors are runtime constants, so one Operator serves Dirichlet and Neumann alike.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from wavesurrogate.physics.fd.core import Arrays, Layout


def _configure_devito() -> None:
    """Quiet, single-threaded C (campaigns parallelise across processes), IEEE-safe maths.

    Without ``safe-math`` devito compiles with -ffast-math, and loading such a shared object sets the
    processor's flush-to-zero/denormals-are-zero flags for the whole process: subnormal numbers then vanish
    in NumPy, torch and everything else that runs after a solve (hypothesis detects it and refuses to run).
    """
    from devito import configuration

    configuration["log-level"] = "WARNING"
    configuration["language"] = "C"
    configuration["safe-math"] = True


class DevitoStepper:
    """Compiled leapfrog Operator for one layout, order, dtype, sponge flag and number of frames."""

    def __init__(self, layout: Layout, space_order: int, dtype: Any, damped: bool, n_frames: int):
        _configure_devito()
        self.layout, self.space_order, self.dtype = layout, space_order, np.dtype(dtype)
        self.damped, self.n_frames = damped, n_frames
        self._op: Any = None
        self._pool: ThreadPoolExecutor | None = None
        self._n_points = 0
        self._nt = 0

    def _thread(self) -> ThreadPoolExecutor:
        """The one worker thread that runs the Operator (created on first use)."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="devito")
        return self._pool

    def _build(self, nt: int, n_points: int) -> None:
        from devito import (
            ConditionalDimension,
            Constant,
            Eq,
            Function,
            Grid,
            Operator,
            PrecomputedSparseTimeFunction,
            SubDomain,
            TimeFunction,
        )

        lay, so, g = self.layout, self.space_order, self.layout.ghost

        class Updated(SubDomain):
            name = "updated"

            def define(self, dimensions):
                return {d: ("middle", g, g) for d in dimensions}

        grid = Grid(shape=lay.shape, extent=tuple(float(n - 1) for n in lay.shape), dtype=self.dtype.type)
        updated = Updated(grid=grid)
        y, x = grid.dimensions
        t = grid.stepping_dim
        kw = {"grid": grid, "space_order": 0, "dtype": self.dtype.type}
        u = TimeFunction(name="u", time_order=2, **kw)
        bx, by = Function(name="bx", **kw), Function(name="by", **kw)
        consts = {k: Constant(name=k, dtype=self.dtype.type) for k in ("sy", "ey", "sx", "ex", "my", "mx")}
        kappa_x, kappa_y = Function(name="kappa_x", **kw), Function(name="kappa_y", **kw)

        def U(dy: int = 0, dx: int = 0) -> Any:
            return u[t, y + dy, x + dx]

        if so == 2:
            lap = (bx[y, x] * (U(0, 1) - U()) - bx[y, x - 1] * (U() - U(0, -1))
                   + by[y, x] * (U(1, 0) - U()) - by[y - 1, x] * (U() - U(-1, 0)))
        else:  # fluxes b·D₊u into temporaries first: each is computed once instead of four times

            class Faces(SubDomain):  # both flux arrays on one region, so that devito fuses the loops
                name = "faces"

                def define(self, dimensions):
                    return {d: ("middle", 1, 2) for d in dimensions}

            faces = Faces(grid=grid)
            fx, fy = Function(name="fx", **kw), Function(name="fy", **kw)
            pre = [Eq(fx[y, x], bx[y, x] * (27 * (U(0, 1) - U()) - (U(0, 2) - U(0, -1))), subdomain=faces),
                   Eq(fy[y, x], by[y, x] * (27 * (U(1, 0) - U()) - (U(2, 0) - U(-1, 0))), subdomain=faces)]
            lap = (27 * (fx[y, x] - fx[y, x - 1]) - (fx[y, x + 1] - fx[y, x - 2])
                   + 27 * (fy[y, x] - fy[y - 1, x]) - (fy[y + 1, x] - fy[y - 2, x]))
        if self.damped:  # r = 1/(1+a): u⁺ = (2u − (1−a)u⁻ + L)/(1+a) = u⁻ + r·(2u − 2u⁻ + L), no division
            damp = Function(name="rdamp", **kw)  # holds r, not a
            rhs = u[t - 1, y, x] + damp[y, x] * (2 * U() - 2 * u[t - 1, y, x] + lap)
        else:
            damp = None
            rhs = 2 * U() - u[t - 1, y, x] + lap
        eqs = (pre if so == 4 else []) + [Eq(u[t + 1, y, x], rhs, subdomain=updated)]
        src = PrecomputedSparseTimeFunction(
            name="src", grid=grid, npoint=n_points, nt=nt, r=2, dtype=self.dtype.type,
            gridpoints=np.zeros((n_points, 2), dtype=np.int32),
            interpolation_coeffs=np.zeros((n_points, 2, 2), dtype=self.dtype))
        eqs += src.inject(field=u.forward, expr=src)
        ymax, xmax = y.symbolic_max, x.symbolic_max
        n = t + 1
        ey, ex, sy, sx, my, mx = (consts[k] for k in ("ey", "ex", "sy", "sx", "my", "mx"))
        # edges: e·u (Dirichlet 0, Neumann 1), or (absorbing, m = 1) the box-scheme condition; x then y
        for e, nb in ((g, g + 1), (xmax - g, xmax - g - 1)):
            abc = u[t, y, nb] + kappa_x[y, e] * (u[t, y, e] - u[n, y, nb])
            eqs.append(Eq(u[n, y, e], ex * u[n, y, e] + mx * abc))
        for e, nb in ((g, g + 1), (ymax - g, ymax - g - 1)):
            abc = u[t, nb, x] + kappa_y[e, x] * (u[t, e, x] - u[n, nb, x])
            eqs.append(Eq(u[n, e, x], ey * u[n, e, x] + my * abc))
        for k in range(1, g + 1):
            eqs += [Eq(u[n, g - k, x], sy * u[n, g + k, x]),
                    Eq(u[n, ymax - g + k, x], sy * u[n, ymax - g - k, x]),
                    Eq(u[n, y, g - k], sx * u[n, y, g + k]),
                    Eq(u[n, y, xmax - g + k], sx * u[n, y, xmax - g - k])]
        tsub = ConditionalDimension("tsub", parent=grid.time_dim, factor=1)
        usave = TimeFunction(name="usave", time_order=0, save=self.n_frames, time_dim=tsub, **kw)
        eqs.append(Eq(usave, u))
        self._op = Operator(eqs, name="wavesurrogate_fd")
        _ = self._op.cfunction  # compile now (cached on disk by devito across processes)
        self._f = {"u": u, "bx": bx, "by": by, "damp": damp, "kappa_x": kappa_x, "kappa_y": kappa_y,
                   "src": src, "usave": usave, **consts}
        self._factor_name = tsub.symbolic_factor.name
        self._n_points, self._nt = n_points, nt

    def _views(self) -> None:
        """Plain ndarray views of the Operator's data (devito's Data indexing costs ~10 µs a call) and the
        runtime constants, which depend on the layout alone and are set once."""
        f = self._f
        self._v = {k: np.asarray(f[k].data) for k in ("u", "bx", "by", "kappa_x", "kappa_y", "usave")}
        if f["damp"] is not None:
            self._v["damp"] = np.asarray(f["damp"].data)
        src = f["src"]
        self._v.update(src=np.asarray(src.data), src_gp=np.asarray(src.gridpoints.data),
                       src_coeffs=np.asarray(src.interpolation_coeffs.data))
        (sy, ey), (sx, ex) = self.layout.signs
        my, mx = (float(k == "absorbing") for k in self.layout.kinds)
        ey, ex = ey * (1.0 - my), ex * (1.0 - mx)  # an absorbing edge is set by the condition alone
        for k, v in (("sy", sy), ("ey", ey), ("sx", sx), ("ex", ex), ("my", my), ("mx", mx)):
            f[k].data = v
        self._loaded: dict[str, Any] = {}  # what each input buffer holds now (by identity)
        self._args: dict[tuple[int, int, int], list[Any]] = {}

    def _load(self, name: str, key: tuple[Any, ...], fill: Callable[[], None]) -> None:
        """Run fill() unless the buffer already holds what key stands for (the same objects as last run;
        the buffer keeps them referenced, so an identity is never reused by another array)."""
        last = self._loaded.get(name)
        if last is None or len(last) != len(key) or any(x is not y for x, y in zip(last, key, strict=True)):
            fill()
            self._loaded[name] = key

    def _apply(self, start: int, stop: int, stride: int) -> None:
        """Run the compiled C function over time indices start..stop.

        devito's ``Operator.apply`` rebuilds the argument list on every call (~5–8 ms at 64², more than the
        stencil itself for a short run); the list depends only on the time range and the stride (the
        buffers are never reallocated, the constants never change), so it is built once per range here.
        """
        key = (start, stop, stride)
        values = self._args.get(key)
        if values is None:
            args = self._op.arguments(time_m=start, time_M=stop, **{self._factor_name: stride})
            values = self._args[key] = [args[p.name] for p in self._op.parameters]
        # devito's generated code switches on flush-to-zero/denormals-are-zero in the thread that calls it
        # and never switches it off; a thread of our own keeps the caller's IEEE arithmetic intact
        status = self._thread().submit(self._op.cfunction, *values).result()
        if status != 0:
            raise RuntimeError(f"devito Operator {self._op.name} returned status {status}")

    def run(self, a: Arrays, report: Callable[[int], None] | None = None,
            region: tuple[slice, slice] | None = None) -> np.ndarray:
        """Advance one prepared run; frames [n_frames, …] of region (default: the computational grid).

        Inputs that are the same objects as in the previous run (FDSolver caches them per velocity and
        per source) are not copied again; the state and the frames always are.
        """
        pts, amp_phys = a.source_points
        nt = a.n_steps + 1
        if self._op is None or len(pts) > self._n_points or nt != self._nt:
            self._build(nt, max(1, len(pts), self._n_points))
            self._views()
        v = self._v
        u = v["u"]
        u[0] = a.u0  # step 0 in slot 0, step -1 in slot (−1 mod 3) = 2
        u[2] = a.um1
        u[1] = 0.0
        self._load("bx", (a.bx,), lambda: np.copyto(v["bx"], a.bx))
        self._load("by", (a.by,), lambda: np.copyto(v["by"], a.by))
        if a.damp is not None:
            self._load("damp", (a.damp,), lambda: np.copyto(v["damp"], 1.0 / (1.0 + a.damp)))
        g, (ny, nx) = self.layout.ghost, self.layout.shape
        for k, arr, n in (("kappa_y", a.abc[0], ny), ("kappa_x", a.abc[1], nx)):
            if arr is not None:  # only the outer edge lines are read
                idx = [(slice(None), e) if k == "kappa_x" else (e, slice(None)) for e in (g, n - 1 - g)]

                def fill_kappa(k: str = k, arr: np.ndarray = arr, idx: list = idx) -> None:
                    for i in idx:
                        v[k][i] = arr[i]

                self._load(k, (arr,), fill_kappa)

        def fill_source() -> None:
            m = len(pts)
            v["src_gp"][:] = 0
            v["src_coeffs"][:] = 0.0
            v["src"][:] = 0.0
            if m:
                v["src_gp"][:m] = pts + np.array([sl.start for sl in self.layout.physical])
                v["src_coeffs"][:m, :, 0] = 1.0
                v["src"][:, :m] = (a.wave[:, None] * amp_phys[None, :]).astype(self.dtype)

        self._load("src", (*a.source_points, a.wave), fill_source)
        start = 0
        for stop in _chunks(a.n_steps, a.stride, a.n_frames, report is not None):
            self._apply(start, stop, a.stride)
            start = stop + 1
            if report is not None:
                report(min(stop + 1, a.n_steps))
        region = region or (slice(None), slice(None))  # every frame is overwritten by the run
        return v["usave"][(slice(None), *region)].copy()  # the one copy: frames out of the reused buffer


def _chunks(n_steps: int, stride: int, n_frames: int, chunked: bool) -> list[int]:
    """Last time index of each Operator call: one call, or ~20 calls ending on frame boundaries."""
    if not chunked or n_frames <= 2:
        return [n_steps]
    per = max(1, (n_frames - 1) // 20)
    stops = [k * stride - 1 for k in range(per, n_frames - 1, per)]
    return [s for s in stops if s < n_steps] + [n_steps]

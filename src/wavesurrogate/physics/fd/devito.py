"""Devito backend of the FD solver: one compiled Operator per layout, reused for every run.

The Operator advances the computational grid (ghosts included) over a time range: the stencil update on
the updated nodes (a SubDomain), the source injected at precomputed grid points, Dirichlet edges zeroed,
ghosts filled by odd/even extension, and every ``stride``-th state saved into a snapshot buffer. Sign and
edge factors are runtime constants, so one Operator serves Dirichlet and Neumann alike.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from wavesurrogate.physics.fd.core import Arrays, Layout
from wavesurrogate.physics.problem import AXES


def _libm() -> Any:
    """The C maths library (its fegetenv/fesetenv), or None where it cannot be loaded."""
    try:
        lib = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
        lib.fegetenv.argtypes = lib.fesetenv.argtypes = [ctypes.c_void_p]
        return lib
    except (OSError, AttributeError):
        return None


_LIBM = _libm()
_FENV_BYTES = 256  # >= sizeof(fenv_t) (32 bytes on x86-64 glibc, 8 on aarch64)


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
        self._n_rec = 0
        self._box: tuple[tuple[int, int], ...] = ()

    def _thread(self) -> ThreadPoolExecutor:
        """The one worker thread that runs the Operator (created on first use)."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="devito")
        return self._pool

    def _build(self, nt: int, n_points: int, n_rec: int, box: tuple[tuple[int, int], ...]) -> None:
        from devito import (
            ConditionalDimension,
            Constant,
            Dimension,
            Eq,
            Function,
            Grid,
            Operator,
            PrecomputedSparseTimeFunction,
            SubDomain,
            TimeFunction,
        )

        lay, so, g, nd = self.layout, self.space_order, self.layout.ghost, self.layout.ndim
        names = AXES[3 - nd:]

        class Updated(SubDomain):
            name = "updated"

            def define(self, dimensions):
                return {d: ("middle", g, g) for d in dimensions}

        grid = Grid(shape=lay.shape, extent=tuple(float(n - 1) for n in lay.shape), dtype=self.dtype.type)
        updated = Updated(grid=grid)
        dims = grid.dimensions  # devito names them x, y(, z) in array order; we call them (z,) y, x
        t = grid.stepping_dim
        kw = {"grid": grid, "space_order": 0, "dtype": self.dtype.type}
        u = TimeFunction(name="u", time_order=2, **kw)
        b = [Function(name=f"b{a}", **kw) for a in names]
        consts = {f"{c}{a}{side}": Constant(name=f"{c}{a}{side}", dtype=self.dtype.type)
                  for a in names for side in ("lo", "hi") for c in ("s", "e", "m")}
        kappa = [Function(name=f"kappa_{a}", **kw) for a in names]

        def shift(axis: int, k: Any) -> tuple[Any, ...]:
            return tuple(d + k if i == axis else d for i, d in enumerate(dims))

        def U(axis: int = 0, k: int = 0, time: Any = t) -> Any:
            return u[(time, *shift(axis, k))]

        pre: list[Any] = []
        if so == 2:
            lap = sum(b[a][dims] * (U(a, 1) - U()) - b[a][shift(a, -1)] * (U() - U(a, -1)) for a in range(nd))
        else:  # fluxes b·D₊u into temporaries first: each is computed once instead of four times

            class Faces(SubDomain):  # every flux array on one region, so that devito fuses the loops
                name = "faces"

                def define(self, dimensions):
                    return {d: ("middle", 1, 2) for d in dimensions}

            faces = Faces(grid=grid)
            fl = [Function(name=f"f{a}", **kw) for a in names]
            pre = [Eq(fl[a][dims], b[a][dims] * (27 * (U(a, 1) - U()) - (U(a, 2) - U(a, -1))),
                      subdomain=faces) for a in range(nd)]
            lap = sum(27 * (fl[a][dims] - fl[a][shift(a, -1)]) - (fl[a][shift(a, 1)] - fl[a][shift(a, -2)])
                      for a in range(nd))
        um = u[(t - 1, *dims)]
        if self.damped:  # r = 1/(1+a): u⁺ = (2u − (1−a)u⁻ + L)/(1+a) = u⁻ + r·(2u − 2u⁻ + L), no division
            damp = Function(name="rdamp", **kw)  # holds r, not a
            rhs = um + damp[dims] * (2 * U() - 2 * um + lap)
        else:
            damp = None
            rhs = 2 * U() - um + lap
        eqs = pre + [Eq(u[(t + 1, *dims)], rhs, subdomain=updated)]
        src = PrecomputedSparseTimeFunction(
            name="src", grid=grid, npoint=n_points, nt=nt, r=2, dtype=self.dtype.type,
            gridpoints=np.zeros((n_points, nd), dtype=np.int32),
            interpolation_coeffs=np.zeros((n_points, nd, 2), dtype=self.dtype))
        eqs += src.inject(field=u.forward, expr=src)
        n = t + 1

        def at(axis: int, index: Any, time: Any = n) -> Any:
            return u[(time, *(index if i == axis else d for i, d in enumerate(dims)))]

        # edges: e·u (Dirichlet 0, Neumann 1), or (absorbing, m = 1) the box-scheme condition; last axis first
        for a in reversed(range(nd)):
            top = dims[a].symbolic_max
            for side, e, nb in (("lo", g, g + 1), ("hi", top - g, top - g - 1)):
                kap = kappa[a][tuple(e if i == a else d for i, d in enumerate(dims))]
                abc = at(a, nb, t) + kap * (at(a, e, t) - at(a, nb))
                c = names[a] + side
                eqs.append(Eq(at(a, e), consts["e" + c] * at(a, e) + consts["m" + c] * abc))
        for k in range(1, g + 1):
            for a in range(nd):
                top = dims[a].symbolic_max
                eqs += [Eq(at(a, g - k), consts[f"s{names[a]}lo"] * at(a, g + k)),
                        Eq(at(a, top - g + k), consts[f"s{names[a]}hi"] * at(a, top - g - k))]
        rec = None
        if n_rec:
            rec = PrecomputedSparseTimeFunction(
                name="rec", grid=grid, npoint=n_rec, nt=nt, r=2, dtype=self.dtype.type,
                gridpoints=np.zeros((n_rec, nd), dtype=np.int32),
                interpolation_coeffs=np.zeros((n_rec, nd, 2), dtype=self.dtype))
            eqs += rec.interpolate(expr=u)
        tsub = ConditionalDimension("tsub", parent=grid.time_dim, factor=1)
        # frames of the box (start, size per axis) only, written compactly: the array a run returns
        fdims = [Dimension(name=f"save_{a}") for a in names]
        usave = Function(name="usave", dimensions=(tsub, *fdims), shape=(self.n_frames, *(n for _, n in box)),
                         dtype=self.dtype.type)
        at_box = tuple(fd + s0 for fd, (s0, _) in zip(fdims, box, strict=True))
        eqs.append(Eq(usave[(tsub, *fdims)], u[(t, *at_box)]))
        self._op = Operator(eqs, name="wavesurrogate_fd")
        _ = self._op.cfunction  # compile now (cached on disk by devito across processes)
        self._f = {"u": u, "damp": damp, "src": src, "rec": rec, "usave": usave, **consts,
                   **{f"b{i}": f for i, f in enumerate(b)}, **{f"kappa{i}": f for i, f in enumerate(kappa)}}
        self._factor_name = tsub.symbolic_factor.name
        self._frames_index = [q.name for q in self._op.parameters].index("usave")
        self._n_points, self._nt, self._n_rec, self._box = n_points, nt, n_rec, box

    def _views(self) -> None:
        """Plain ndarray views of the Operator's data (devito's Data indexing costs ~10 µs a call) and the
        runtime constants, which depend on the layout alone and are set once."""
        f, nd = self._f, self.layout.ndim
        keys = ["u", *(f"b{i}" for i in range(nd)), *(f"kappa{i}" for i in range(nd))]
        self._v = {k: np.asarray(f[k].data) for k in keys}
        if f["damp"] is not None:
            self._v["damp"] = np.asarray(f["damp"].data)
        for name in ("src", "rec"):
            sp = f[name]
            if sp is not None:
                self._v.update({name: np.asarray(sp.data), f"{name}_gp": np.asarray(sp.gridpoints.data),
                                f"{name}_coeffs": np.asarray(sp.interpolation_coeffs.data)})
        names = AXES[3 - nd:]
        for a, pair, sign_pair in zip(names, self.layout.faces, self.layout.signs, strict=True):
            for side, kind, (s, e) in zip(("lo", "hi"), pair, sign_pair, strict=True):
                m = float(kind == "absorbing")
                for c, v in (("s", s), ("e", e * (1.0 - m)), ("m", m)):  # an absorbing edge: the condition
                    f[f"{c}{a}{side}"].data = v
        self._loaded: dict[str, Any] = {}  # what each input buffer holds now (by identity)
        self._state_key: tuple[Any, ...] | None = None  # (u0, um1, their nonzero entries or None)
        self._args: dict[tuple[int, int, int], list[Any]] = {}

    def _load(self, name: str, key: tuple[Any, ...], fill: Callable[[], None]) -> None:
        """Run fill() unless the buffer already holds what key stands for (the same objects as last run;
        the buffer keeps them referenced, so an identity is never reused by another array)."""
        last = self._loaded.get(name)
        if last is None or len(last) != len(key) or any(x is not y for x, y in zip(last, key, strict=True)):
            fill()
            self._loaded[name] = key

    def _set_state(self, u0: np.ndarray, um1: np.ndarray) -> None:
        """Step 0 into slot 0, step −1 into slot (−1 mod 3) = 2; slot 1 is left as it is (the first step
        writes every node of it: the update, the edge conditions and the ghost planes). A run from rest has
        u⁰ = 0 and u⁻¹ nonzero only around the source: such states are kept as their nonzero entries (found
        once per pair of arrays) and written as a zero fill plus a scatter, not copied whole."""
        u, key = self._v["u"], self._state_key
        if key is None or key[0] is not u0 or key[1] is not um1:
            sparse = []
            for arr in (u0, um1):
                idx = np.flatnonzero(arr)
                sparse.append((idx, arr.ravel()[idx].astype(self.dtype)) if 8 * idx.size < arr.size else None)
            self._state_key = key = (u0, um1, sparse)
        for slot, arr, sp in zip((0, 2), (u0, um1), key[2], strict=True):
            if sp is None:
                u[slot] = arr
            else:
                u[slot].fill(0.0)
                u[slot].reshape(-1)[sp[0]] = sp[1]

    def _apply(self, start: int, stop: int, stride: int, frames: np.ndarray | None = None) -> None:
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
        frames_arg = values[self._frames_index]._obj
        own = getattr(frames_arg.data, "value", frames_arg.data)  # the address (the field reads as a view)
        if frames is not None:  # the run's output array stands in for the Operator's own frame buffer
            frames_arg.data = frames.ctypes.data
        # devito's generated code switches on flush-to-zero/denormals-are-zero in the thread that calls it
        # and never switches it off: the caller's floating-point environment is saved and restored around
        # the call (libm's fegetenv/fesetenv, MXCSR included); without libm, a thread of our own runs it
        try:
            if _LIBM is not None:
                env = ctypes.create_string_buffer(_FENV_BYTES)
                _LIBM.fegetenv(env)
                try:
                    status = self._op.cfunction(*values)
                finally:
                    _LIBM.fesetenv(env)
            else:
                status = self._thread().submit(self._op.cfunction, *values).result()
        finally:
            frames_arg.data = own
        if status != 0:
            raise RuntimeError(f"devito Operator {self._op.name} returned status {status}")

    def run(self, a: Arrays, report: Callable[[int], None] | None = None,
            region: tuple[slice, ...] | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """Advance one prepared run: (frames [n_frames, …] of region (default: the computational grid),
        receiver traces [n_steps + 1, n_receivers] or None).

        Inputs that are the same objects as in the previous run (FDSolver caches them per velocity and
        per source) are not copied again; the state and the frames always are.
        """
        pts, amp_phys = a.source_points
        n_rec = 0 if a.receivers is None else len(a.receivers)
        nt = a.n_steps + 1
        region = region or (slice(None),) * self.layout.ndim
        box = tuple((sl.indices(n)[0], len(range(*sl.indices(n))))
                    for sl, n in zip(region, self.layout.shape, strict=True))
        if (self._op is None or len(pts) > self._n_points or nt != self._nt or n_rec > self._n_rec
                or box != self._box):
            self._build(nt, max(1, len(pts), self._n_points), max(n_rec, self._n_rec), box)
            self._views()
        v, lay = self._v, self.layout
        self._set_state(a.u0, a.um1)
        for i, bi in enumerate(a.b):
            self._load(f"b{i}", (bi,), lambda i=i, bi=bi: np.copyto(v[f"b{i}"], bi))
        if a.damp is not None:
            self._load("damp", (a.damp,), lambda: np.copyto(v["damp"], 1.0 / (1.0 + a.damp)))
        for i, arr in enumerate(a.abc):
            if arr is not None:  # only the outer edge planes are read

                def fill_kappa(i: int = i, arr: np.ndarray = arr) -> None:
                    for e in lay.edges(i):
                        v[f"kappa{i}"][lay.at(i, e)] = arr[lay.at(i, e)]

                self._load(f"kappa{i}", (arr,), fill_kappa)
        offset = np.array([sl.start for sl in lay.physical])

        def fill_source() -> None:
            m = len(pts)
            v["src_gp"][:] = 0
            v["src_coeffs"][:] = 0.0
            v["src"][:] = 0.0
            if m:
                v["src_gp"][:m] = pts + offset
                v["src_coeffs"][:m, :, 0] = 1.0
                v["src"][:, :m] = (a.wave[:, None] * amp_phys[None, :]).astype(self.dtype)

        self._load("src", (*a.source_points, a.wave), fill_source)
        if n_rec:

            def fill_rec() -> None:
                v["rec_gp"][:] = offset  # unused slots read a physical node, never returned
                v["rec_coeffs"][:] = 0.0
                v["rec_gp"][:n_rec] = a.receivers + offset
                v["rec_coeffs"][:n_rec, :, 0] = 1.0

            self._load("rec", (a.receivers,), fill_rec)
        frames = np.empty((self.n_frames, *(n for _, n in box)), dtype=self.dtype)  # every frame is written
        start = 0
        for stop in _chunks(a.n_steps, a.stride, a.n_frames, report is not None):
            self._apply(start, stop, a.stride, frames)
            start = stop + 1
            if report is not None:
                report(min(stop + 1, a.n_steps))
        traces = v["rec"][:, :n_rec].copy() if n_rec else None
        return frames, traces


def _chunks(n_steps: int, stride: int, n_frames: int, chunked: bool) -> list[int]:
    """Last time index of each Operator call: one call, or ~20 calls ending on frame boundaries."""
    if not chunked or n_frames <= 2:
        return [n_steps]
    per = max(1, (n_frames - 1) // 20)
    stops = [k * stride - 1 for k in range(per, n_frames - 1, per)]
    return [s for s in stops if s < n_steps] + [n_steps]

"""The torch-free runtime: an exported graph (``wavesurrogate export``) run by numpy and onnxruntime only.

``load(path)`` reads ``model.onnx`` and its sidecar ``model.onnx.json`` (checked: format, sha256 of the graph)
and returns an ``EdgeModel`` that runs the run's task in physical units:

- frames runs (forecast; the sidecar's ``rollout`` section): ``step`` (one call: the next n_out frames, the
  run's update inside the graph) and ``rollout`` (calls fed back as ``Forecast.predict`` /
  ``nn.rollout.rollout`` do: the window slides by n_out frames, call j reads the forcing of the frames it
  predicts, zeros past the forcing given, the last call's surplus frames dropped);
  ``forcing_frames`` builds that forcing from a case's amplitude and footprint;
- points runs (source → field; its ``points`` section): ``points`` (any (x, y, t) points) and ``field``
  (every node of every frame of the grid).

This module imports nothing of torch nor of the package's torch-using layers (an import-linter contract and a
test that blocks torch in a fresh interpreter hold it to that). Install: ``pip install wavesurrogate[edge]``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from wavesurrogate.errors import ExportError
from wavesurrogate.safeload import parse_json

__all__ = ["EdgeModel", "load", "forcing_frames", "SIDECAR_FORMAT"]

SIDECAR_FORMAT = "wavesurrogate-onnx/1"  # = runs.export.SIDECAR_FORMAT (that module imports torch)


def forcing_frames(amplitude: np.ndarray, footprint: np.ndarray, first: int, end: int) -> np.ndarray:
    """The source term of frames ``first .. end − 1``, float32 ``[case, end − first, ny, nx]``, from
    ``amplitude [case, frame]`` and ``footprint [case, ny, nx]`` (``tasks.forecast.load_forcing``)."""
    a = np.asarray(amplitude, np.float64)[:, first:end]
    return (a[:, :, None, None] * np.asarray(footprint, np.float64)[:, None]).astype(np.float32)


def _array(name: str, a: Any, ndim: int) -> np.ndarray:
    """``a`` as finite float32 with ``ndim`` axes; ValueError (one line) otherwise."""
    x = np.asarray(a, dtype=np.float32)
    if x.ndim != ndim:
        raise ValueError(f"{name}: expected {ndim} axes, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name}: non-finite values")
    return np.ascontiguousarray(x)


class EdgeModel:
    """An exported run: ``meta`` (the sidecar), ``task``, and the task's prediction in physical units."""

    def __init__(self, path: str | Path, threads: int = 1) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        side = self.path.with_name(self.path.name + ".json")
        try:
            data = self.path.read_bytes()
            meta = parse_json(side.read_bytes(), str(side), ExportError)
        except FileNotFoundError as exc:
            raise ExportError(f"{exc.filename}: not found (an exported model is a .onnx and its .onnx.json)")\
                from None
        except OSError as exc:
            raise ExportError(f"{side}: unreadable ({type(exc).__name__})") from None
        if not isinstance(meta, dict) or meta.get("format") != SIDECAR_FORMAT:
            raise ExportError(f"{side}: not a wavesurrogate export sidecar")
        if meta.get("onnx_sha256") != hashlib.sha256(data).hexdigest():
            raise ExportError(f"{self.path}: does not match its sidecar {side.name} (sha256 differs)")
        if not isinstance(meta.get("rollout", meta.get("points")), dict) \
                or not isinstance(meta.get("grid"), dict):
            raise ExportError(f"{side}: neither a 'rollout' nor a 'points' section, or no 'grid'")
        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads = int(threads), 1
        so.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own types for a bad graph
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ExportError(f"{self.path}: onnxruntime refused it ({first[:200]})") from None
        self.meta, self.task = meta, str(meta["task"])
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.grid = meta["grid"]

    def run(self, **inputs: np.ndarray) -> np.ndarray:
        """One call of the graph with float32 inputs by name; its output."""
        missing = [n for n in self.inputs if n not in inputs]
        if missing:
            raise ValueError(f"missing input {missing[0]!r} (the graph takes {', '.join(self.inputs)})")
        return self.session.run(None, {n: inputs[n] for n in self.inputs})[0]

    # ------------------------------------------------------------------------------------------ forecast
    def _forecast(self) -> dict[str, Any]:
        if "rollout" not in self.meta:
            raise ValueError(f"{self.path.name} answers {self.task} at points; it has no step or rollout")
        return self.meta["rollout"]

    def step(self, frames: np.ndarray, velocity: np.ndarray, forcing: np.ndarray | None = None) -> np.ndarray:
        """The next n_out frames ``[B, n_out, ny, nx]`` (float32, field units) from ``frames
        [B, n_in, ny, nx]``, ``velocity [B, ny, nx]`` or ``[B, 1, ny, nx]`` (m/s) and, if the run reads it,
        ``forcing [B, n_out, ny, nx]`` (the source term of the predicted frames)."""
        fc, g = self._forecast(), self.grid
        frames = _array("frames", frames, 4)
        velocity = _array("velocity", velocity, 3)[:, None] if np.ndim(velocity) == 3 else \
            _array("velocity", velocity, 4)
        want = (fc["n_in"], g["ny"], g["nx"])
        if frames.shape[1:] != want or velocity.shape != (frames.shape[0], 1, *want[1:]):
            raise ValueError(f"frames {frames.shape} / velocity {velocity.shape}: the model takes "
                             f"[B, {want[0]}, {want[1]}, {want[2]}] and [B, 1, {want[1]}, {want[2]}]")
        x = {"frames": frames, "velocity": velocity}
        if fc["forcing"]:
            if forcing is None:
                raise ValueError("forcing: this run reads the source term of the frames it predicts")
            x["forcing"] = _array("forcing", forcing, 4)
            if x["forcing"].shape != (frames.shape[0], fc["n_out"], *want[1:]):
                raise ValueError(f"forcing {x['forcing'].shape}: expected [B, {fc['n_out']}, ny, nx]")
        return self.run(**x)

    def rollout(self, frames: np.ndarray, velocity: np.ndarray, n_steps: int,
                forcing: np.ndarray | None = None, batch_size: int = 32) -> np.ndarray:
        """``n_steps`` frames ``[B, n_steps, ny, nx]`` (float64, field units) after the true ``frames
        [B, n_in, ny, nx]``; ``forcing [B, F, ny, nx]``: the source term of the predicted frames (call j reads
        frames j·n_out … (j+1)·n_out − 1, zeros past F), required when the run reads it."""
        fc = self._forecast()
        n_out, n_in = int(fc["n_out"]), int(fc["n_in"])
        if int(n_steps) < 0:
            raise ValueError(f"n_steps must be >= 0, got {n_steps}")
        frames = _array("frames", frames, 4)
        velocity = np.asarray(velocity, np.float32)
        velocity = velocity[:, None] if velocity.ndim == 3 else velocity
        calls = -(-int(n_steps) // n_out)
        if fc["forcing"]:
            if forcing is None:
                raise ValueError("forcing: this run reads the source term of the frames it predicts")
            forcing = _array("forcing", forcing, 4)
            pad = max(0, calls * n_out - forcing.shape[1])
            forcing = np.concatenate([forcing, np.zeros((forcing.shape[0], pad, *forcing.shape[2:]),
                                                        np.float32)], axis=1)
        outs = []
        for b in range(0, max(1, frames.shape[0]), batch_size):
            state, got = frames[b : b + batch_size], []
            for j in range(calls):
                ex = None if forcing is None else forcing[b : b + batch_size, j * n_out : (j + 1) * n_out]
                pred = self.step(state, velocity[b : b + batch_size], ex)
                got.append(pred)
                state = np.concatenate([state, pred], axis=1)[:, -n_in:]
            empty = np.zeros((state.shape[0], 0, *state.shape[2:]), np.float32)
            outs.append(np.concatenate(got, axis=1)[:, :n_steps] if got else empty)
        return np.concatenate(outs).astype(np.float64)

    # ------------------------------------------------------------------------------------ source → field
    def _points_meta(self) -> dict[str, Any]:
        if "points" not in self.meta:
            raise ValueError(f"{self.path.name} answers {self.task} by steps; it has no points or field")
        return self.meta["points"]

    def params(self, **values: float) -> np.ndarray:
        """The parameter row ``[1, P]`` of named values (SI units); a parameter not named takes the training
        mean (``param_mean``)."""
        m = self._points_meta()
        unknown = [k for k in values if k not in m["param_names"]]
        if unknown:
            names = ", ".join(m["param_names"])
            raise ValueError(f"unknown parameter {unknown[0]!r}; the model reads {names}")
        row = [float(values.get(n, mean)) for n, mean in zip(m["param_names"], m["param_mean"], strict=True)]
        return _array("params", [row], 2)

    def axes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The grid's node coordinates x [nx] (m), y [ny] (m) and the frame times t [n_frames] (s)."""
        m, g = self._points_meta(), self.grid
        lo, hi = m["coord_min"], m["coord_max"]
        nt = int(g.get("n_frames") or round((hi[2] - lo[2]) / g["frame_dt_s"]) + 1)
        return (np.linspace(lo[0], hi[0], int(g["nx"])), np.linspace(lo[1], hi[1], int(g["ny"])),
                np.linspace(lo[2], hi[2], nt))

    def points(self, params: np.ndarray, coords: np.ndarray, chunk: int = 65536) -> np.ndarray:
        """The field ``[B, Q]`` (float32, field units) of parameters ``[B, P]`` at ``coords [B, Q, 3]`` or
        ``[Q, 3]`` (x m, y m, t s), ``chunk`` points per call."""
        m = self._points_meta()
        p = _array("params", params, 2)
        if p.shape[1] != len(m["param_names"]):
            raise ValueError(f"params {p.shape}: the model reads {len(m['param_names'])}: {m['param_names']}")
        c = np.asarray(coords, np.float32)
        c = np.broadcast_to(c, (p.shape[0], *c.shape)) if c.ndim == 2 else c
        c = _array("coords", c, 3)
        if c.shape[0] != p.shape[0] or c.shape[2] != 3:
            raise ValueError(f"coords {c.shape}: expected [{p.shape[0]}, Q, 3] or [Q, 3]")
        return np.concatenate([self.run(params=p, coords=np.ascontiguousarray(c[:, q : q + chunk]))
                               for q in range(0, max(1, c.shape[1]), chunk)], axis=1)

    def field(self, params: np.ndarray, chunk: int = 65536) -> np.ndarray:
        """The field ``[B, n_frames, ny, nx]`` (float32) at every node of every frame of the grid."""
        x, y, t = self.axes()
        tt, yy, xx = np.meshgrid(t, y, x, indexing="ij")
        pts = np.stack([xx, yy, tt], axis=-1).reshape(-1, 3)
        return self.points(params, pts, chunk).reshape(-1, len(t), len(y), len(x))


def load(path: str | Path, threads: int = 1) -> EdgeModel:
    """An exported model (``path``: the .onnx, its sidecar beside it) on ``threads`` onnxruntime threads."""
    return EdgeModel(path, threads)

"""``wavesurrogate export``: a run as one ONNX graph in physical units, plus a sidecar JSON (docs/deploy.md).

The graph holds the run's normalisation, so its inputs and outputs are in the units of the data file:

- ``forecast``: one model call with the run's update (``nn.rollout.step``): ``frames [B, n_in, ny, nx]``
  (field units), ``velocity [B, 1, ny, nx]`` (m/s) and, when the run reads it, ``forcing [B, n_out, ny, nx]``
  (the source term per frame, ``amplitude · footprint`` of ``physics.sources.frame_forcing``) →
  ``next_frames [B, n_out, ny, nx]`` (field units). A rollout feeds them back (``wavesurrogate.edge``).
- ``source_to_field``: ``params [B, P]`` (the run's ``param_names``, SI units) and ``coords [B, Q, 3]``
  (x m, y m, t s) → ``field [B, Q]`` (field units).

Dynamo exporter (``torch.onnx.export(..., dynamo=True)``), opset ``OPSET``, the batch (and the number of
points) dynamic. The sidecar ``<out>.json`` records the task, the input and output layout with units, the
grid, the rollout rule, the package version and the graph's sha256; it is written last (the commit point),
both files atomically, and neither replaces an existing file without ``overwrite``. int8: ``runs.quantize``.
"""

from __future__ import annotations

import hashlib
import io
import logging
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from wavesurrogate.errors import ExportError
from wavesurrogate.io import atomic_write_bytes, write_json

__all__ = ["OPSET", "SIDECAR_FORMAT", "TASKS", "sidecar_path", "export_run", "wrap", "export_module",
           "exportable"]

OPSET = 18
SIDECAR_FORMAT = "wavesurrogate-onnx/1"
TASKS = ("forecast", "source_to_field")


def sidecar_path(onnx_path: str | Path) -> Path:
    """The sidecar JSON of an exported graph: ``model.onnx`` → ``model.onnx.json``."""
    p = Path(onnx_path)
    return p.with_name(p.name + ".json")


class ForecastStep(nn.Module):
    """One call of a forecast run in physical units: normalise, ``rollout.step`` (direct or leapfrog),
    de-normalise."""

    def __init__(self, model: nn.Module, stats: dict[str, Any]) -> None:
        super().__init__()
        from wavesurrogate.tasks.forecast import run_options

        self.model = model
        self.forcing, self.update = run_options(stats)
        for name, v in (("f_mean", stats["field_mean"]), ("f_std", stats["field_std"]),
                        ("v_mean", stats["velocity_mean"]), ("v_std", stats["velocity_std"]),
                        ("s_scale", stats.get("forcing_scale", 1.0))):
            self.register_buffer(name, torch.tensor(float(v), dtype=torch.float32))

    def forward(self, frames: Tensor, velocity: Tensor, forcing: Tensor | None = None) -> Tensor:
        from wavesurrogate.nn.rollout import step

        f = (frames - self.f_mean) / self.f_std
        v = (velocity - self.v_mean) / self.v_std
        extra = forcing / self.s_scale if self.forcing else None
        return step(self.model, f, v, extra, self.update) * self.f_std + self.f_mean


class SourceField(nn.Module):
    """A points run in physical units: parameters (SI) and (x m, y m, t s) → the field in field units."""

    def __init__(self, model: nn.Module, stats: dict[str, Any]) -> None:
        super().__init__()
        self.model = model
        lo = torch.tensor(stats["coord_min"], dtype=torch.float64)
        hi = torch.tensor(stats["coord_max"], dtype=torch.float64)
        span = torch.where(hi > lo, hi - lo, torch.ones_like(hi))
        gain = torch.where(hi > lo, 2.0 / span, torch.zeros_like(hi))  # a flat axis maps to 0 (scale_axis)
        self.register_buffer("c_gain", gain.float())
        self.register_buffer("c_offset", (-1.0 - lo * gain).where(hi > lo, torch.zeros_like(hi)).float())
        self.register_buffer("p_mean", torch.tensor(stats["param_mean"], dtype=torch.float32))
        self.register_buffer("p_std", torch.tensor(stats["param_std"], dtype=torch.float32))
        self.register_buffer("f_mean", torch.tensor(float(stats["field_mean"]), dtype=torch.float32))
        self.register_buffer("f_std", torch.tensor(float(stats["field_std"]), dtype=torch.float32))

    def forward(self, params: Tensor, coords: Tensor) -> Tensor:
        p = (params - self.p_mean) / self.p_std
        c = coords * self.c_gain + self.c_offset
        return self.model(p, c) * self.f_std + self.f_mean


def exportable(name: str, task: str, entry: Any) -> None:
    """ExportError (one line, naming why) unless a run of model ``name`` and ``task`` can be exported."""
    if not entry.capabilities.get("onnx", True):
        why = getattr(entry.cls, "onnx_note", "its registry entry marks it not exportable")
        raise ExportError(f"model {name!r} cannot be exported to ONNX: {why}")
    if task not in TASKS:
        raise ExportError(f"task {task!r}: export knows {', '.join(TASKS)}")
    if getattr(entry.cls, "needs_velocity", False):
        raise ExportError(f"model {name!r} reads a velocity map beside its points; export does not carry it")


def wrap(model: nn.Module, info: Any) -> tuple[nn.Module, dict[str, Tensor], dict[str, Any]]:
    """(module in physical units, example inputs by name, sidecar layout) of a loaded run."""
    s, g = info.stats, info.stats["data"]
    ny, nx = int(g["ny"]), int(g["nx"])
    if info.task == "forecast":
        mod = ForecastStep(model, s).eval()
        n_in, n_out = int(s["n_in"]), int(s["n_out"])
        gen = torch.Generator().manual_seed(0)
        ex = {"frames": float(s["field_mean"]) + float(s["field_std"]) * torch.randn(2, n_in, ny, nx,
                                                                                      generator=gen),
              "velocity": torch.full((2, 1, ny, nx), float(s["velocity_mean"]))}
        inputs = [{"name": "frames", "shape": ["batch", n_in, ny, nx], "unit": "field units of the data",
                   "what": f"the last {n_in} frames, oldest first"},
                  {"name": "velocity", "shape": ["batch", 1, ny, nx], "unit": "m/s", "what": "velocity map"}]
        if mod.forcing:
            ex["forcing"] = torch.zeros(2, n_out, ny, nx)
            inputs.append({"name": "forcing", "shape": ["batch", n_out, ny, nx],
                           "unit": "source term (amplitude x footprint of physics.sources.frame_forcing)",
                           "what": f"the source term of the {n_out} frame(s) being predicted"})
        layout = {"inputs": inputs, "outputs": [{"name": "next_frames", "shape": ["batch", n_out, ny, nx],
                                                 "unit": "field units of the data",
                                                 "what": "the next frames, the run's update applied"}],
                  "forecast": {"n_in": n_in, "n_out": n_out, "update": mod.update, "forcing": mod.forcing}}
        return mod, ex, layout
    names = [str(n) for n in s["param_names"]]
    mod = SourceField(model, s).eval()
    lo, hi = torch.tensor(s["coord_min"]), torch.tensor(s["coord_max"])
    ex = {"params": torch.tensor([s["param_mean"]] * 2, dtype=torch.float32),
          "coords": (lo + (hi - lo) * torch.rand(2, 64, 3, generator=torch.Generator().manual_seed(0))
                     ).float()}
    layout = {"inputs": [{"name": "params", "shape": ["batch", len(names)], "unit": "SI (see param_names)",
                          "what": "case parameters", "param_names": names},
                         {"name": "coords", "shape": ["batch", "points", 3], "unit": "m, m, s",
                          "what": "query points (x, y, t)"}],
              "outputs": [{"name": "field", "shape": ["batch", "points"], "unit": "field units of the data",
                           "what": "the field at the points"}],
              "source_to_field": {"param_names": names, "param_mean": [float(v) for v in s["param_mean"]],
                                  "coord_min": [float(v) for v in s["coord_min"]],
                                  "coord_max": [float(v) for v in s["coord_max"]]}}
    return mod, ex, layout


def export_module(mod: nn.Module, example: dict[str, Tensor], output: str) -> bytes:
    """The ONNX bytes of ``mod`` called with ``example`` (by name), dynamo exporter, opset ``OPSET``, the
    first axis of every input dynamic (``points``, the second of ``coords``, too)."""
    batch = torch.export.Dim("batch", min=1, max=1 << 20)
    dyn: dict[str, Any] = {k: {0: batch} for k in example}
    if "coords" in example:
        dyn["coords"] = {0: batch, 1: torch.export.Dim("points", min=1, max=1 << 24)}
    names = list(example)
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        try:
            prog = torch.onnx.export(mod, tuple(example.values()), dynamo=True, opset_version=OPSET,
                                     input_names=names, output_names=[output], dynamic_shapes=dyn,
                                     optimize=True, verbose=False, report=False)
        except Exception as exc:  # an operator without ONNX form: one line naming it
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ExportError(f"the ONNX exporter failed ({type(exc).__name__}: {first[:200]})") from None
    import onnx

    buf = io.BytesIO()
    onnx.save_model(prog.model_proto, buf)
    return buf.getvalue()


def _refuse_existing(out: Path, overwrite: bool) -> None:
    for p in (out, sidecar_path(out)):
        if p.exists() and not overwrite:
            raise ExportError(f"{p} exists; use --overwrite to replace it")
        if p.exists() and not p.is_file():
            raise ExportError(f"{p} exists and is not a file")


def export_run(run: str | Path, out: str | Path, *, int8: bool = False, calibration: str | Path | None = None,
               overwrite: bool = False, which: str = "best", n_calibration: int = 64) -> Path:
    """Export run directory ``run`` to ``out`` (ONNX) and ``out``.json (sidecar); returns ``out``.

    ``int8``: static QDQ per-channel quantisation calibrated on ``n_calibration`` training windows (forecast)
    or training sources (source → field) of ``calibration`` (a data file; default the run's own), see
    ``runs.quantize``. ExportError / CheckpointError (one line) for a model without ONNX form, another task,
    an existing output without ``overwrite``, a failing exporter; nothing is written then.
    """
    from wavesurrogate import __version__
    from wavesurrogate.nn import registry
    from wavesurrogate.runs.load import load_run

    out = Path(out)
    if out.suffix != ".onnx":
        raise ExportError(f"--out {out}: name the graph *.onnx")
    _refuse_existing(out, overwrite)
    model, info = load_run(run, which)
    exportable(info.model_name, info.task, registry.entry(info.model_name))
    mod, example, layout = wrap(model, info)
    output = layout["outputs"][0]["name"]
    data = export_module(mod, example, output)
    precision: dict[str, Any] = {"precision": "fp32"}
    if int8:
        from wavesurrogate.runs.quantize import quantize

        data, precision = quantize(data, info, calibration, n_calibration)
    g = info.stats["data"]
    side = {"format": SIDECAR_FORMAT, "task": info.task, "model": info.model_name,
            "model_version": info.model_version, "package_version": __version__,
            "run": str(Path(run).resolve()), "weights": which, "epoch": info.epoch, "opset": OPSET,
            "onnx_file": out.name, "onnx_bytes": len(data), "onnx_sha256": hashlib.sha256(data).hexdigest(),
            **precision, "grid": {"ny": int(g["ny"]), "nx": int(g["nx"]), "dx_m": g.get("dx"),
                                  "dy_m": g.get("dy"), "frame_dt_s": float(g["frame_dt"]),
                                  "n_frames": g.get("n_frames")},
            **layout}
    _refuse_existing(out, overwrite)  # again: the export took seconds
    atomic_write_bytes(out, data)
    write_json(sidecar_path(out), side)  # last: the commit point (the edge runtime checks the sha256)
    return out

"""``wavesurrogate export``: a run as one ONNX graph in physical units, plus a sidecar JSON (docs/deploy.md).

The graph holds the run's normalisation, so its inputs and outputs are in the units of the data file; what
they are is the task's (``Task.export``, ``tasks/_export.py``): a frames task gives one model call with the
run's update (``frames``, ``velocity``, ``forcing`` → ``next_frames``; the sidecar's ``rollout`` section says
how to feed it back), a points task SI parameters and (x, y, t) points → ``field`` (its ``points`` section).

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

__all__ = ["OPSET", "SIDECAR_FORMAT", "sidecar_path", "export_run", "wrap", "export_module", "exportable"]

OPSET = 18
SIDECAR_FORMAT = "wavesurrogate-onnx/1"


def sidecar_path(onnx_path: str | Path) -> Path:
    """The sidecar JSON of an exported graph: ``model.onnx`` → ``model.onnx.json``."""
    p = Path(onnx_path)
    return p.with_name(p.name + ".json")


def exportable(name: str, entry: Any) -> None:
    """ExportError (one line, naming why) unless a model ``name`` (registry ``entry``) can be exported."""
    if not entry.capabilities.get("onnx", True):
        why = getattr(entry.cls, "onnx_note", "its registry entry marks it not exportable")
        raise ExportError(f"model {name!r} cannot be exported to ONNX: {why}")
    if getattr(entry.cls, "needs_velocity", False):
        raise ExportError(f"model {name!r} reads a velocity map beside its points; export does not carry it")


def wrap(model: nn.Module, info: Any) -> tuple[nn.Module, dict[str, Tensor], dict[str, Any]]:
    """(module in physical units, example inputs by name, sidecar layout) of a loaded run: its task's
    ``Task.export`` (ExportError for a task without one)."""
    from wavesurrogate import tasks

    return tasks.get(info.task).export(model, info.stats)


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

    proto = prog.model_proto
    for node in proto.graph.node:  # the exporter's per-node stack traces and names: 2-3x the weights' bytes
        del node.metadata_props[:]
        node.doc_string = ""
    del proto.graph.value_info[:]  # intermediate shapes: onnxruntime infers them
    buf = io.BytesIO()
    onnx.save_model(proto, buf)
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
    exportable(info.model_name, registry.entry(info.model_name))
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

"""int8 of an exported graph: static QDQ, per channel (``onnxruntime.quantization``), calibrated on training
data.

Only the weight-carrying operators (Conv, MatMul, Gemm) are quantised, except the first and the last of them
(the input lift and the output head): every elementwise operator (the activations, which GELU turns into
Div/Erf/Mul/Add, the residual additions, the built-in normalisation) stays fp32, so it is not wrapped in
quantise/dequantise pairs. Calibration (MinMax) runs the fp32 graph on ``n`` inputs in physical units drawn
evenly from the training split: windows of consecutive frames (forecast: frames, velocity, forcing) or the
training sources at points of their grid (source → field).
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from wavesurrogate.errors import ExportError

__all__ = ["quantize", "calibration_inputs", "WEIGHT_OPS"]

WEIGHT_OPS = ("Conv", "MatMul", "Gemm")


def calibration_inputs(info: Any, calibration: str | Path | None, n: int) -> list[dict[str, np.ndarray]]:
    """``n`` (or fewer) calibration inputs of the exported graph, by input name, float32, physical units: the
    task's ``export_samples`` of the run's training cases when ``calibration`` is its own data file (the
    default), else of the file's training split."""
    from wavesurrogate import tasks
    from wavesurrogate.data.store import open_data
    from wavesurrogate.tasks.base import check_geometry

    path = Path(calibration if calibration is not None else info.config.data.path)
    own = Path(info.config.data.path).resolve() == path.resolve()
    with open_data(path) as f:
        check_geometry(f, info.stats, f"--calibration {path}: run {info.run_dir.name}")
        cases = np.asarray(info.stats["splits"]["train"] if own else f.cases("train"), dtype=np.int64)
        cases = cases[f.done[cases]] if len(cases) else cases
        got = tasks.get(info.task).export_samples(f, cases, info.stats, n) if len(cases) else []
    if not got:
        raise ExportError(f"--calibration {path}: no training windows to calibrate on")
    return got


def _weight_nodes(model: Any) -> list[str]:
    """Names of the weight-carrying nodes (``WEIGHT_OPS`` with a constant second input), in graph order."""
    consts = {i.name for i in model.graph.initializer}
    consts |= {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    return [n.name for n in model.graph.node if n.op_type in WEIGHT_OPS and len(n.input) > 1
            and n.input[1] in consts]


def quantize(data: bytes, info: Any, calibration: str | Path | None, n: int) -> tuple[bytes, dict[str, Any]]:
    """(int8 QDQ graph bytes, what the sidecar records of it) of the fp32 graph ``data``."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    inputs = calibration_inputs(info, calibration, n)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(inputs)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.it, None)

    model = onnx.load_from_string(data)
    for i, node in enumerate(model.graph.node):  # quantize_static names nodes by position if unnamed
        node.name = node.name or f"{node.op_type}_{i}"
    weights = _weight_nodes(model)
    if len(weights) < 3:
        raise ExportError(f"--int8: the graph has {len(weights)} weight layers; with the first and last kept "
                          "fp32 nothing would be quantised")
    keep = [weights[0], weights[-1]]
    with tempfile.TemporaryDirectory(prefix="wavesurrogate-int8-") as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        onnx.save_model(model, str(src))
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # quiet its advice to pre-process the graph: not an error of ours
        try:
            quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                            op_types_to_quantize=list(WEIGHT_OPS), nodes_to_exclude=keep,
                            extra_options={"QDQOpTypePerChannelSupportToAxis": {"MatMul": 1}})
        except Exception as exc:  # one line: what onnxruntime's quantiser said
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ExportError(f"--int8: quantisation failed ({type(exc).__name__}: {first[:200]})") from None
        finally:
            root.setLevel(level)
        out = dst.read_bytes()
    n_q = sum(1 for node in onnx.load_from_string(out).graph.node if node.op_type == "QuantizeLinear")
    return out, {"precision": "int8", "int8": {
        "scheme": "static QDQ, per channel, MinMax calibration", "quantized_ops": list(WEIGHT_OPS),
        "kept_fp32": {"first_and_last_layers": keep, "elementwise": "every Add/Mul/Div/Erf/Sub (activations, "
                      "residual additions, normalisation)"},
        "weight_layers": len(weights), "quantize_nodes": n_q,
        "calibration": str(Path(calibration if calibration is not None else info.config.data.path).resolve()),
        "calibration_inputs": len(inputs)}}

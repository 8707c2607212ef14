"""``wavesurrogate export`` and the torch-free runtime ``wavesurrogate.edge`` on real (tiny) trained runs: the
graph in physical units matches the library's predictions (one step, a rollout through forcing and the
leapfrog update, a whole source → field answer), opset and dynamic batch, the sidecar, refusals,
int8, no torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from wavesurrogate import edge, tasks
from wavesurrogate.cli import main
from wavesurrogate.data.store import open_data
from wavesurrogate.errors import ExportError
from wavesurrogate.nn import registry
from wavesurrogate.runs import load_run
from wavesurrogate.runs.export import OPSET, export_run, exportable, sidecar_path
from wavesurrogate.tasks.forecast import TASK as FORECAST
from wavesurrogate.tasks.forecast import load_forcing


def rel(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def _test_case(run: Path):
    model, info = load_run(run)
    with open_data(info.config.data.path) as f:
        cases = f.cases("test")
        fields, velocity = f.load_all(cases)
        forcing = load_forcing(f, cases, f.n_frames + 1)
    return model, info, fields, velocity, forcing


def test_forecast_graph_matches_the_library_one_step_and_rollout(forecast_run, forecast_onnx):
    model, info, fields, velocity, (amp, foot) = _test_case(forecast_run)
    m = edge.load(forecast_onnx)
    n_in, n = int(info.stats["n_in"]), fields.shape[1] - int(info.stats["n_in"])
    assert (m.task, m.meta["rollout"]) == ("forecast", {"n_in": 2, "n_out": 1, "update": "leapfrog",
                                                         "forcing": True})
    want = FORECAST.predict(model, info.stats, fields, velocity, n_in, n, forcing=(amp, foot)).numpy()
    got = m.rollout(fields[:, :n_in], velocity, n, forcing=edge.forcing_frames(amp, foot, n_in, n_in + n))
    assert got.shape == want.shape == (2, n, 16, 16)
    assert rel(got[:, :1], want[:, :1]) <= 1e-5  # one step: the same numbers up to float32 rounding
    assert rel(got, want) <= 1e-4  # 18 steps fed back through the leapfrog update
    assert rel(got, fields[:, n_in:]) < 10  # a real field, not zeros (2 epochs: no accuracy claimed)
    # batch is dynamic: batch 1 gives the same frames as batch 2
    one = m.rollout(fields[:1, :n_in], velocity[:1], 3, forcing=edge.forcing_frames(amp[:1], foot[:1], n_in,
                                                                                      n_in + 3))
    np.testing.assert_allclose(one, got[:1, :3], rtol=0, atol=1e-6 * np.abs(got).max())


def test_field_graph_matches_the_library_over_the_whole_grid(field_run, field_onnx):
    from wavesurrogate.tasks.source_to_field import grid_coords, param_affine

    model, info = load_run(field_run)
    s = info.stats
    m = edge.load(field_onnx)
    with open_data(info.config.data.path) as f:
        case = int(f.cases("test")[0])
        p = np.array([[float(f.params[k][case]) for k in s["param_names"]]])
        with torch.no_grad():
            want = model(param_affine(s).encode(p), grid_coords(s, f.x, f.y, f.t)[None]).double()
        want = (want * s["field_std"] + s["field_mean"]).numpy().reshape(1, f.n_frames, f.ny, f.nx)
        x, y, t = m.axes()
        np.testing.assert_allclose(x, f.x, atol=1e-9)
        np.testing.assert_allclose(t, f.t, atol=1e-12)
        truth = f.fields(case)
    got = m.field(m.params(source_x_m=p[0, 0], source_y_m=p[0, 1]))
    assert got.shape == (1, 10, 16, 16)
    assert rel(got, want) <= 1e-5
    assert rel(got, truth[None]) < 2.0  # a field, of the solver's size
    # dynamic batch and points: 3 sources at 5 points each equal the rows of the whole-grid answers
    pts = np.stack([x[[1, 3, 5, 7, 9]], y[[2, 2, 4, 4, 6]], t[[0, 3, 6, 9, 9]]], axis=1)
    three = m.points(np.repeat(p, 3, axis=0), pts)
    np.testing.assert_allclose(three[2], got[0][[0, 3, 6, 9, 9], [2, 2, 4, 4, 6], [1, 3, 5, 7, 9]], rtol=1e-5,
                               atol=1e-6 * np.abs(got).max())


def test_the_sidecar_and_graph_say_what_they_hold(forecast_onnx, field_onnx):
    import onnx

    side = json.loads(sidecar_path(forecast_onnx).read_text())
    assert side["format"] == "wavesurrogate-onnx/1" and side["task"] == "forecast"
    assert side["precision"] == "fp32" and side["opset"] == OPSET >= 18
    assert side["grid"]["ny"] == side["grid"]["nx"] == 16 and side["grid"]["dx_m"] == 10.0
    assert [i["name"] for i in side["inputs"]] == ["frames", "velocity", "forcing"]
    assert side["inputs"][1]["unit"] == "m/s" and side["onnx_bytes"] == forecast_onnx.stat().st_size
    g = onnx.load(str(forecast_onnx))
    assert max(o.version for o in g.opset_import if o.domain in ("", "ai.onnx")) >= 18
    dims = [d.dim_param or d.dim_value for d in g.graph.input[0].type.tensor_type.shape.dim]
    assert isinstance(dims[0], str) and dims[1:] == [2, 16, 16]  # batch is symbolic
    p = json.loads(sidecar_path(field_onnx).read_text())
    assert p["task"] == "source_to_field" and p["points"]["param_names"] == ["source_x_m", "source_y_m"]
    assert [d.dim_param or d.dim_value for d in onnx.load(str(field_onnx)).graph.input[1].type.tensor_type
            .shape.dim][2] == 3


def test_refusals_are_one_line_and_write_nothing(forecast_run, forecast_onnx, tmp_path, capsys):
    before = forecast_onnx.read_bytes()
    assert main(["export", str(forecast_run), "--out", str(forecast_onnx)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "exists; use --overwrite" in err
    assert forecast_onnx.read_bytes() == before
    assert main(["export", str(forecast_run), "--out", str(tmp_path / "m.bin")]) == 2
    assert "*.onnx" in capsys.readouterr().err and not list(tmp_path.iterdir())
    with pytest.raises(ExportError, match="FFTs"):
        exportable("fno", registry.entry("fno"))
    with pytest.raises(ExportError, match="cannot be exported to ONNX: .*grid_sample"):
        exportable("pod_deeponet", registry.entry("pod_deeponet"))
    with pytest.raises(ExportError, match="task 'boundary_trace' has no ONNX form"):
        tasks.get("boundary_trace").export(torch.nn.Identity(), {})


def test_edge_refuses_a_graph_that_is_not_its_sidecars(forecast_onnx, tmp_path):
    bad = tmp_path / "m.onnx"
    bad.write_bytes(forecast_onnx.read_bytes()[:-1] + b"\0")
    sidecar_path(bad).write_bytes(sidecar_path(forecast_onnx).read_bytes())
    with pytest.raises(ExportError, match="sha256"):
        edge.load(bad)
    with pytest.raises(ExportError, match="not found"):
        edge.load(tmp_path / "none.onnx")


BLOCK_TORCH = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is blocked on the edge path: " + name)
sys.meta_path.insert(0, Block())
import numpy as np
from wavesurrogate import edge
f = edge.load(sys.argv[1]); s = edge.load(sys.argv[2])
x = np.load(sys.argv[3])
out = f.rollout(x["frames"], x["velocity"], 3, forcing=x["forcing"])
field = s.field(s.params(source_x_m=70.0, source_y_m=80.0))
assert not any(m == "torch" or m.startswith("torch.") for m in sys.modules)
print(float(out.sum()), float(field.sum()))
"""


def test_the_edge_path_never_imports_torch(forecast_run, forecast_onnx, field_onnx, tmp_path):
    _, _, fields, velocity, (amp, foot) = _test_case(forecast_run)
    inputs = {"frames": fields[:, :2], "velocity": velocity, "forcing": edge.forcing_frames(amp, foot, 2, 5)}
    np.savez(tmp_path / "x.npz", **inputs)
    r = subprocess.run([sys.executable, "-c", BLOCK_TORCH, str(forecast_onnx), str(field_onnx),
                        str(tmp_path / "x.npz")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    f, s = edge.load(forecast_onnx), edge.load(field_onnx)
    want = (f.rollout(inputs["frames"], inputs["velocity"], 3, forcing=inputs["forcing"]).sum(),
            s.field(s.params(source_x_m=70.0, source_y_m=80.0)).sum())
    assert [float(v) for v in r.stdout.split()] == pytest.approx([float(w) for w in want], rel=1e-6)


def test_int8_is_static_per_channel_qdq_with_first_last_and_elementwise_in_fp32(forecast_run, forecast_onnx,
                                                                                  tmp_path):
    import onnx

    out = export_run(forecast_run, tmp_path / "q.onnx", int8=True, n_calibration=16)
    side = json.loads(sidecar_path(out).read_text())
    assert side["precision"] == "int8" and side["int8"]["calibration_inputs"] == 16
    g = onnx.load(str(out)).graph
    producer = {o: n for n in g.node for o in n.output}
    convs = [n for n in g.node if n.op_type == "Conv"]
    dq = [producer.get(n.input[1]) for n in convs]
    quantised = [d is not None and d.op_type == "DequantizeLinear" for d in dq]
    assert not quantised[0] and not quantised[-1] and all(quantised[1:-1]) and len(convs) >= 4
    init = {i.name: i for i in g.initializer}
    scale = init[dq[1].input[1]]
    assert list(scale.dims) == [convs[1].output and init[dq[1].input[0]].dims[0]]  # one scale per channel
    adds = {o for n in g.node if n.op_type in ("Add", "Sub", "Div", "Erf") for o in n.output}
    assert adds and not any(n.op_type == "QuantizeLinear" and n.input[0] in adds for n in g.node)  # fp32 adds
    _, _, fields, velocity, (amp, foot) = _test_case(forecast_run)
    x = (fields[:, 10:12], velocity, edge.forcing_frames(amp, foot, 12, 13))
    q, f = edge.load(out).step(*x), edge.load(forecast_onnx).step(*x)
    print("int8 vs fp32 one step", rel(q, f), "fp32 vs truth", rel(f, fields[:, 12:13]))
    assert 0 < rel(q, f) < 0.1  # quantised: not the same numbers, but close on a one-step answer

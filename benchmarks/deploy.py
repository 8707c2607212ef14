"""Deploying the demo's models as ONNX (issue 20): torch against ONNX Runtime fp32 and int8, in one run.

    .venv/bin/python -m benchmarks.deploy [--scale full|reduced] [--runs DIR] [--repeats 30]
                                          [--out benchmarks/out/deploy.json]

Models: the demo's ``dense`` and ``cp`` forecast runs (``configs/demo_dense.yaml``, ``configs/demo_cp.yaml``
on ``configs/demo.yaml``) and its accurate source → field model (``relative_operator``,
``configs/demo_relative.yaml`` on ``configs/demo_free.yaml``), trained here with ``train_or_reuse`` unless
finished runs of the same configs lie in ``--runs`` (default ``runs/demo``, where ``make demo`` leaves them).
``--scale reduced`` keeps the architectures and shrinks campaigns and epochs (demo: 12 + 4 cases of 40
frames, 6 epochs, unroll 1 → 2; free field: 40 + 8 sources, 150 epochs; NumPy FD backend) so that the whole
benchmark fits ~15 minutes on a loaded 2-core machine: its errors are those of briefly trained models, its
sizes, memory and latencies those of the real architectures.

Per model and runtime (``torch``: the run's model with the same normalisation module the export wraps, eval
mode, inference mode, one thread; ``ort_fp32`` / ``ort_int8``: ``wavesurrogate export`` [--int8] read by
``wavesurrogate.edge``, one onnxruntime thread):
- ``bytes``: the weights file a device would hold (torch: the best state dict as safetensors; ORT: the .onnx);
- ``peak_rss_mb``: peak resident memory of a fresh process that loads the model and answers one batch of 32
  (torch: imports torch and the package; ORT: imports only ``wavesurrogate.edge``);
- ``latency_b1_ms`` / ``latency_b32_ms``: median wall time of one call at batch 1 and 32 (forecast: one step;
  source → field: sources × 4,096 (x, y, t) points), the three runtimes interleaved round by round;
- ``one_step_error``: pooled relative L2 against the stored truth (forecast: every window of the test cases,
  true inputs; source → field: every node of every frame of the test sources);
- ``rollout_error``: forecast only, pooled relative L2 of the rollout from frame 0 (the first n_in true
  frames) to the last frame (``Forecast.predict`` for torch, ``EdgeModel.rollout`` for ORT);
- ``vs_torch``: relative L2 distance to torch's answer (one step; rollout beside it).
int8 rows: ``accuracy_loss`` (their errors over fp32's), ``time_ratio_b1`` (their batch-1 time over fp32's),
``recommended``: rollout error ≤ 1.5× fp32's (source → field: the field error, which is its only error), and a
``caveat`` where fp32's own error is above 50 % (a ratio of diverged rollouts says little). Goal per model:
ORT fp32 matches torch to ≤ 1e-5
relative (one step).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out" / "deploy.json"
QUERY_POINTS, MATCH_TARGET, INT8_FACTOR = 4096, 1e-5, 1.5
DIVERGED = 0.5  # an fp32 error above this makes the int8 verdict a caveat
RUNTIMES = ("torch", "ort_fp32", "ort_int8")


def rel(a: Any, b: Any) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def plans(scale: str) -> dict[str, tuple[dict[str, Any], str, dict[str, Any]]]:
    """label → (campaign mapping, its file stem, training config mapping) at ``scale``."""
    from wavesurrogate.apps.demo import plan
    from wavesurrogate.apps.demo_operator import operator_plan

    p = plan(False)
    free, rel_cfg = operator_plan(False)
    demo, train = p.campaign, p.train
    if scale == "reduced":
        numpy = {"backend": "numpy"}
        demo = {**demo, "name": "demo-deploy", "cases": 12, "test_cases": 4,
                "time": {**demo["time"], "n_frames": 40}, "solver": {**demo["solver"], **numpy}}
        short = {"unroll": [1, 2], "stage_epochs": 3}
        train = {k: {**c, "name": f"{c['name']}-deploy", "epochs": 6, "rollout": {**c["rollout"], **short}}
                 for k, c in train.items()}
        free = {**free, "name": "demo_free-deploy", "cases": 40, "test_cases": 8,
                "solver": {**free["solver"], **numpy}}
        rel_cfg = {**rel_cfg, "name": "demo_relative-deploy", "epochs": 150}
    stem = "data" if scale == "full" else "deploy"
    return {"dense": (demo, stem, train["dense"]), "cp": (demo, stem, train["cp"]),
            "relative": (free, "free" if scale == "full" else "deploy_free", rel_cfg)}


def stage(scale: str, runs: Path) -> dict[str, Path]:
    """Campaigns made once and runs trained (or reused) under ``runs``."""
    from wavesurrogate.apps.stages import stage_campaign
    from wavesurrogate.train.loop import config_from_dict, train_or_reuse

    out = {}
    for label, (campaign, stem, raw) in plans(scale).items():
        data, how = stage_campaign(campaign, runs, stem)
        print(f"deploy: {label}: campaign {how}: {data}", file=sys.stderr)
        suffix = "" if scale == "full" else "_deploy"
        cfg = config_from_dict({**raw, "data": {**raw["data"], "path": str(data)},
                                "out": str(runs / f"{label}{suffix}"), "num_threads": 1, "progress": False})
        out[label], trained = train_or_reuse(cfg)
        how = "trained" if trained else "finished run reused"
        print(f"deploy: {label}: {how}: {out[label]}", file=sys.stderr)
    return out


RSS_SCRIPT = """
import sys
import numpy as np
kind, model, inputs = sys.argv[1], sys.argv[2], dict(np.load(sys.argv[3]))
if kind == "torch":
    import torch
    torch.set_num_threads(1)
    from wavesurrogate.runs import load_run
    from wavesurrogate.runs.export import wrap
    m, info = load_run(model)
    mod = wrap(m, info)[0]
    with torch.inference_mode():
        mod(*(torch.from_numpy(v) for v in inputs.values()))
else:
    from wavesurrogate import edge
    edge.load(model).run(**inputs)
    assert "torch" not in sys.modules
with open("/proc/self/status") as f:  # VmHWM: its own peak (ru_maxrss keeps the parent's over exec)
    print(next(int(ln.split()[1]) for ln in f if ln.startswith("VmHWM:")) / 1024.0)
"""


def peak_rss_mb(kind: str, model: Path, inputs: Path) -> float:
    """Peak resident MB of a fresh process loading ``model`` (a run or an .onnx) and answering ``inputs``."""
    r = subprocess.run([sys.executable, "-c", RSS_SCRIPT, kind, str(model), str(inputs)], capture_output=True,
                       text=True, timeout=600, cwd=ROOT, env={"OMP_NUM_THREADS": "1", **_env()})
    if r.returncode != 0:
        raise RuntimeError(f"peak RSS of {kind} failed: {r.stderr.strip().splitlines()[-1:]}")
    return float(r.stdout.split()[-1])


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}


def latencies(calls: dict[str, dict[int, Any]], repeats: int) -> dict[str, dict[int, float]]:
    """Median ms per runtime and batch; runtimes interleaved in every round (``eval.timing.round_robin``)."""
    from wavesurrogate.eval.timing import round_robin, with_threads

    fns = {f"{k}@{b}": fn for k, by in calls.items() for b, fn in by.items()}
    got = with_threads(1, lambda: round_robin(fns, repeats, warmup=3))
    out: dict[str, dict[int, float]] = {k: {} for k in calls}
    for name, (wall, _) in got.items():
        k, b = name.split("@")
        out[k][int(b)] = 1e3 * statistics.median(wall)
    return out


def _torch_call(mod: torch.nn.Module, args: tuple[np.ndarray, ...]) -> Any:
    ts = tuple(torch.from_numpy(np.ascontiguousarray(a)) for a in args)

    def call() -> Any:
        with torch.inference_mode():
            return mod(*ts)
    return call


def _state_bytes(model: torch.nn.Module) -> int:
    from safetensors.torch import save

    return len(save({k: v.contiguous() for k, v in model.state_dict().items()}))


def measure(label: str, run: Path, work: Path, repeats: int) -> list[dict[str, Any]]:
    """The three rows (torch, ORT fp32, ORT int8) of one run."""
    from wavesurrogate import edge
    from wavesurrogate.data.store import open_data
    from wavesurrogate.runs import load_run
    from wavesurrogate.runs.export import export_run, wrap

    model, info = load_run(run)
    mod = wrap(model, info)[0]
    paths = {"ort_fp32": export_run(run, work / f"{label}.onnx", overwrite=True),
             "ort_int8": export_run(run, work / f"{label}_int8.onnx", int8=True, overwrite=True)}
    ort = {k: edge.load(p, threads=1) for k, p in paths.items()}
    s = info.stats
    with open_data(info.config.data.path) as f:
        cases = np.flatnonzero((f.split == 1) & f.done)
        fields, velocity = f.load_all(cases)
        if info.task == "forecast":
            from wavesurrogate.tasks.forecast import load_forcing

            forcing = load_forcing(f, cases, f.n_frames + int(s["n_out"]))
        else:
            params = np.stack([np.asarray(f.params[k], np.float64)[cases] for k in s["param_names"]], 1)
            grid = np.stack(np.meshgrid(f.t, f.y, f.x, indexing="ij")[::-1], axis=-1).reshape(-1, 3)
            lo, hi = np.array([f.x.min(), f.y.min(), f.t.min()]), np.array([f.x.max(), f.y.max(), f.t.max()])
    answers: dict[str, dict[str, Any]] = {k: {} for k in RUNTIMES}
    if info.task == "forecast":
        from wavesurrogate.tasks.forecast import TASK

        n_in, n_out = int(s["n_in"]), int(s["n_out"])
        amp, foot = forcing
        idx = [(c, t) for c in range(len(cases)) for t in range(fields.shape[1] - n_in - n_out + 1)]
        xs = [np.stack([fields[c, t : t + n_in] for c, t in idx]).astype(np.float32),
              velocity[[c for c, _ in idx], None].astype(np.float32)]
        if "forcing" in s.get("inputs", []):
            xs.append(np.stack([edge.forcing_frames(amp[c : c + 1], foot[c : c + 1], t + n_in,
                                                    t + n_in + n_out)[0] for c, t in idx]))
        truth = np.stack([fields[c, t + n_in : t + n_in + n_out] for c, t in idx])
        chunks = range(0, len(idx), 32)
        with torch.inference_mode():
            answers["torch"]["one"] = np.concatenate(
                [mod(*(torch.from_numpy(a[i : i + 32]) for a in xs)).numpy() for i in chunks])
        for k, m in ort.items():
            answers[k]["one"] = np.concatenate([m.run(**dict(zip(m.inputs, (a[i : i + 32] for a in xs),
                                                                 strict=True))) for i in chunks])
        n = fields.shape[1] - n_in
        answers["torch"]["roll"] = TASK.predict(model, s, fields, velocity, n_in, n, forcing=forcing).numpy()
        calls = -(-n // n_out)
        ff = edge.forcing_frames(amp, foot, n_in, n_in + calls * n_out) if len(xs) == 3 else None
        for k, m in ort.items():
            answers[k]["roll"] = m.rollout(fields[:, :n_in], velocity, n, forcing=ff)
        true_roll = fields[:, n_in:]
        batches = {b: tuple(a[:b] for a in xs) for b in (1, 32)}
    else:
        torch_field = []
        with torch.inference_mode():
            for i in range(len(cases)):
                torch_field.append(mod(torch.from_numpy(params[i : i + 1].astype(np.float32)),
                                       torch.from_numpy(grid[None].astype(np.float32))).numpy())
        answers["torch"]["one"] = np.concatenate(torch_field).reshape(fields.shape)
        for k, m in ort.items():
            answers[k]["one"] = m.points(params, grid).reshape(fields.shape)
        truth = fields
        rng = np.random.default_rng(7)
        pts = (lo + (hi - lo) * rng.random((32, QUERY_POINTS, 3))).astype(np.float32)
        p32 = params[rng.integers(0, len(params), 32)].astype(np.float32)
        batches = {b: (p32[:b], pts[:b]) for b in (1, 32)}
    timing = {"torch": {b: _torch_call(mod, a) for b, a in batches.items()}}
    for k, m in ort.items():
        timing[k] = {b: (lambda m=m, a=a: m.run(**dict(zip(m.inputs, a, strict=True))))
                     for b, a in batches.items()}
    lat = latencies(timing, repeats)
    np.savez(work / f"{label}_b32.npz", **dict(zip(ort["ort_fp32"].inputs, batches[32], strict=True)))
    rows = []
    for k in RUNTIMES:
        a = answers[k]
        row = {"model": label, "runtime": k, "task": info.task, "params": int(sum(p.numel() for p in
                                                                              model.parameters())),
               "bytes": _state_bytes(model) if k == "torch" else paths[k].stat().st_size,
               "peak_rss_mb": peak_rss_mb("torch" if k == "torch" else "ort",
                                          run if k == "torch" else paths[k], work / f"{label}_b32.npz"),
               "latency_b1_ms": lat[k][1], "latency_b32_ms": lat[k][32],
               "one_step_error": rel(a["one"], truth), "vs_torch": rel(a["one"], answers["torch"]["one"]),
               "rollout_error": rel(a["roll"], true_roll) if "roll" in a else None,
               "rollout_vs_torch": rel(a["roll"], answers["torch"]["roll"]) if "roll" in a else None}
        rows.append(row)
    fp32, int8 = rows[1], rows[2]
    key = "rollout_error" if int8["rollout_error"] is not None else "one_step_error"
    int8["accuracy_loss"] = {"one_step_error_ratio": int8["one_step_error"] / fp32["one_step_error"],
                             "rollout_error_ratio": None if fp32["rollout_error"] is None else
                             int8["rollout_error"] / fp32["rollout_error"]}
    int8["recommended"] = bool(int8[key] <= INT8_FACTOR * fp32[key])
    int8["recommended_by"] = f"{key} <= {INT8_FACTOR} x fp32's"
    int8["time_ratio_b1"] = int8["latency_b1_ms"] / fp32["latency_b1_ms"]
    if fp32[key] > DIVERGED:
        what = key.replace("_", " ")
        int8["caveat"] = (f"fp32's own {what} is {100 * fp32[key]:.0f} %: a ratio of rollouts that far off "
                          "says little")
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from wavesurrogate.eval.bench import machine_info
    from wavesurrogate.io import write_json

    ap = argparse.ArgumentParser(prog="benchmarks.deploy")
    ap.add_argument("--scale", choices=("full", "reduced"), default="full")
    ap.add_argument("--runs", type=Path, default=None, help="run directory root (default runs/demo)")
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args(argv)
    import onnxruntime

    torch.set_num_threads(1)
    runs = (a.runs or ROOT / "runs" / "demo").resolve()
    runs.mkdir(parents=True, exist_ok=True)
    before = machine_info()
    staged = stage(a.scale, runs)
    work = runs / "deploy"
    work.mkdir(exist_ok=True)
    rows = [r for label, run in staged.items() for r in measure(label, run, work, a.repeats)]
    goals = {f"onnx_fp32_matches_torch_{r['model']}": {
        "measured": r["vs_torch"], "target": MATCH_TARGET, "op": "<=",
        "met": bool(r["vs_torch"] <= MATCH_TARGET),
        "unit": "relative L2, ORT fp32 vs torch, one step (forecast: every test window; source → field: "
                "whole fields of the test sources)"} for r in rows if r["runtime"] == "ort_fp32"}
    res = {"benchmark": "deploy", "issue": 20, "scale": a.scale,
           "note": None if a.scale == "full" else "reduced: the demo's architectures on smaller campaigns "
           "and fewer epochs (see the module docstring); errors are those of briefly trained models",
           "runs": {k: str(v) for k, v in staged.items()}, "repeats": a.repeats, "threads": 1,
           "onnxruntime": onnxruntime.__version__, "machine": before,
           "load_1min_after": machine_info()["load_1min"],
           "int8_rule": f"recommended where the rollout error (source → field: the field error) is <= "
                        f"{INT8_FACTOR} x fp32's", "rows": rows, "goals": goals}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(a.out, res)
    print(json.dumps({"goals": goals}, indent=1))
    return res


if __name__ == "__main__":
    main()

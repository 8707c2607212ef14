"""``wavesurrogate demo`` (``make demo``): campaign → dense and CP CNN → evaluate → bench → figures → report.

Everything runs on local files: the campaign of ``configs/demo.yaml``, two surrogates of the same cnn2d
architecture (``configs/demo_dense.yaml``, ``configs/demo_cp.yaml``: every spatial convolution dense, or in
CP format with about a tenth of the parameters) trained for a fixed time budget each, their evaluation on
the test cases, the bench table against the solver, figures and ``report.md``. Re-running skips the
stages whose outputs are complete (a budget-stopped training counts as complete). ``quick=True`` is a
reduced variant (fewer, shorter cases, smaller networks, seconds of training) for the end-to-end test.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from rich.console import Console

from wavesurrogate.errors import ConfigError, DataFileError
from wavesurrogate.runs.layout import holds_config, read_metrics
from wavesurrogate.tasks.forecast import field_affine, velocity_affine

__all__ = ["DemoPlan", "plan", "find_config", "run_demo"]

LABELS = ("dense", "cp")


@dataclass(frozen=True)
class DemoPlan:
    """What the demo runs: campaign and training configs (mappings), budget a model, bench repeats."""

    campaign: dict[str, Any]
    train: dict[str, dict[str, Any]]
    budget_s: float
    repeats: int
    quick: bool
    notes: list[str] = field(default_factory=list)


def find_config(name: str) -> Path:
    """Path of a shipped config: in the package's ``configs`` (a link) or the repository's."""
    try:
        p = Path(str(resources.files("wavesurrogate") / "configs" / name))
        if p.is_file():
            return p
    except (ModuleNotFoundError, FileNotFoundError):  # pragma: no cover - odd installs
        pass
    p = Path(__file__).resolve().parents[3] / "configs" / name
    if p.is_file():
        return p
    raise ConfigError(f"demo: shipped config {name!r} not found (package configs/ or repository configs/)")


def _read(name: str) -> dict[str, Any]:
    return yaml.safe_load(find_config(name).read_text(encoding="utf-8"))


def plan(quick: bool = False) -> DemoPlan:
    """The demo's configs: the shipped ones, or (quick) few short cases, small networks, short training."""
    campaign = _read("demo.yaml")
    train = {"dense": _read("demo_dense.yaml"), "cp": _read("demo_cp.yaml")}
    if not quick:
        return DemoPlan(campaign, train, budget_s=240.0, repeats=15, quick=False)
    campaign = {**campaign, "name": "demo-quick", "cases": 5, "test_cases": 2,
                "time": {**campaign["time"], "n_frames": 45},
                "solver": {**campaign.get("solver", {}), "backend": "numpy"}}  # no compile for 7 small cases
    for label, cfg in train.items():
        kw = {**cfg["model"]["kwargs"], "width": 8, "depth": 1}
        if label == "cp":
            kw["conv"] = {**kw["conv"], "layer_params": 100}  # 884 of the quick dense net's 9,681
        train[label] = {**cfg, "name": f"demo-quick-{label}", "epochs": 2,
                        "data": {**cfg["data"], "window_stride": 4},
                        "model": {**cfg["model"], "kwargs": kw}}
    return DemoPlan(campaign, train, budget_s=15.0, repeats=3, quick=True,
                    notes=["quick variant: 7 short cases, small networks, 2 epochs at most; "
                           "its numbers only show that the pipeline runs"])


# ------------------------------------------------------------------------------------------------ stages


def _fresh(out: Path, *inputs: Path) -> bool:
    """Whether ``out`` exists and is at least as new as every existing input."""
    if not out.exists():
        return False
    t = out.stat().st_mtime
    return all(t >= p.stat().st_mtime for p in inputs if p.exists())


def _stage_data(p: DemoPlan, out: Path) -> tuple[Path, str]:
    """Simulate the campaign into ``out``/data.h5 unless a complete file of this config is there."""
    from wavesurrogate.config.base import dump_yaml
    from wavesurrogate.data.campaign import run_campaign
    from wavesurrogate.data.cases import load_campaign
    from wavesurrogate.data.store import open_data
    from wavesurrogate.io import atomic_write_text

    cfg_path = out / "campaign.yaml"
    text = yaml.safe_dump(p.campaign, sort_keys=False)
    if not cfg_path.is_file() or cfg_path.read_text(encoding="utf-8") != text:
        atomic_write_text(cfg_path, text)
    data = out / "data.h5"
    want = dump_yaml(load_campaign(cfg_path))
    if data.is_file():
        try:
            with open_data(data) as f:
                if f.attrs.get("config_yaml") == want and bool(f.done.all()):
                    return data, "complete data file found"
        except DataFileError:
            pass
    overwrite = data.exists() and not (out / "data.h5.work").is_dir()
    run_campaign(cfg_path, data, overwrite=overwrite)
    return data, "simulated"


def _train_config(p: DemoPlan, label: str, data: Path, run_dir: Path) -> Any:
    from wavesurrogate.train.loop import config_from_dict

    raw = p.train[label]
    cfg = config_from_dict({**raw, "data": {**raw["data"], "path": str(data)}, "out": str(run_dir)})
    return cfg.resolved()


def _stage_train(p: DemoPlan, label: str, data: Path, out: Path,
                 say: Callable[[str], None]) -> dict[str, Any]:
    """Train one model epoch by epoch until its epochs or its time budget are spent; resumes a stopped run."""
    from wavesurrogate.io import atomic_write_text
    from wavesurrogate.runs import OPTIM
    from wavesurrogate.train.loop import train

    run_dir = out / label
    cfg = _train_config(p, label, data, run_dir)
    marker = run_dir / "demo_training.json"
    same = holds_config(run_dir, cfg)
    if same and marker.is_file() and _fresh(marker, run_dir / "weights.safetensors"):
        return {**json.loads(marker.read_text(encoding="utf-8")), "skipped": True}
    rows = read_metrics(run_dir) if same and (run_dir / OPTIM).is_file() else []
    while len(rows) < cfg.epochs:
        spent = sum(r["seconds"] for r in rows)
        if rows and spent + float(np.median([r["seconds"] for r in rows])) > p.budget_s:
            break
        if rows:
            train(cfg, resume=run_dir, stop_after_epoch=len(rows) + 1)
        else:
            run_dir.mkdir(parents=True, exist_ok=True)
            train(cfg, overwrite=True, stop_after_epoch=1)
        rows = read_metrics(run_dir)
        r = rows[-1]
        val = "n/a" if r.get("val_loss") is None else f"{r['val_loss']:.3g}"
        say(f"  {label}: epoch {r['epoch']}/{cfg.epochs}  train loss {r['train_loss']:.3g}  val loss {val}"
            f"  ({r['seconds']:.1f} s)")
    info = {"label": label, "epochs": len(rows), "max_epochs": cfg.epochs, "budget_s": p.budget_s,
            "train_s": float(sum(r["seconds"] for r in rows)),
            "stopped": "epochs" if len(rows) >= cfg.epochs else "time budget"}
    atomic_write_text(marker, json.dumps(info, indent=2) + "\n")
    return info


def _stage_evaluate(run_dir: Path, data: Path) -> dict[str, Any]:
    """The run's evaluation on the test cases (evaluate.json), recomputed if older than weights or data."""
    from wavesurrogate.eval.evaluate import evaluate_run

    out = run_dir / "evaluate.json"
    if not _fresh(out, run_dir / "weights.safetensors", data):
        evaluate_run(run_dir, data, out=out)
    return json.loads(out.read_text(encoding="utf-8"))


# ------------------------------------------------------------------------------------------------ figures


def _one_step(model: torch.nn.Module, stats: dict[str, Any], fields: np.ndarray, velocity: np.ndarray,
              frames: list[int]) -> np.ndarray:
    """One-step predictions (true inputs) of the given frames of one case, field units [len(frames), y, x]."""
    n_in, fa = int(stats["n_in"]), field_affine(stats)
    f, v = fa.encode(fields), velocity_affine(stats).encode(velocity)
    x = torch.stack([torch.cat([f[t - n_in:t], v[None]]) for t in frames])
    with torch.inference_mode():
        return fa.decode(model(x)[:, 0]).numpy()


def _rollout(model: torch.nn.Module, stats: dict[str, Any], fields: np.ndarray, velocity: np.ndarray,
             start: int, horizon: int) -> np.ndarray:
    """Rollout of ``horizon`` frames from true frames [start - n_in, start), field units [horizon, y, x]."""
    from wavesurrogate.nn.rollout import rollout

    n_in, fa = int(stats["n_in"]), field_affine(stats)
    x0, v = fa.encode(fields[start - n_in:start])[None], velocity_affine(stats).encode(velocity)[None]
    with torch.inference_mode():
        return fa.decode(rollout(model, x0, v, horizon)[0]).numpy()


def _stage_figures(out: Path, data: Path, runs: dict[str, Path], evals: dict[str, dict], bench: dict,
                   gif_horizon: int = 40) -> list[tuple[str, str]]:
    """Every figure of the report into ``out``/figures; returns (caption, path relative to ``out``)."""
    from wavesurrogate.data.store import open_data
    from wavesurrogate.eval import plots
    from wavesurrogate.runs import load_run

    fig_dir = out / "figures"
    figs: list[tuple[str, str]] = []

    def add(caption: str, path: Path) -> None:
        figs.append((caption, str(path.relative_to(out))))

    with open_data(data) as f:
        test = np.flatnonzero((f.split == 1) & f.done)
        case = int(test[0] if len(test) else 0)
        fields, velocity = f.fields(case), f.velocity(case)
        times, extent = f.t, (float(f.x[0]), float(f.x[-1]), float(f.y[0]), float(f.y[-1]))
    n_frames = fields.shape[0]
    models = {k: load_run(v, "best") for k, v in runs.items()}
    n_in = int(next(iter(models.values()))[1].stats["n_in"])
    shown = sorted({int(round(v)) for v in np.linspace(max(n_in, n_frames // 4), n_frames - 1, 4)})
    for label, (model, info) in models.items():
        pred = _one_step(model, info.stats, fields, velocity, shown)
        add(f"{label}: one-step predictions on test case {case} (inputs are true frames)",
            plots.snapshots(fields[shown], pred, times[shown], fig_dir / f"snapshots_{label}.png", extent,
                            title=f"{label}: truth, one-step prediction and error, test case {case}"))
    curves = {k: (ev["rollout"]["horizon"], ev["rollout"]["rel_l2"])
              for k, ev in evals.items() if ev.get("rollout")}
    if curves:
        add("Rollout error against horizon, pooled over the test cases. Rollouts start from each case's "
            "first frames, while the source is still emitting: the inputs (past frames and velocity) hardly "
            "tell the network what the source injects next, the likely reason for the large errors",
            plots.rollout_curves(curves, fig_dir / "rollout_error.png",
                                 title="Autoregressive rollout error on the test cases"))
    pts = [{"label": r["run"], "params": r["params"], "latency_ms": r["latency_b1"]["per_sample_ms"],
            "error": r["test_rel_l2"]} for r in bench["runs"] if r.get("test_rel_l2") is not None]
    if pts:
        add("Test error against trainable parameters and against latency (Pareto front in red)",
            plots.pareto(pts, fig_dir / "pareto.png"))
    for k, comp in enumerate(c for c in bench.get("coarse") or [] if c.get("rows") and c.get("models")):
        add("Whole-rollout error against wall time for the same frames: surrogates and the campaign's FD "
            "solver on coarser grids (coarse-solver baselines; a zero error is drawn a decade below the "
            "smallest). " + comp["verdict"],
            plots.solver_pareto(comp["models"], comp["rows"],
                                fig_dir / f"pareto_solvers{'' if k == 0 else k}.png"))
    add("Training curves (normalised MSE)",
        plots.training_curves({k: read_metrics(v) for k, v in runs.items()}, fig_dir / "training.png"))
    best = min(bench["runs"],
               key=lambda r: r["test_rel_l2"] if r.get("test_rel_l2") is not None else math.inf)
    model, info = models[best["run"]]
    horizon = min(gif_horizon, n_frames - n_in)
    start = n_frames - horizon
    pred = _rollout(model, info.stats, fields, velocity, start, horizon)
    add(f"{best['run']} (most accurate) rolled out {horizon} frames from frame {start} of test case {case}, "
        f"beside the solver",
        plots.rollout_gif(fields[start:], pred, fig_dir / "rollout.gif", times_s=times[start:],
                          title=f"{best['run']}, test case {case}"))
    return figs


# ------------------------------------------------------------------------------------------------ report


def _intro(p: DemoPlan, data: Path, trained: dict[str, dict], bench: dict) -> list[str]:
    c = p.campaign
    g, t = c["grid"], c["time"]
    lines = [
        f"Produced by `wavesurrogate demo{' --quick' if p.quick else ''}` on "
        f"{time.strftime('%Y-%m-%d %H:%M')}; every number below was measured by that run.",
        "",
        f"- **Campaign** `{c.get('name')}`: {c['cases']} training and {c.get('test_cases', 0)} test cases, "
        f"{g['nx']} × {g['ny']} grid ({g['dx_m']} m spacing), {t['n_frames']} frames, one every "
        f"{t.get('frame_stride', 1)} solver steps; data `{data.name}`.",
    ]
    recs = {r["run"]: r for r in bench["runs"]}
    for label, tr in trained.items():
        r = recs.get(label, {})
        conv = (r.get("kwargs") or {}).get("conv") or {"format": "dense"}
        fmt = conv["format"] + (f", rank {conv['rank']}" if "rank" in conv else "") + " convolutions"
        if "layer_params" in conv:
            fmt += f" (each layer's rank the largest fitting {conv['layer_params']:,} factor weights)"
        lines.append(f"- **{label}**: `{r.get('model', '?')}` with {fmt}, "
                     f"{r.get('params', 0):,} trainable parameters; trained {tr['epochs']} of "
                     f"{tr['max_epochs']} epochs in {tr['train_s']:.0f} s (stopped by {tr['stopped']}; "
                     f"budget {tr['budget_s']:.0f} s); "
                     f"best validation epoch {r.get('best_epoch', '?')}.")
    lines += [f"- Note: {n}" for n in p.notes]
    return lines


def run_demo(out_dir: str | Path = "runs/demo", quick: bool = False) -> str:
    """Run the whole demo into ``out_dir`` (resumable); returns where the report is."""
    from wavesurrogate.data.store import describe
    from wavesurrogate.eval.bench import bench_runs
    from wavesurrogate.eval.report import write_report
    from wavesurrogate.io import atomic_write_text

    console = Console(stderr=True)
    p = plan(quick)
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    t_all = time.perf_counter()

    def stage(name: str, fn: Callable[[], Any]) -> Any:
        console.print(f"[bold]demo[/bold] {name} …")
        t0 = time.perf_counter()
        res = fn()
        timings[name] = time.perf_counter() - t0
        console.print(f"[bold]demo[/bold] {name}: done in {timings[name]:.1f} s")
        return res

    data, how = stage("campaign", lambda: _stage_data(p, out))
    console.print(f"  {how}: {data}")
    trained = {k: stage(f"train {k}", lambda k=k: _stage_train(p, k, data, out, console.print))
               for k in LABELS}
    runs = {k: out / k for k in LABELS}
    evals = stage("evaluate", lambda: {k: _stage_evaluate(v, data) for k, v in runs.items()})
    bench_dir = out / "bench"
    bench_json = bench_dir / "bench.json"

    def do_bench() -> dict:
        inputs = [data, *(v / "weights.safetensors" for v in runs.values()),
                  *(v / "evaluate.json" for v in runs.values())]
        if not _fresh(bench_json, *inputs):
            bench_runs(list(runs.values()), bench_dir, data=data, repeats=p.repeats)
        return json.loads(bench_json.read_text(encoding="utf-8"))

    bench = stage("bench", do_bench)
    def do_figures() -> list[tuple[str, str]]:
        index = out / "figures" / "index.json"
        if _fresh(index, bench_json, *(v / "evaluate.json" for v in runs.values())):
            figs = [tuple(f) for f in json.loads(index.read_text(encoding="utf-8"))]
            if all((out / f[1]).is_file() for f in figs):
                return figs
        figs = _stage_figures(out, data, runs, evals, bench)
        atomic_write_text(index, json.dumps(figs, indent=1) + "\n")
        return figs

    figs = stage("figures", do_figures)
    timings["total (this invocation)"] = time.perf_counter() - t_all
    report = write_report(out / "report.md", bench, figures=figs,
                          title="wavesurrogate demo" + (" (quick)" if quick else ""),
                          intro=_intro(p, data, trained, bench), data_summary=describe(data), timings=timings)
    console.print(f"[bold green]demo[/bold green] finished in {timings['total (this invocation)']:.0f} s")
    return f"report: {report}"

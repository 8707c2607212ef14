"""``wavesurrogate demo`` (``make demo``): campaign → dense and CP CNN → evaluate → bench → figures → report.

Everything runs on local files: the campaign of ``configs/demo.yaml``, two surrogates of the same cnn2d
architecture (``configs/demo_dense.yaml``, ``configs/demo_cp.yaml``: every spatial convolution dense, or in
CP format with about a tenth of the parameters), each trained for the same fixed number of epochs at its own
learning rate (no time budget: the same seed and thread count give the same numbers under any load), with
the forcing input, evaluated by rollouts from frame 0, benched against the fine and coarse solvers, figures,
and a section on the source → field operator (``apps.demo_operator``) in ``report.md``. Re-running skips the
stages whose outputs are complete. ``quick=True`` is a reduced variant (fewer, shorter cases, smaller
networks, few epochs) for the end-to-end test.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console

from wavesurrogate.apps.demo_operator import operator_lines, run_operator
from wavesurrogate.apps.stages import find_config, fresh, read_config, stage_campaign
from wavesurrogate.progress import progress_wanted
from wavesurrogate.runs.layout import read_metrics
from wavesurrogate.safeload import load_json
from wavesurrogate.tasks.forecast import TASK as FORECAST
from wavesurrogate.tasks.forecast import load_forcing

__all__ = ["DemoPlan", "plan", "find_config", "run_demo"]  # find_config: apps.stages

LABELS = ("dense", "cp")


@dataclass(frozen=True)
class DemoPlan:
    """What the demo runs: campaign and training configs (mappings), bench repeats."""

    campaign: dict[str, Any]
    train: dict[str, dict[str, Any]]
    repeats: int
    quick: bool
    notes: list[str] = field(default_factory=list)


def plan(quick: bool = False) -> DemoPlan:
    """The demo's configs: the shipped ones, or (quick) few short cases, small networks, 2 epochs."""
    campaign = read_config("demo.yaml")
    train = {"dense": read_config("demo_dense.yaml"), "cp": read_config("demo_cp.yaml")}
    if not quick:
        return DemoPlan(campaign, train, repeats=15, quick=False)
    campaign = {**campaign, "name": "demo-quick", "cases": 5, "test_cases": 2,
                "time": {**campaign["time"], "n_frames": 45},
                "solver": {**campaign.get("solver", {}), "backend": "numpy"}}  # no compile for 7 small cases
    for label, cfg in train.items():
        kw = {**cfg["model"]["kwargs"], "width": 8, "depth": 1}
        if label == "cp":
            kw["conv"] = {**kw["conv"], "layer_params": 100}  # 884 of the quick dense net's 9,681
        train[label] = {**cfg, "name": f"demo-quick-{label}", "epochs": 2, "rollout": {"unroll": [1, 2]},
                        "data": {**cfg["data"], "window_stride": 4},
                        "model": {**cfg["model"], "kwargs": kw}}
    return DemoPlan(campaign, train, repeats=3, quick=True,
                    notes=["quick variant: 7 short cases, small networks, 2 epochs; "
                           "its numbers only show that the pipeline runs"])


# ------------------------------------------------------------------------------------------------ stages


def _train_config(p: DemoPlan, label: str, data: Path, run_dir: Path) -> Any:
    from wavesurrogate.train.loop import config_from_dict

    raw = p.train[label]
    cfg = config_from_dict({**raw, "data": {**raw["data"], "path": str(data)}, "out": str(run_dir)})
    return cfg.resolved()


def _stage_train(p: DemoPlan, label: str, data: Path, out: Path,
                 say: Callable[[str], None]) -> dict[str, Any]:
    """Train one model for its fixed epochs (``train_or_reuse``: a finished run is reused, a stopped one
    resumed)."""
    from wavesurrogate.train.loop import train_or_reuse

    cfg = _train_config(p, label, data, out / label)
    run, trained = train_or_reuse(cfg)
    rows = read_metrics(run)
    if trained:
        for r in rows:
            val = "n/a" if r.get("val_loss") is None else f"{r['val_loss']:.3g}"
            say(f"  {label}: epoch {r['epoch']}/{cfg.epochs} train loss {r['train_loss']:.3g}  val loss {val}"
                f"  ({r['seconds']:.1f} s)")
    return {"label": label, "epochs": len(rows), "lr": cfg.optim.lr, "unroll": list(cfg.rollout.unroll),
            "inputs": list(cfg.data.inputs), "update": cfg.data.update,
            "train_s": float(sum(r["seconds"] for r in rows))}


def _stage_evaluate(run_dir: Path, data: Path) -> dict[str, Any]:
    """The run's evaluation on the test cases (evaluate.json), recomputed if older than weights or data."""
    from wavesurrogate.eval.evaluate import evaluate_run

    out = run_dir / "evaluate.json"
    if not fresh(out, run_dir / "weights.safetensors", data):
        evaluate_run(run_dir, data, out=out, overwrite=True)  # the demo's own file, recomputed
    return load_json(out)


# ------------------------------------------------------------------------------------------------ figures


def _predict(model: torch.nn.Module, stats: dict[str, Any], fields: np.ndarray, velocity: np.ndarray,
             forcing: tuple[np.ndarray, np.ndarray], start: int, horizon: int) -> np.ndarray:
    """Rollout of one case through the run's inputs and update (``Forecast.predict``): ``horizon`` frames
    from the true frames [start − n_in, start), field units ``[horizon, y, x]``."""
    return FORECAST.predict(model, stats, fields[None], velocity[None], start, horizon,
                            forcing=forcing).numpy()[0]


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
        forcing = load_forcing(f, [case], f.n_frames + 4)  # + n_out of any run (surplus frames are cut)
        times, extent = f.t, (float(f.x[0]), float(f.x[-1]), float(f.y[0]), float(f.y[-1]))
    n_frames = fields.shape[0]
    models = {k: load_run(v, "best") for k, v in runs.items()}
    n_in = int(next(iter(models.values()))[1].stats["n_in"])
    shown = sorted({int(round(v)) for v in np.linspace(max(n_in, n_frames // 4), n_frames - 1, 4)})
    for label, (model, info) in models.items():
        pred = np.stack([_predict(model, info.stats, fields, velocity, forcing, t, 1)[0] for t in shown])
        add(f"{label}: one-step predictions on test case {case} (inputs are true frames)",
            plots.snapshots(fields[shown], pred, times[shown], fig_dir / f"snapshots_{label}.png", extent,
                            title=f"{label}: truth, one-step prediction and error, test case {case}"))
    curves = {k: (ev["rollout"]["horizon"], ev["rollout"]["rel_l2"])
              for k, ev in evals.items() if ev.get("rollout")}
    if curves:
        add("Rollout error against horizon, pooled over the test cases. Rollouts start from frame 0 (the "
            "first n_in true frames); the network reads the source term of the frames it predicts "
            "(forcing input), so the start while the source emits is well posed",
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
    best = min(bench["runs"], key=lambda r: r["rollout_rel_l2_all"] if r.get("rollout_rel_l2_all")
               is not None else math.inf)
    model, info = models[best["run"]]
    horizon = min(gif_horizon, n_frames - n_in)
    pred = _predict(model, info.stats, fields, velocity, forcing, n_in, horizon)
    add(f"{best['run']} (smallest rollout error) rolled out {horizon} frames from frame 0 of test case "
        f"{case} "
        f"(frames {n_in}–{n_in + horizon - 1} predicted from true frames 0–{n_in - 1}), beside the solver",
        plots.rollout_gif(fields[n_in : n_in + horizon], pred, fig_dir / "rollout.gif",
                          times_s=times[n_in : n_in + horizon], title=f"{best['run']}, test case {case}"))
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
                     f"{r.get('params', 0):,} trainable parameters; inputs {', '.join(tr['inputs'])}, "
                     f"{tr['update']} update; trained {tr['epochs']} epochs (fixed) at learning rate "
                     f"{tr['lr']:g}, unrolled {' → '.join(map(str, tr['unroll']))} steps, in "
                     f"{tr['train_s']:.0f} s; best validation epoch {r.get('best_epoch', '?')}.")
    lines += [f"- Note: {n}" for n in p.notes]
    return lines


def run_demo(out_dir: str | Path = "runs/demo", quick: bool = False) -> str:
    """Run the whole demo into ``out_dir`` (resumable); returns where the report is."""
    from wavesurrogate.data.store import describe
    from wavesurrogate.eval.bench import bench_runs
    from wavesurrogate.eval.report import write_report
    from wavesurrogate.io import atomic_write_text

    console = Console(stderr=progress_wanted(None))  # status on stderr only on a terminal: one-line errors
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

    data, how = stage("campaign", lambda: stage_campaign(p.campaign, out))
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
        if not fresh(bench_json, *inputs):
            bench_runs(list(runs.values()), bench_dir, data=data, repeats=p.repeats, overwrite=True)
        return load_json(bench_json)

    bench = stage("bench", do_bench)

    def do_figures() -> list[tuple[str, str]]:
        index = out / "figures" / "index.json"
        if fresh(index, bench_json, *(v / "evaluate.json" for v in runs.values())):
            figs = [tuple(f) for f in load_json(index)]
            if all((out / f[1]).is_file() for f in figs):
                return figs
        figs = _stage_figures(out, data, runs, evals, bench)
        atomic_write_text(index, json.dumps(figs, indent=1) + "\n")
        return figs

    figs = stage("figures", do_figures)
    op = stage("source → field operator", lambda: run_operator(out, quick, console.print,
                                                               repeats=p.repeats // 3))
    timings["total (this invocation)"] = time.perf_counter() - t_all
    report = write_report(out / "report.md", bench, figures=figs,
                          title="wavesurrogate demo" + (" (quick)" if quick else ""),
                          intro=_intro(p, data, trained, bench), data_summary=describe(data), timings=timings,
                          sections=operator_lines(op))
    console.print(f"[bold green]demo[/bold green] finished in {timings['total (this invocation)']:.0f} s")
    return f"report: {report}"

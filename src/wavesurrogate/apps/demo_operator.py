"""The demo's winning-regime section: a source → field operator answering new sources, beside FD solvers.

A small free-field campaign (``configs/demo_free.yaml``: ``operators/free64.yaml`` with fewer sources), the
translation-aware ``relative_operator`` of ``configs/demo_relative.yaml`` trained for its fixed epochs
(``train_or_reuse``), its error on the held-out sources (every node of every frame, through the task's
``evaluate``), and its time to answer one new source, for the whole field (every node of every stored frame,
the question the solver answers) and at 4,096 arbitrary (x, y, t) points, at batch 1 and one thread. Beside
it, the campaign's FD solver on the same test sources at full and coarser resolution
(``eval.baselines.coarse_solves``, timed in the same process), and a verdict from the numbers.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wavesurrogate.apps.stages import fresh, read_config, stage_campaign
from wavesurrogate.safeload import load_json

__all__ = ["operator_plan", "run_operator", "operator_lines", "FACTORS", "QUERY_POINTS"]

FACTORS = (1.0, 0.75, 0.5, 0.375)
QUERY_POINTS = 4096


def operator_plan(quick: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    """(campaign, training config) mappings; quick: 12 sources, 3 epochs (the pipeline only)."""
    campaign, cfg = read_config("demo_free.yaml"), read_config("demo_relative.yaml")
    if quick:
        campaign = {**campaign, "name": "demo_free-quick", "cases": 10, "test_cases": 2,
                    "solver": {**campaign["solver"], "backend": "numpy"}}
        cfg = {**cfg, "name": "demo_relative-quick", "epochs": 3, "eval_every": 1}
    return campaign, cfg


def _answer_seconds(model: torch.nn.Module, info: Any, f: Any, case: int, repeats: int) -> dict[str, float]:
    """Median seconds (batch 1, one thread) to answer one source: every node of every frame, and 4,096
    arbitrary scaled (x, y, t) points."""
    from wavesurrogate.eval.timing import time_calls, with_threads
    from wavesurrogate.tasks.source_to_field import grid_coords, param_affine

    s = info.stats
    p = param_affine(s).encode(np.array([[float(f.params[n][case]) for n in s["param_names"]]]))
    coords = grid_coords(s, f.x, f.y, f.t)[None]
    pts = torch.rand(1, QUERY_POINTS, 3, generator=torch.Generator().manual_seed(7)) * 2 - 1

    def med(fn: Callable[[], Any]) -> float:
        with torch.inference_mode():
            return statistics.median(with_threads(1, lambda: time_calls(fn, warmup=2, repeats=repeats)))

    return {"field_s": med(lambda: model(p, coords)), "points_s": med(lambda: model(p, pts)),
            "field_points": int(coords.shape[1])}


def run_operator(out: Path, quick: bool, say: Callable[[str], None], repeats: int = 5) -> dict[str, Any]:
    """Campaign, training, errors and times into ``out``/operator.json (reused while newer than inputs)."""
    from wavesurrogate.data.store import open_data
    from wavesurrogate.eval import baselines as bl
    from wavesurrogate.eval.evaluate import evaluate_model
    from wavesurrogate.io import write_json
    from wavesurrogate.runs import load_run, read_metrics
    from wavesurrogate.train.loop import config_from_dict, train_or_reuse

    campaign, raw = operator_plan(quick)
    data, how = stage_campaign(campaign, out, "free")
    say(f"  free-field campaign: {how}: {data}")
    cfg = config_from_dict({**raw, "data": {**raw["data"], "path": str(data)}, "out": str(out / "relative"),
                            "num_threads": 1, "progress": False})
    run, trained = train_or_reuse(cfg)
    say(f"  relative_operator: {'trained' if trained else 'finished run found'} ({cfg.epochs} epochs)")
    res_path = out / "operator.json"
    if fresh(res_path, data, run / "weights.safetensors"):
        return load_json(res_path)
    model, info = load_run(run)
    ev = evaluate_model(model, info, data)
    with open_data(data) as f:
        test = np.flatnonzero((f.split == 1) & f.done)
        times = _answer_seconds(model, info, f, int(test[0]), repeats)
        rows = bl.coarse_solves(f, test, FACTORS, repeats=max(2, repeats // 2))
        grid, n_frames = [int(f.ny), int(f.nx)], int(f.n_frames)
    for r in rows:
        r.pop("cases", None)
    error = float(ev["one_step"]["rel_l2_pooled"])
    points = [{"name": "relative_operator (whole field)", "error": error, "seconds": times["field_s"]},
              {"name": f"relative_operator ({QUERY_POINTS:,} points)", "error": error,
               "seconds": times["points_s"]}]  # the error over all nodes stands for any points' error
    metrics = read_metrics(run)
    res = {"data": str(data), "campaign": campaign["name"], "train_cases": int(campaign["cases"]),
           "test_cases": len(test), "grid": grid, "n_frames": n_frames, "run": str(run),
           "epochs": len(metrics), "train_s": float(sum(m["seconds"] for m in metrics)),
           "params": int(sum(p.numel() for p in model.parameters() if p.requires_grad)),
           "error": error, "last_frame_error": float(ev["last_frame"]["rel_l2_pooled"]), **times,
           "rows": rows, "verdict": bl.verdict(points, rows)}
    write_json(res_path, res)
    return res


def _pct(x: float) -> str:
    return f"{100 * x:.2f} %"


def operator_lines(res: dict[str, Any]) -> list[str]:
    """The report's markdown section on the source → field operator."""
    fine = next(r for r in res["rows"] if r["factor"] == 1.0)
    lines = [
        "## Where a surrogate wins: the source → field operator", "",
        f"A `relative_operator` ({res['params']:,} parameters: an MLP of distance to the source and time) "
        f"trained for {res['epochs']} epochs ({res['train_s']:.0f} s) on {res['train_cases']} sources of the "
        f"free-field campaign `{res['campaign']}` ({res['grid'][0]} × {res['grid'][1]}, {res['n_frames']} "
        f"frames), answering {res['test_cases']} new sources. Error: pooled relative L2 over every node of "
        f"every frame of the test sources; times: one new source at batch 1, one thread, against one whole "
        "FD solve of it (devito, one thread, compiled and warm; coarse grids interpolated to the data grid).",
        "", "| answer | rel. L2 error | time | speed-up vs fine solve |", "| --- | ---: | ---: | ---: |",
        f"| relative_operator, whole field ({res['field_points']:,} points) | {_pct(res['error'])} | "
        f"{1e3 * res['field_s']:.3g} ms | {fine['seconds'] / res['field_s']:.3g}× |",
        f"| relative_operator, {QUERY_POINTS:,} arbitrary (x, y, t) points | same model | "
        f"{1e3 * res['points_s']:.3g} ms | {fine['seconds'] / res['points_s']:.3g}× |",
    ]
    for r in res["rows"]:
        g = r["geometry"]
        size = f"{g['grid'][0]}×{g['grid'][1]}" if "grid" in g else ""
        lines.append(f"| FD {r['label']} solve {size} | {_pct(r['error'])} | {1e3 * r['seconds']:.3g} ms | "
                     f"{fine['seconds'] / r['seconds']:.3g}× |")
    return [*lines, "", f"Verdict: {res['verdict']}", ""]

"""``wavesurrogate evaluate RUN --data FILE``: errors of a trained run on a data file's test split, as JSON.

Forecast runs: one-step metrics over every window of the test cases (true inputs), and an autoregressive
rollout from each test case's first n_in frames to its last frame, with errors per horizon and a
``diverged`` flag (non-finite, or pooled relative L2 > 1e3) instead of a crash. Source-to-field runs:
the whole field of each test case predicted from its parameters. Errors are in the data file's field
units (predictions are de-normalised with the run's training statistics). See docs/training.md.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from wavesurrogate import metrics as M
from wavesurrogate.data.windows import ForecastWindows, param_matrix, scale_axis
from wavesurrogate.errors import ConfigError, DataFileError
from wavesurrogate.io import atomic_write_text
from wavesurrogate.train.checkpoint import RunInfo, load_run

__all__ = ["evaluate_run", "evaluate_model", "check_fits"]


def check_fits(f: Any, info: RunInfo) -> None:
    """DataFileError (one line) unless data file ``f`` has the run's grid, frame spacing, frames, params."""
    g, s = info.stats.get("data", {}), info.stats
    where = f"{f.path}: run {info.run_dir.name}"
    if (f.ny, f.nx) != (g.get("ny"), g.get("nx")):
        raise DataFileError(f"{where} was trained on a {g.get('ny')}x{g.get('nx')} grid, "
                            f"the file has {f.ny}x{f.nx}")
    fdt = float(g.get("frame_dt", f.frame_dt))
    if not math.isclose(f.frame_dt, fdt, rel_tol=1e-6):
        raise DataFileError(f"{where} was trained with frames {fdt:g} s apart, the file has {f.frame_dt:g} s")
    if info.task == "forecast" and f.n_frames < int(s["n_in"]) + 1:
        raise DataFileError(f"{where} needs at least n_in + 1 = {int(s['n_in']) + 1} frames, the file has "
                            f"{f.n_frames}")
    if info.task == "source_to_field":
        missing = [n for n in s.get("param_names", []) if n not in f.params]
        if missing:
            raise DataFileError(f"{where} needs parameter {missing[0]!r}, absent from the file")


def _cases(f: Any) -> tuple[np.ndarray, str]:
    """The test cases of ``f`` (finished only), or all finished cases if it has no test split."""
    done = f.done
    test = np.flatnonzero((f.split == 1) & done)
    if len(test):
        return test, "test"
    cases = np.flatnonzero(done)
    if not len(cases):
        raise DataFileError(f"{f.path}: no finished cases to evaluate")
    return cases, "all"


@torch.no_grad()
def _forecast(model: nn.Module, info: RunInfo, fields: np.ndarray, velocity: np.ndarray, frame_dt: float,
              batch_size: int, rollout_start: int = 0) -> dict[str, Any]:
    from wavesurrogate.nn.rollout import rollout

    s = info.stats
    n_in, n_out = int(s["n_in"]), int(s["n_out"])
    fm, fs = float(s["field_mean"]), float(s["field_std"])
    out: dict[str, Any] = {"one_step": None}
    if fields.shape[1] >= n_in + n_out:
        ds = ForecastWindows(fields, velocity, n_in, n_out, s)
        preds, trues = [], []
        for start in range(0, len(ds), batch_size):
            xs, ys = zip(*(ds[i] for i in range(start, min(start + batch_size, len(ds)))), strict=True)
            preds.append(model(torch.stack(xs)).double() * fs + fm)
            trues.append(torch.stack(ys).double() * fs + fm)
        out["one_step"] = M.summarise(preds, trues, n_spatial_dims=2)
    norm_f = ForecastWindows(fields, velocity, n_in, 1, s)  # reuse its normalisation of whole cases
    last = fields.shape[1] - n_in - 1
    if not 0 <= rollout_start <= last:
        raise ConfigError(f"--rollout-start: frame {rollout_start} leaves no frame to forecast (the data has "
                          f"{fields.shape[1]} frames, the model reads {n_in}: use 0..{last})")
    s0 = rollout_start
    n_steps = fields.shape[1] - n_in - s0
    roll = []
    for c0 in range(0, fields.shape[0], batch_size):
        x0 = norm_f.fields[c0 : c0 + batch_size, s0 : s0 + n_in]
        roll.append(rollout(model, x0, norm_f.velocity[c0 : c0 + batch_size], n_steps).double() * fs + fm)
    pred = torch.cat(roll)
    true = torch.from_numpy(fields[:, s0 + n_in :].astype(np.float64))
    errs = M.rollout_errors(pred, true)
    at = M.diverged_at(errs)
    out["rollout"] = {"start_frame": s0, "horizon": list(range(1, n_steps + 1)),
                      "time_s": [h * frame_dt for h in range(1, n_steps + 1)], **errs,
                      "diverged": at is not None, "diverged_at": at}
    out["diverged"] = at is not None
    return out


@torch.no_grad()
def _source_to_field(model: nn.Module, info: RunInfo, f: Any, cases: np.ndarray, fields: np.ndarray,
                     chunk: int = 32768) -> dict[str, Any]:
    s = info.stats
    fm, fs = float(s["field_mean"]), float(s["field_std"])
    names = list(s.get("param_names", []))
    p = (param_matrix(f.params, names, cases) - np.asarray(s["param_mean"])) / np.asarray(s["param_std"])
    lo, hi = s["coord_min"], s["coord_max"]
    ax = [torch.from_numpy(scale_axis(a, lo[k], hi[k]).astype(np.float32))
          for k, a in enumerate((f.x, f.y, f.t))]
    tt, yy, xx = torch.meshgrid(ax[2], ax[1], ax[0], indexing="ij")
    coords = torch.stack([xx, yy, tt], dim=-1).reshape(-1, 3)
    preds = []
    for i in range(len(cases)):
        pi = torch.from_numpy(p[i : i + 1].astype(np.float32))
        v = torch.cat([model(pi, coords[None, q : q + chunk])[0] for q in range(0, len(coords), chunk)])
        preds.append(v.reshape(fields.shape[1:]).double() * fs + fm)
    pred = torch.stack(preds)
    one = M.summarise([pred], [torch.from_numpy(fields.astype(np.float64))], n_spatial_dims=2)
    bad = not math.isfinite(one["rmse"])
    return {"one_step": one, "rollout": None, "diverged": bad}


def evaluate_model(model: nn.Module, info: RunInfo, data: str | Path, batch_size: int = 32,
                   rollout_start: int = 0) -> dict[str, Any]:
    """Metrics of ``model`` (from ``load_run``) on the test split of data file ``data``, as a dict.

    Forecast runs: the rollout starts from frames ``rollout_start .. rollout_start + n_in - 1`` (for
    source-driven data the first frames are silent, so a later start says more) and runs to the last frame.
    """
    from wavesurrogate.data.store import open_data

    model.eval()
    with open_data(data) as f:
        check_fits(f, info)
        cases, split = _cases(f)
        fields, velocity = f.load_all(cases)
        if info.task == "forecast":
            res = _forecast(model, info, fields, velocity, f.frame_dt, batch_size, rollout_start)
        else:
            res = _source_to_field(model, info, f, cases, fields)
    epoch = info.best_epoch if info.which == "best" else info.epoch
    head = {"run": str(info.run_dir), "data": str(Path(data).resolve()), "model": info.model_name,
            "task": info.task, "weights": info.which, "epoch": epoch, "split": split,
            "cases": [int(c) for c in cases], "band_edges": list(M.BAND_EDGES),
            "divergence_threshold": M.DIVERGENCE_THRESHOLD}
    return {**head, **res}


def _jsonable(x: Any) -> Any:
    """Replace non-finite floats by None (JSON has no NaN/inf)."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    return x


def evaluate_run(run: str | Path, data: str | Path, out: str | Path | None = None,
                 rollout_start: int = 0) -> str:
    """Evaluate the best weights of run directory ``run`` on ``data``; JSON text (also written to ``out``)."""
    model, info = load_run(run, "best")
    text = json.dumps(_jsonable(evaluate_model(model, info, data, rollout_start=rollout_start)), indent=2)
    if out is not None:
        out = Path(out)
        if out.is_dir():
            out = out / "evaluate.json"
        atomic_write_text(out, text + "\n")
    return text

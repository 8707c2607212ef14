"""``wavesurrogate evaluate RUN --data FILE``: errors of a trained run on a data file's test split, as JSON.

The run's task (``tasks/``) computes the metrics: for forecasts one-step errors and an autoregressive
rollout with a ``diverged`` flag; for source-to-field runs the whole field of each test case. Errors are in
the data file's field units (predictions are de-normalised with the run's training statistics). See
docs/training.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from wavesurrogate import tasks
from wavesurrogate.io import atomic_write_text, to_json
from wavesurrogate.metrics.spectral import BAND_EDGES
from wavesurrogate.metrics.temporal import DIVERGENCE_THRESHOLD
from wavesurrogate.outputs import check_outputs
from wavesurrogate.runs.layout import run_files
from wavesurrogate.runs.load import RunInfo, load_run
from wavesurrogate.tasks.base import test_cases

__all__ = ["evaluate_run", "evaluate_model", "check_fits"]


def check_fits(f: Any, info: RunInfo) -> None:
    """DataFileError (one line) unless data file ``f`` fits what the run was trained on."""
    tasks.get(info.task).check_fits(f, info)


def evaluate_model(model: nn.Module, info: RunInfo, data: str | Path, batch_size: int = 32,
                   rollout_start: int = 0, **options: Any) -> dict[str, Any]:
    """Metrics of ``model`` (from ``load_run``) on the test split of data file ``data``, as a dict.

    Forecast runs: the rollout starts from frames ``rollout_start .. rollout_start + n_in - 1`` (for
    source-driven data the first frames are silent, so a later start says more) and runs to the last frame.
    ``options`` go to the task's ``evaluate`` (forecast: ``window_stride`` of the one-step windows).
    """
    from wavesurrogate.data.store import open_data

    task = tasks.get(info.task)
    model.eval()
    with open_data(data) as f:
        task.check_fits(f, info)
        cases, split = test_cases(f)
        res = task.evaluate(model, info, f, cases, batch_size=batch_size, rollout_start=rollout_start,
                            **options)
    epoch = info.best_epoch if info.which == "best" else info.epoch
    head = {"run": str(info.run_dir), "data": str(Path(data).resolve()), "model": info.model_name,
            "task": info.task, "weights": info.which, "epoch": epoch, "split": split,
            "cases": [int(c) for c in cases], "band_edges": list(BAND_EDGES),
            "divergence_threshold": DIVERGENCE_THRESHOLD}
    return {**head, **res}


def evaluate_run(run: str | Path, data: str | Path, out: str | Path | None = None,
                 rollout_start: int = 0, overwrite: bool = False) -> str:
    """Evaluate the best weights of run directory ``run`` on ``data``; JSON text (also written to ``out``,
    or ``out``/evaluate.json for a directory; an existing file only with ``overwrite``)."""
    if out is not None:
        out = Path(out) / "evaluate.json" if Path(out).is_dir() else Path(out)
        check_outputs([out], [data, *run_files(run)], overwrite=overwrite)
    model, info = load_run(run, "best")
    text = to_json(evaluate_model(model, info, data, rollout_start=rollout_start))
    if out is not None:
        atomic_write_text(out, text + "\n")
    return text

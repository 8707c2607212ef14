"""runs.read_metrics: the rows of metrics.jsonl, [] before the first epoch."""

from __future__ import annotations

from pathlib import Path

from wavesurrogate.runs import METRICS, read_metrics, write_metrics


def test_read_metrics_round_trips_and_is_empty_without_a_file(tmp_path: Path) -> None:
    assert read_metrics(tmp_path) == []
    rows = [{"epoch": 1, "val_loss": None, "seconds": 0.5}, {"epoch": 2, "val_loss": 0.25, "seconds": 0.5}]
    write_metrics(tmp_path / METRICS, rows)
    (tmp_path / METRICS).write_text((tmp_path / METRICS).read_text() + "\n", encoding="utf-8")  # blank line
    assert read_metrics(str(tmp_path)) == rows

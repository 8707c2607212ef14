"""runs.layout helpers: read_metrics (rows of metrics.jsonl) and holds_config (is this run of that config)."""

from __future__ import annotations

from pathlib import Path

import pytest

from wavesurrogate.errors import CheckpointError
from wavesurrogate.runs import METRICS, read_metrics, write_metrics


def test_read_metrics_round_trips_and_is_empty_without_a_file(tmp_path: Path) -> None:
    assert read_metrics(tmp_path) == []
    rows = [{"epoch": 1, "val_loss": None, "seconds": 0.5}, {"epoch": 2, "val_loss": 0.25, "seconds": 0.5}]
    write_metrics(tmp_path / METRICS, rows)
    (tmp_path / METRICS).write_text((tmp_path / METRICS).read_text() + "\n", encoding="utf-8")  # blank line
    assert read_metrics(str(tmp_path)) == rows


@pytest.mark.parametrize(("line", "words"), [
    ("not json", ["line 2", "not valid JSON"]),
    ('{"epoch": 3}', ["line 2", "'epoch' must be 2", "got 3"]),
    ('{"epoch": 2, "seconds": "slow"}', ["line 2", "'seconds' must be a number"]),
    ('{"epoch": 2, "x": ' + "[" * 100 + "]" * 100 + "}", ["line 2", "nesting deeper than 64"]),
    ('{"epoch": 2, "epoch": 2}', ["line 2", "duplicate key 'epoch'"]),
    ("[1, 2]", ["line 2", "JSON object"]),
])
def test_read_metrics_names_the_first_bad_line(tmp_path: Path, line: str, words: list[str]) -> None:
    (tmp_path / METRICS).write_text('{"epoch": 1, "seconds": 0.5}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(CheckpointError) as exc:
        read_metrics(tmp_path)
    assert all(w in str(exc.value) for w in words), str(exc.value)


def test_holds_config_compares_all_but_the_ignored_keys(tmp_path: Path) -> None:
    from wavesurrogate.config.base import dump_yaml
    from wavesurrogate.runs import CONFIG, MODEL_JSON, holds_config
    from wavesurrogate.train.loop import config_from_dict

    raw = {"name": "r", "out": str(tmp_path), "epochs": 3,
           "data": {"path": str(tmp_path / "d.h5"), "task": "forecast"}, "model": {"name": "cnn2d"}}
    cfg = config_from_dict(raw).resolved()
    assert not holds_config(tmp_path, cfg)  # no run there
    (tmp_path / CONFIG).write_text(dump_yaml(cfg), encoding="utf-8")
    assert not holds_config(tmp_path, cfg)  # no model.json: not a whole run
    (tmp_path / MODEL_JSON).write_text("{}", encoding="utf-8")
    assert holds_config(tmp_path, cfg)
    start = {"run": "/elsewhere", "weights_sha256": "0" * 64}
    assert not holds_config(tmp_path, cfg, init_from=start)  # started from no weights, not from these
    more = config_from_dict({**raw, "epochs": 5})
    assert holds_config(tmp_path, more) and not holds_config(tmp_path, more, ignore=("progress",))
    assert not holds_config(tmp_path, config_from_dict({**raw, "seed": 7}))

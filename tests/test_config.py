"""The shared config loader: one line naming the field for every kind of bad input."""

from pathlib import Path

import pytest
from pydantic import Field

from wavesurrogate.config.base import Strict, dump_yaml, load_config, read_yaml
from wavesurrogate.errors import ConfigError


class Inner(Strict):
    nx: int = Field(gt=0)
    dx_m: float = Field(gt=0)


class Outer(Strict):
    name: str
    grid: Inner


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: a\ngrid: {nx: 4, dx_m: 1.0, bogus: 1}\n", "grid.bogus: unknown key"),
        ("name: a\ngrid: {nx: four, dx_m: 1.0}\n", "grid.nx:"),
        ("name: a\ngrid: {nx: -3, dx_m: 1.0}\n", "grid.nx: Input should be greater than 0"),
        ("name: a\ngrid: {nx: 3, dx_m: .nan}\n", "grid.dx_m: must be a finite number"),
        ("name: a\n", "grid: Field required"),
        ("- 1\n- 2\n", "expected a mapping"),
        ("name: [unclosed\n", "not valid YAML at line"),
    ],
)
def test_bad_configs_give_one_line_naming_the_field(tmp_path, text, expected):
    with pytest.raises(ConfigError) as ei:
        load_config(_write(tmp_path, text), Outer)
    msg = str(ei.value)
    assert expected in msg
    assert "\n" not in msg


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        read_yaml(tmp_path / "nope.yaml")


def test_round_trip(tmp_path):
    cfg = load_config(_write(tmp_path, "name: a\ngrid: {nx: 4, dx_m: 2.5}\n"), Outer)
    assert cfg.grid.nx == 4 and cfg.grid.dx_m == 2.5
    again = load_config(_write(tmp_path, dump_yaml(cfg)), Outer)
    assert again == cfg

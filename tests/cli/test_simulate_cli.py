"""`simulate`, `info`, `show` through the CLI: bad configs give one line naming the field, code 2, no file."""

from __future__ import annotations

import math
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import yaml

from wavesurrogate.cli import main
from wavesurrogate.data.cases import load_campaign
from wavesurrogate.data.store import open_data


def tiny() -> dict:
    return {
        "name": "cli", "seed": 1, "cases": 2, "test_cases": 1, "test_seed": 2,
        "solver": {"kind": "fd", "space_order": 2, "backend": "numpy"},
        "grid": {"nx": 16, "ny": 16, "dx_m": 10.0, "dy_m": 10.0},
        "time": {"n_frames": 10, "frame_stride": 2},
        "boundary": {"kind": "absorbing", "width": 5},
        "medium": {"kind": "constant", "c_mps": [1500.0, 2000.0]},
        "source": {"kind": "point", "x_m": [50.0, 100.0], "y_m": 75.0, "freq_hz": 20.0, "amplitude": 1.0e7},
    }


def _set(cfg: dict, dotted: str, value) -> dict:
    *head, last = dotted.split(".")
    d = cfg
    for k in head:
        d = d[k]
    d[last] = value
    return cfg


BAD = [  # (dotted key, value, text the one-line message must contain)
    ("colour", "red", "colour: unknown key"),
    ("grid.nw", 3, "grid.nw: unknown key"),
    ("grid.nz", 3, "grid: give both nz and dz_m"),  # a 3-D grid (issue 15) needs its z spacing too
    ("grid.nx", "sixty", "grid.nx"),
    ("time.n_frames", 2.5, "time.n_frames"),
    ("grid.nx", -64, "grid.nx"),
    ("grid.dy_m", -10.0, "grid.dy_m"),
    ("time.dt_s", 0.01, "time.dt_s"),
    ("medium", {"kind": "file", "path": "no_such_velocity.npy"}, "medium.path"),
    ("source.freq_hz", [30.0, 10.0], "source.freq_hz"),
    ("source.amplitude", math.nan, "source.amplitude"),
    ("medium.c_mps", [1500.0, math.inf], "medium"),
    ("source.x_m", [50.0, 500.0], "source.x_m"),
    ("solver.space_order", 3, "solver.space_order"),
]


@pytest.mark.parametrize("key,value,field", BAD, ids=[f"{k}={v}" for k, v, _ in BAD])
def test_bad_config_one_line_exit_2_nothing_written(tmp_path: Path, capsys, key, value, field) -> None:
    cfg_path = tmp_path / "bad.yaml"
    cfg_path.write_text(yaml.safe_dump(_set(tiny(), key, value)), encoding="utf-8")
    out = tmp_path / "sub" / "data.h5"
    assert main(["simulate", str(cfg_path), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and field in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"]  # not even the directory


def test_cfl_message_states_the_bound(tmp_path: Path, capsys) -> None:
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(yaml.safe_dump(_set(tiny(), "time.dt_s", 0.01)), encoding="utf-8")
    assert main(["simulate", str(cfg_path), "--out", str(tmp_path / "o.h5")]) == 2
    # 2nd order: dt ≤ h/(c_max·√2) with h = 10 m, c_max = 2000 m/s
    bound = 10.0 / (2000.0 * math.sqrt(2.0))
    assert f"{bound:.6g}" in capsys.readouterr().err


def test_simulate_info_show_and_no_overwrite(tmp_path: Path, capsys) -> None:
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(yaml.safe_dump(tiny()), encoding="utf-8")
    out = tmp_path / "d.h5"
    assert main(["simulate", str(cfg_path), "--out", str(out), "--workers", "1"]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    with open_data(out) as d:
        assert d.n_cases == 3 and list(d.split) == [0, 0, 1]
        # the stored resolved config reloads to the same campaign
        (tmp_path / "resolved.yaml").write_text(d.attrs["config_yaml"], encoding="utf-8")
        assert load_campaign(tmp_path / "resolved.yaml") == load_campaign(cfg_path)
    before = out.read_bytes()
    capsys.readouterr()
    assert main(["simulate", str(cfg_path), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "already exists" in err
    assert out.read_bytes() == before

    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "wavesurrogate/2" in text and "3 (2 train, 1 test; 3 done)" in text and "[3, 10, 16, 16]" in text

    assert main(["show", str(out), "--case", "2", "--out", str(tmp_path / "fig")]) == 0
    png, gif = (Path(p) for p in capsys.readouterr().out.split())
    assert png.suffix == ".png" and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    frames = iio.imread(gif, index=None)
    assert frames.shape[0] == 10 and frames.ndim == 4
    assert not np.array_equal(frames[0], frames[-1])  # it moves

    assert main(["show", str(out), "--case", "3", "--out", str(tmp_path / "fig")]) == 2
    assert "out of range" in capsys.readouterr().err


def test_info_on_a_non_data_file(tmp_path: Path, capsys) -> None:
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"\x00" * 64)
    assert main(["info", str(junk)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not a readable HDF5 file" in err

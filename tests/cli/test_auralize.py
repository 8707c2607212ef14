"""wavesurrogate auralize: a 48 kHz WAV; a unit impulse returns the resampled response; a moving source
cross-fades; bad positions, dry files, paths and runs give one line, exit 2 and write nothing."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
import train_tiny as tt  # noqa: E402

from wavesurrogate.apps.auralize import FS_OUT, PEAK, crossfade_weights, impulse_response_48k  # noqa: E402
from wavesurrogate.cli import main  # noqa: E402
from wavesurrogate.data.image_room import write_image_room  # noqa: E402
from wavesurrogate.runs.load import load_run  # noqa: E402
from wavesurrogate.train.loop import config_from_dict, train  # noqa: E402

ROOM = (3.0, 2.5, 2.0)
SRC, REC = ["1.0", "1.0", "1.0"], ["2.0", "1.5", "1.2"]


def rc(argv: list[str]) -> int:
    """main's exit code, or argparse's (it exits for a missing file)."""
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    d = tmp_path_factory.mktemp("aur")
    src = np.random.default_rng(2).uniform([0.5, 0.5, 0.5], [2.5, 2.0, 1.5], (4, 3))
    data = write_image_room(d / "room.h5", room=ROOM, sources=src, split=np.r_[np.zeros(3), np.ones(1)],
                            receiver_stride=(4, 4, 4), duration_s=0.02, fs_hz=4000.0)
    cfg = tt.tiny_config(data, d / "run", epochs=1, batch_size=2,
                         data={"path": str(data), "task": "source_to_receiver", "points_per_case": 32,
                               "val_fraction": 0.0, "params": ["source_x_m", "source_y_m", "source_z_m"]},
                         model={"name": "relative_operator",
                                "kwargs": {"n_params": 3, "width": 8, "n_basis": 2}})
    return train(config_from_dict(cfg))


@pytest.fixture()
def impulse(tmp_path):
    x = np.zeros(4800)
    x[0] = 1.0
    sf.write(tmp_path / "imp.wav", x, FS_OUT, subtype="FLOAT")
    return tmp_path / "imp.wav"


def test_unit_impulse_returns_the_resampled_response(run, impulse, tmp_path, capsys):
    out = tmp_path / "o.wav"
    assert main(["auralize", str(run), "--source", *SRC, "--receiver", *REC, "--dry", str(impulse),
                 "--out", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out.replace("'", '"'))
    y, fs = sf.read(out, always_2d=True)
    assert fs == 48_000 and sf.info(str(out)).format == "WAV" and summary["fs_hz"] == 48_000
    model, info = load_run(run, "best")
    ir = impulse_response_48k(model.eval(), info.stats, np.array([1.0, 1.0, 1.0]), np.array([2.0, 1.5, 1.2]))
    # 0.02 s at 4 kHz -> 80 samples -> 960 at 48 kHz; convolved with 4,800 samples: 5,759
    assert len(ir) == 960 and y.shape == (4800 + 960 - 1, 1)
    np.testing.assert_allclose(y[:960, 0], ir * PEAK / np.abs(ir).max(), atol=1e-6)
    np.testing.assert_allclose(y[960:, 0], 0.0, atol=1e-6)


def test_moving_source_crossfades_between_path_points(run, impulse, tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("t_s,x_m,y_m,z_m\n0,1,1,1\n0.05,2.5,2,1.5\n", encoding="utf-8")
    w = crossfade_weights(np.array([0.0, 0.05]), 4800, FS_OUT)
    np.testing.assert_allclose(w.sum(axis=0), 1.0)
    assert w[0, 0] == 1.0 and w[1, 2400] == 1.0 and abs(w[0, 1200] - 0.5) < 1e-3
    out = tmp_path / "m.wav"
    assert main(["auralize", str(run), "--path", str(path), "--receiver", *REC, "--dry", str(impulse),
                 "--out", str(out)]) == 0
    y, fs = sf.read(out)
    assert fs == 48_000 and np.abs(y).max() == pytest.approx(PEAK, rel=1e-6)


@pytest.mark.parametrize("args, msg", [
    (["--source", "9", "1", "1"], "outside the room"),
    (["--source", "1", "1", "-0.5"], "outside the room"),
    (["--receiver", "1", "1", "5"], "outside the room"),
    (["--dry", "missing.wav"], "not found"),
    (["--dry", "notwav.wav"], "WAV"),
    (["--dry", "flac.flac"], "must be a WAV"),
    (["--path", "bad.csv"], "times must"),
])
def test_bad_inputs_give_one_line_exit_2_and_write_nothing(run, impulse, tmp_path, capsys, args, msg):
    (tmp_path / "notwav.wav").write_text("RIFF? no", encoding="utf-8")
    sf.write(tmp_path / "flac.flac", np.zeros(100), FS_OUT, format="FLAC")
    (tmp_path / "bad.csv").write_text("t_s,x_m,y_m,z_m\n0.1,1,1,1\n0.05,2,2,1\n", encoding="utf-8")
    base = {"--source": SRC, "--receiver": REC, "--dry": [str(impulse)]}
    if args[0] == "--path":
        base.pop("--source")
    base[args[0]] = [a if "/" in a or not a.endswith((".wav", ".flac", ".csv")) else str(tmp_path / a)
                     for a in args[1:]]
    out = tmp_path / "o.wav"
    argv = ["auralize", str(run), "--out", str(out)] + [x for k, v in base.items() for x in (k, *v)]
    assert rc(argv) == 2
    err = capsys.readouterr().err
    assert msg in err and err.count("\n") == 1
    assert not out.exists() and not list(tmp_path.glob(".o.wav*"))


def test_a_2d_or_other_task_run_is_refused(tmp_path, impulse, capsys):
    fixture = next(Path(__file__).resolve().parents[1].glob("data/fixtures/run_v1_*"))
    out = tmp_path / "o.wav"
    assert main(["auralize", str(fixture), "--source", *SRC, "--receiver", *REC, "--dry", str(impulse),
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "source_to_receiver on 3-D room data" in err and err.count("\n") == 1 and not out.exists()


def test_a_position_inside_an_obstacle_is_refused(run, impulse, tmp_path, capsys):
    import shutil

    furnished = tmp_path / "furnished"
    shutil.copytree(run, furnished)
    stats = json.loads((furnished / "stats.json").read_text(encoding="utf-8"))
    stats["room"]["obstacles"] = [{"x_m": [0.5, 1.5], "y_m": [0.5, 1.5], "z_m": [0.0, 1.2]}]  # a cabinet
    (furnished / "stats.json").write_text(json.dumps(stats), encoding="utf-8")
    out = tmp_path / "o.wav"
    assert rc(["auralize", str(furnished), "--source", *SRC, "--receiver", *REC, "--dry", str(impulse),
               "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--source" in err and "inside an obstacle" in err and err.count("\n") == 1 and not out.exists()

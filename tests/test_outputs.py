"""The output guard (wavesurrogate.outputs), the progress decision and the launch-environment checks."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from wavesurrogate.errors import ConfigError, UserError
from wavesurrogate.outputs import check_output_dir, check_outputs, same_file


def test_an_input_is_never_an_output_whatever_its_name(tmp_path: Path) -> None:
    data = tmp_path / "d.h5"
    data.write_bytes(b"data")
    (tmp_path / "sym.json").symlink_to(data)
    os.link(data, tmp_path / "hard.json")
    (tmp_path / "sub").mkdir()
    names = [data, tmp_path / "sub" / ".." / "d.h5", tmp_path / "sym.json", tmp_path / "hard.json"]
    assert all(same_file(n, data) for n in names)
    for out in names:
        with pytest.raises(UserError, match="is an input of this command"):
            check_outputs([out], [tmp_path / "other", data], overwrite=True)
    assert data.read_bytes() == b"data"
    assert not same_file(tmp_path / "new.json", data)
    check_outputs([tmp_path / "new.json"], [data])  # a new file: fine, with or without --overwrite


def test_existing_outputs_need_overwrite_and_directories_are_not_files(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text("{}")
    with pytest.raises(UserError, match="already exists .*--overwrite"):
        check_outputs([tmp_path / "a.json"])
    check_outputs([tmp_path / "a.json"], overwrite=True)
    with pytest.raises(UserError, match="is a directory"):
        check_outputs([tmp_path], overwrite=True)
    with pytest.raises(UserError, match="not a directory"):
        check_output_dir(tmp_path / "a.json", ["x.png"])
    assert check_output_dir(tmp_path / "figs", ["x.png"]) == [tmp_path / "figs" / "x.png"]


def test_progress_only_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    from wavesurrogate.progress import progress_wanted

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("sys.stderr", io.StringIO())
    assert progress_wanted(None) is False and progress_wanted(True) is True
    monkeypatch.setattr("sys.stderr", Tty())
    assert progress_wanted(None) is True and progress_wanted(False) is False


@pytest.mark.parametrize("env, words", [
    ({"WORLD_SIZE": "1.5"}, "not an integer"), ({"WORLD_SIZE": "-1"}, "[1, 4096]"),
    ({"WORLD_SIZE": "2"}, "MASTER_ADDR and MASTER_PORT"), ({"WORLD_SIZE": "1", "RANK": "1"}, "RANK=1"),
    ({"WORLD_SIZE": "3", "RANK": "0", "MASTER_ADDR": "h", "MASTER_PORT": "x"}, "MASTER_PORT"),
])
def test_launch_environment_is_checked(monkeypatch: pytest.MonkeyPatch, env: dict, words: str) -> None:
    from wavesurrogate.train.dist import read_launch_env

    for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(k, raising=False)
    assert read_launch_env() == (1, 0, 0)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ConfigError) as exc:
        read_launch_env()
    assert words in str(exc.value) and "\n" not in str(exc.value)

"""Argument errors of the command line: one line on stderr, exit code 2."""

import subprocess
import sys

import pytest

from wavesurrogate.cli import main


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["frobnicate"],
        ["info", "/nonexistent/file.h5"],
        ["show", "/nonexistent/file.h5", "--out", "x"],
        ["simulate", "/nonexistent/c.yaml", "--out", "o.h5"],
        ["evaluate", "/nonexistent/run", "--data", "/nonexistent/d.h5"],
        ["show", __file__, "--case", "-1", "--out", "x"],
    ],
)
def test_bad_arguments_exit_2_with_one_line(argv, capsys):
    with pytest.raises(SystemExit) as ei:
        main(argv)
    assert ei.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err and len(err.splitlines()) == 1, err


def test_console_script_reports_version():
    cmd = [sys.executable, "-m", "wavesurrogate.cli", "--version"]
    out = subprocess.run(cmd, capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("wavesurrogate ")

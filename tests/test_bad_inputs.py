"""The bad-input corpus (tests/bad_inputs/manifest.yaml): each case is rejected by the CLI with exit code 2,
exactly one line on stderr naming the problem, no traceback, and its workspace left byte-for-byte unchanged.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "bad_inputs"))

import make_corpus as mc  # noqa: E402

from wavesurrogate.cli import main  # noqa: E402

CASES = mc.load_manifest()


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return mc.build_base(tmp_path_factory.mktemp("corpus") / "base")


def run_cli(argv: list[str]) -> int:
    """``main(argv)`` in-process as the console script would run it: argparse's SystemExit becomes the
    return code, and warnings go to stderr (where they would break the one-line rule) as outside pytest."""
    with warnings.catch_warnings():
        warnings.resetwarnings()  # Python's default filters: hide the deprecation family, show the rest
        for cat in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
            warnings.simplefilter("ignore", cat)
        warnings.showwarning = warnings._showwarning_orig  # type: ignore[attr-defined]
        try:
            return main(argv)
        except SystemExit as exc:
            return int(exc.code) if isinstance(exc.code, int) else 1


def check_case(case: dict[str, Any], base: Path, dest: Path, capsys: Any, monkeypatch: Any) -> str:
    """Run one corpus case with its workspace as working directory; assert the contract; the error line."""
    ws, argv = mc.prepare_case(case, base, dest)
    monkeypatch.chdir(ws)  # relative paths in configs (and default outputs) land in the workspace
    before = mc.snapshot(ws)
    capsys.readouterr()
    code = run_cli(argv)
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2, f"exit code {code}; stderr: {err}"
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{err}"
    assert "Traceback" not in err and out == "", (out, err)
    missing = [w for w in case["expect"] if w.lower() not in lines[0].lower()]
    assert not missing, f"{missing} not in: {lines[0]}"
    for rel in case.get("absent") or []:
        assert not (ws / rel).exists(), f"{rel} was created"
    assert mc.snapshot(ws) == before, "the workspace changed"
    return lines[0]


def test_corpus_is_large_and_covers_every_kind() -> None:
    kinds = {c["kind"] for c in CASES}
    assert len(CASES) >= 40 and kinds == {"config", "hdf5", "checkpoint", "cli"}
    for f in (mc.HERE / "configs").rglob("*.yaml"):  # every file in the corpus is used by some case
        assert any(c.get("input") == str(f.relative_to(mc.HERE)) for c in CASES), f


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_bad_input_is_rejected_cleanly(case: dict[str, Any], base: Path, tmp_path: Path, capsys,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    check_case(case, base, tmp_path / "ws", capsys, monkeypatch)


def test_malicious_pickle_would_really_run_code(tmp_path: Path) -> None:
    """The exploit used by the corpus is live: plain torch.load(weights_only=False) creates the marker."""
    import torch

    target = tmp_path / "pwned"
    (tmp_path / "evil.pt").write_bytes(mc.malicious_pickle(target))
    torch.load(tmp_path / "evil.pt", weights_only=False)
    assert target.read_text() == "code ran"

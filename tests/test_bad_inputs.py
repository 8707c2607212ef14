"""The bad-input corpus (tests/bad_inputs/manifest*.yaml): each case is rejected by the CLI with exit 2,
exactly one line on stderr naming the problem, no traceback, and its workspace left byte-for-byte unchanged,
within make_corpus.HANG_S (20 s): a case that blocks (a FIFO opened) or expands a bomb fails, not hangs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.bad_inputs import make_corpus as mc

CASES = mc.load_manifest()


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return mc.build_base(tmp_path_factory.mktemp("corpus") / "base")


def test_corpus_is_large_and_covers_every_kind() -> None:
    kinds = {c["kind"] for c in CASES}
    assert len(CASES) >= 40 and kinds == {"config", "hdf5", "checkpoint", "cli"}
    for f in (mc.HERE / "configs").rglob("*.yaml"):  # every file in the corpus is used by some case
        assert any(c.get("input") == str(f.relative_to(mc.HERE)) for c in CASES), f


def test_every_class_of_what_is_read_has_three_cases() -> None:
    """Issue 16 A: each class of manifest_inputs.yaml is represented by at least three cases."""
    classes: dict[str, int] = {}
    for c in CASES:
        if "class" in c:
            classes[c["class"]] = classes.get(c["class"], 0) + 1
    assert set(classes) == {"loader", "bounds", "types", "special_files", "links", "data_extent"}
    assert min(classes.values()) >= 3, classes


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_bad_input_is_rejected_cleanly(case: dict[str, Any], base: Path, tmp_path: Path) -> None:
    res = mc.check_case(case, base, tmp_path / "ws")
    assert not res["problems"], f"{res['problems']}\n{res['stderr']}"
    assert res["code"] == 2 and res["files_checked"] >= 5


def test_malicious_pickle_would_really_run_code(tmp_path: Path) -> None:
    """The exploit used by the corpus is live: plain torch.load(weights_only=False) creates the marker."""
    import torch

    target = tmp_path / "pwned"
    (tmp_path / "evil.pt").write_bytes(mc.malicious_pickle(target))
    torch.load(tmp_path / "evil.pt", weights_only=False)
    assert target.read_text() == "code ran"


def test_data_files_keep_strings_out_of_the_global_heap(base: Path, tmp_path: Path) -> None:
    """String attributes are fixed-length: a file with a global heap (GCOL) whose free-space size is
    damaged makes libhdf5 loop forever when the attributes are read (found by benchmarks/fuzz.py)."""
    import h5py

    assert b"GCOL" not in (base / "good.h5").read_bytes()
    with h5py.File(tmp_path / "vlen.h5", "w") as f:  # what h5py does by default with a str attribute
        f.attrs["solver"] = "synthetic"
    assert b"GCOL" in (tmp_path / "vlen.h5").read_bytes()

"""Bookkeeping of a fuzz run: tallies, library and CLI calls under a time bound."""

from __future__ import annotations

import shutil
import sys
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.bad_inputs import make_corpus as mc
from wavesurrogate.errors import UserError

MAX_TRACEBACKS = 5
SETTINGS = {"trace": False, "hang_s": 60.0}


class Tally:
    """Counts of accepted / rejected / crashed / hung cases of one kind, with the first few tracebacks."""

    def __init__(self) -> None:
        self.run = self.accepted = self.rejected = self.crashed = self.hangs = 0
        self.cli_calls = self.cli_rejected = self.cli_unclean = 0
        self.tracebacks: list[str] = []
        self.strategies: dict[str, int] = {}

    def crash(self, what: str) -> None:
        self.crashed += 1
        if len(self.tracebacks) < MAX_TRACEBACKS:
            self.tracebacks.append(what)

    def hang(self, what: str) -> None:
        self.hangs += 1
        if len(self.tracebacks) < MAX_TRACEBACKS:
            self.tracebacks.append(f"HANG (> {SETTINGS['hang_s']:g} s): {what}")

    def strategy(self, desc: str) -> None:
        for part in desc.split("; "):
            kind = part.split(":")[0]
            self.strategies[kind] = self.strategies.get(kind, 0) + 1

    def as_dict(self) -> dict[str, Any]:
        return {"cases": self.run, "accepted": self.accepted, "rejected_cleanly": self.rejected,
                "uncaught": self.crashed, "hangs": self.hangs, "cli_calls": self.cli_calls,
                "cli_rejected": self.cli_rejected, "cli_unclean": self.cli_unclean,
                "mutations": dict(sorted(self.strategies.items())), "first_tracebacks": self.tracebacks}


def library(t: Tally, label: str, fn: Callable[..., Any], *args: Any) -> bool | None:
    """Run ``fn(*args)``: True if accepted, False if a UserError, None (a recorded crash or hang) else."""
    if SETTINGS["trace"]:
        print(label, file=sys.stderr, flush=True)
    try:
        with warnings.catch_warnings(), mc.time_bound(SETTINGS["hang_s"]):
            warnings.simplefilter("ignore")
            fn(*args)
        return True
    except mc.CaseHung:
        t.hang(label)
        return None
    except UserError as exc:
        if "\n" in str(exc):
            t.crash(f"{label}: multi-line UserError: {exc!r}")
            return None
        return False
    except Exception:
        t.crash(f"{label}:\n{traceback.format_exc(limit=6)}")
        return None


def cli(t: Tally, label: str, argv: list[str], ws: Path, outputs: list[Path]) -> int:
    """Run the CLI in-process; on exit code 2 check one line, no traceback, nothing written in ``ws``."""
    if SETTINGS["trace"]:
        print(f"{label}: {' '.join(argv)}", file=sys.stderr, flush=True)
    before = mc.snapshot(ws)
    t.cli_calls += 1
    try:
        with mc.time_bound(SETTINGS["hang_s"]):
            code, _, text = mc.run_cli(argv)
    except mc.CaseHung:
        t.hang(f"{label}: {' '.join(argv)}")
        code, text = -2, ""
    except Exception:
        code, text = -1, traceback.format_exc(limit=6)
    if code == 2:
        t.cli_rejected += 1
        lines = text.strip().splitlines()
        problems = []
        if len(lines) != 1 or "Traceback" in text:
            problems.append(f"{len(lines)} lines on stderr")
        if mc.snapshot(ws) != before:
            problems.append("the workspace changed")
        if problems:
            t.cli_unclean += 1
            t.crash(f"{label}: {' '.join(argv)} → {', '.join(problems)}:\n{text[-1500:]}")
    elif code not in (0, -2):
        t.crash(f"{label}: {' '.join(argv)} → exit {code}:\n{text[-1500:]}")
    for p in outputs:  # an accepted input may legitimately write; start the next case clean
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink(missing_ok=True)
    return code


KEEP = ("good.h5", "run", "run.pristine", "velocity.npy", "campaign.yaml", "train.yaml")


def clean(ws: Path, keep: tuple[str, ...] = KEEP) -> None:
    """Remove what a previous case left in ``ws`` (FIFOs, links, side files): only ``keep`` stays."""
    for p in ws.iterdir():
        if p.name in keep:
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()

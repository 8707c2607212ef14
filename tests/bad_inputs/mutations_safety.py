"""Mutations of the bad-input corpus for outputs, locks, resume, hangs and progress (manifest_safety.yaml).

Each takes the case's workspace and may return more ``{placeholder: text}`` for the case's argv. What a
mutation must hold while its case runs (a lock, a listening socket) goes into ``HELD``; ``release_held``
(called by make_corpus.check_case after every case) closes it.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

HELD: list[Any] = []


class _Fd:
    def __init__(self, fd: int):
        self.fd = fd

    def close(self) -> None:
        os.close(self.fd)


def release_held() -> None:
    """Close every lock and socket a mutation holds."""
    while HELD:
        HELD.pop().close()


def _lock(path: Path) -> None:
    """Hold the run-directory lock of ``path`` as a training writing it would (flock on the directory)."""
    path.mkdir(exist_ok=True)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    HELD.append(_Fd(fd))


def lock_run(ws: Path) -> None:
    _lock(ws / "run")


def lock_new_run(ws: Path) -> None:
    _lock(ws / "run2")


def _train_yaml(ws: Path, fname: str, **over: Any) -> None:
    from tests.bad_inputs import make_corpus as mc

    (ws / fname).write_text(yaml.safe_dump(mc.train_config(**over), sort_keys=False), encoding="utf-8")


def names(ws: Path) -> None:
    """Train configs whose run name would leave runs/ or is not a plain directory name (no ``out``)."""
    for stem, name in (("dotdot", ".."), ("absolute", "/tmp/escaped"), ("hidden", ".hidden"),
                       ("newline", "run\nx"), ("long", "r" * 101), ("backslash", "..\\x")):
        _train_yaml(ws, f"name_{stem}.yaml", name=name, out=None)


def links_to_inputs(ws: Path) -> None:
    """link.json → good.h5 (symbolic), hard.json = good.h5 (hard link), wlink → run/weights.safetensors."""
    (ws / "link.json").symlink_to(ws / "good.h5")
    os.link(ws / "good.h5", ws / "hard.json")
    (ws / "wlink.json").symlink_to(ws / "run" / "weights.safetensors")


def existing_outputs(ws: Path) -> None:
    """Outputs of an earlier command: eval.json, show/case0000.png, bench/bench.json."""
    (ws / "eval.json").write_text("{\"earlier\": true}\n", encoding="utf-8")
    (ws / "show").mkdir()
    (ws / "show" / "case0000.png").write_bytes(b"\x89PNG earlier")
    (ws / "bench").mkdir()
    (ws / "bench" / "bench.json").write_text("{}\n", encoding="utf-8")


def no_state(ws: Path) -> None:
    (ws / "run" / "optimizer.pt").unlink()


def metrics_only(ws: Path) -> None:
    (ws / "run" / "optimizer.pt").unlink()
    (ws / "run" / "weights.safetensors").unlink()


def state_moment_shape(ws: Path) -> None:
    """A resume state whose Adam moment of the first parameter has the wrong shape (weights-only safe)."""
    import torch

    p = ws / "run" / "optimizer.pt"
    state = torch.load(p, weights_only=True)
    first = next(iter(state["optimizer"]["state"].values()))
    first["exp_avg"] = torch.zeros(first["exp_avg"].numel() + 1)
    torch.save(state, p)


def state_moment_nan(ws: Path) -> None:
    """A resume state whose second Adam moment holds a NaN (the first step would make the weights NaN)."""
    import torch

    p = ws / "run" / "optimizer.pt"
    state = torch.load(p, weights_only=True)
    first = next(iter(state["optimizer"]["state"].values()))
    first["exp_avg_sq"].view(-1)[0] = float("nan")
    torch.save(state, p)


def huge_campaigns(ws: Path) -> None:
    base = yaml.safe_load((ws / "campaign.yaml").read_text(encoding="utf-8"))
    for name, over in (("cases_huge", {"cases": 10**12}), ("test_cases_huge", {"test_cases": 10**12}),
                       ("cases_above_bound", {"cases": 1_000_001})):
        (ws / f"{name}.yaml").write_text(yaml.safe_dump(base | over), encoding="utf-8")


def silent_scheduler(ws: Path) -> dict[str, str]:
    """A TCP socket that accepts connections (the kernel completes the handshake) and never answers."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    HELD.append(s)
    return {"{silent}": f"tcp://127.0.0.1:{s.getsockname()[1]}"}


def closed_port(ws: Path) -> dict[str, str]:
    """An address where nothing listens (a port just released)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return {"{closed}": f"tcp://127.0.0.1:{port}"}


def shard_dirs(ws: Path) -> None:
    """campaign.yaml's work directory with its manifest, and a directory where every case's shard goes:
    the campaign starts (progress bars would be drawn) and fails while writing its first shard."""
    from wavesurrogate.data.campaign import _manifest
    from wavesurrogate.data.cases import load_campaign

    cfg = load_campaign(ws / "campaign.yaml")
    work = ws / "out.h5.work"
    work.mkdir()
    (work / "manifest.json").write_text(json.dumps(_manifest(cfg), indent=1), encoding="utf-8")
    for i in range(cfg.n_total):
        (work / f"case-{i:06d}.npz").mkdir()
        (work / f"case-{i:06d}.npz" / "keep").write_text("a directory, not a shard\n", encoding="utf-8")


MUTATIONS: dict[str, Callable[[Path], Any]] = {
    "lock_run": lock_run, "lock_new_run": lock_new_run, "names": names, "links_to_inputs": links_to_inputs,
    "existing_outputs": existing_outputs, "no_state": no_state, "metrics_only": metrics_only,
    "state_moment_shape": state_moment_shape, "state_moment_nan": state_moment_nan,
    "huge_campaigns": huge_campaigns, "silent_scheduler": silent_scheduler, "closed_port": closed_port,
    "shard_dirs": shard_dirs,
}

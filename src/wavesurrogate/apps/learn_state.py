"""The persisted state of ``wavesurrogate learn`` (run directory), written atomically after every round.

A round writes ``round-NNNN.npz`` (solved cases per fidelity: parameters, fields, solve seconds; the test
set; the basis) and ``round-NNNN.safetensors`` (model weights), then ``state.json`` (round, costs, history,
RNG state, model name and kwargs, the two file names): the commit point. Files of other rounds are removed
after the commit; a run killed at any moment restarts from the last committed round and, the RNG state
and the weights being restored exactly, ends where an uninterrupted run ends.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from wavesurrogate.errors import CheckpointError, UserError
from wavesurrogate.io import atomic_path, write_json
from wavesurrogate.safeload import load_json

__all__ = ["LearnState", "save_state", "load_state", "STATE"]

STATE = "state.json"
VERSION = 1


def _rng_out(state: Any) -> Any:
    """The generator's state with its integers as decimal strings (PCG64 holds 128-bit ones, which the safe
    JSON reader refuses as numbers)."""
    if isinstance(state, dict):
        return {k: _rng_out(v) for k, v in state.items()}
    return str(state) if isinstance(state, int) and not isinstance(state, bool) else state


def _rng_in(state: Any) -> Any:
    """Inverse of ``_rng_out`` (the integer fields of a PCG64 state: ``state``, ``inc``, ``uinteger``)."""
    if isinstance(state, dict):
        return {k: (int(v) if k in ("state", "inc", "uinteger", "has_uint32") and isinstance(v, str)
                    else _rng_in(v)) for k, v in state.items()}
    return state


@dataclass
class LearnState:
    """What a round needs: config text, round, costs, RNG, cases per fidelity, test set, basis, model."""

    config_yaml: str
    round: int
    costs_s: dict[int, float]
    costs_measured_s: dict[int, float]
    rng: np.random.Generator
    cases: dict[int, dict[str, np.ndarray]]  # n → {"params" [N, P], "fields" [N, T, n, n], "solve_s" [N]}
    test: dict[str, np.ndarray]  # {"params", "fields"} of the top fidelity
    arrays: dict[str, np.ndarray]  # the basis
    model: dict[str, Any]  # registry description {"name", "kwargs", "version"}
    weights: dict[str, torch.Tensor]
    history: list[dict[str, Any]] = field(default_factory=list)


def _npz_arrays(s: LearnState) -> dict[str, np.ndarray]:
    out = {f"{k}_{n}": v for n, c in s.cases.items() for k, v in c.items()}
    out.update({f"test_{k}": v for k, v in s.test.items()})
    out.update(s.arrays)
    return out


def save_state(out: Path, s: LearnState) -> None:
    """Write round ``s.round`` (data, weights, then state.json) atomically and drop other rounds' files."""
    from safetensors.torch import save_file

    stem = f"round-{s.round:04d}"
    with atomic_path(out / f"{stem}.npz") as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **_npz_arrays(s))
    with atomic_path(out / f"{stem}.safetensors") as tmp:
        save_file({k: v.detach().contiguous().clone() for k, v in s.weights.items()}, str(tmp))
    write_json(out / STATE, {
        "version": VERSION, "config_yaml": s.config_yaml, "round": s.round,
        "costs_s": {str(k): v for k, v in s.costs_s.items()},
        "costs_measured_s": {str(k): v for k, v in s.costs_measured_s.items()},
        "rng": _rng_out(s.rng.bit_generator.state), "model": s.model, "history": s.history,
        "fidelities": sorted(s.cases), "data": f"{stem}.npz", "weights": f"{stem}.safetensors"})
    for p in out.glob("round-*"):
        if p.name not in (f"{stem}.npz", f"{stem}.safetensors"):
            p.unlink(missing_ok=True)


def _clean(out: Path, keep: tuple[str, ...]) -> None:
    """Remove what a killed round left: temp files and round files state.json does not name."""
    for p in list(out.glob(".*.tmp")) + list(out.glob("round-*")):
        if p.name not in keep:
            p.unlink(missing_ok=True)


def load_state(out: Path, config_yaml: str) -> LearnState | None:
    """The committed state in ``out`` (None if no round was committed); UserError if ``out`` is something
    else or holds another config, CheckpointError if the state is damaged."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out: {out} is not a directory")
    if not out.is_dir():
        return None
    path = out / STATE
    if not path.exists():
        stray = [p.name for p in out.iterdir()
                 if not (p.name.startswith("round-") or p.name.endswith(".tmp"))]
        if stray:
            raise UserError(f"--out: {out} exists and is not a learn run (holds {stray[0]})")
        _clean(out, ())
        return None
    try:
        st = load_json(path, CheckpointError)
        if st.get("version") != VERSION:
            raise CheckpointError(f"{path}: unknown state version {st.get('version')!r}")
        if st["config_yaml"] != config_yaml:
            raise UserError(f"--out: {out} holds a run of a different config; use another --out")
        from safetensors.torch import load_file

        weights = load_file(str(out / st["weights"]))
        with np.load(out / st["data"], allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        rng = np.random.default_rng()
        rng.bit_generator.state = _rng_in(st["rng"])
        fids = [int(n) for n in st["fidelities"]]
        cases = {n: {k: arrays[f"{k}_{n}"] for k in ("params", "fields", "solve_s")} for n in fids}
        state = LearnState(
            st["config_yaml"], int(st["round"]), {int(k): float(v) for k, v in st["costs_s"].items()},
            {int(k): float(v) for k, v in st["costs_measured_s"].items()}, rng, cases,
            {"params": arrays["test_params"], "fields": arrays["test_fields"]},
            {k: v for k, v in arrays.items() if k.startswith("basis_")}, st["model"], weights, st["history"])
    except UserError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{path}: damaged learn state ({type(exc).__name__}: {exc})"[:300]) from None
    _clean(out, (st["data"], st["weights"]))
    return state


def model_weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's state dict (what ``save_state`` writes)."""
    return dict(model.state_dict())

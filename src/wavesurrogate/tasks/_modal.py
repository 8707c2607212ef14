"""The receiver task's closed-form path for models with the ``modal`` capability (``modal_operator``).

``room_modes``: the eigenmodes of the campaign's room (``physics.fd.modes`` on the data file's grid, medium,
obstacles and stencil, walls rigid), cached in the run directory as ``modes.safetensors`` (float32, keyed by
a hash of everything they depend on). ``fit_response``: the modal responses H ``[n_modes, n_t]`` by ridge
least squares ``M H = G`` over every training (source, receiver) pair, with ``M[p] = a(s_p) ⊙ ψ(r_p)`` the
model's own design rows and G the normalised impulse responses. The normal equations are formed from the
Khatri–Rao structure (``MᵀM = (AᵀA) ⊙ (ΨᵀΨ)``), diagonalised once; the ridge weight is the one of a fixed
grid with the lowest error on the validation sources, then H is refitted on training and validation sources.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from wavesurrogate.errors import CheckpointError, ConfigError
from wavesurrogate.io import atomic_path
from wavesurrogate.safeload import parse_json

MODES_FILE = "modes.safetensors"
RIDGE_GRID = (0.0, 1e-8, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)  # × mean diagonal of MᵀM
SOURCE_KEYS = ("source_x_m", "source_y_m", "source_z_m")


def is_modal(cfg: Any) -> bool:
    """Whether the configured model takes the closed-form modal fit."""
    from wavesurrogate.nn import registry

    return bool(registry.entry(cfg.model.name).capabilities.get("modal"))


def _key(problem: Any) -> str:
    """sha256 of what the modes depend on (grid, stencil, obstacles, medium), not of the cutoff."""
    g = problem.grid
    h = hashlib.sha256(json.dumps({"shape": list(g.shape), "spacing": list(g.spacing),
                                   "order": problem.space_order,
                                   "obstacles": [repr(b) for b in problem.obstacles], "version": 2}).encode())
    h.update(np.ascontiguousarray(problem.velocity, np.float64).tobytes())
    return h.hexdigest()


def room_modes(f: Any, cutoff_hz: float, run_dir: Path) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """(psi [n_nodes, n] float32, freq_hz [n], info) of data file ``f``'s room, from the run directory's
    cache when it holds this room's modes to this cutoff or a higher one (then those below the cutoff), else
    computed (minutes for a furnished room) and cached."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file, save_file

    from wavesurrogate.physics.fd.modes import room_modes as compute

    p = f.problem(0)
    key, path = _key(p), Path(run_dir) / MODES_FILE
    if path.is_file():
        try:
            from safetensors import safe_open

            with safe_open(str(path), "np") as h:
                meta = h.metadata() or {}
            if meta.get("key") == key and float(meta.get("cutoff_hz", "0")) >= cutoff_hz:
                got = load_file(str(path))
                psi, freq = got["psi"], got["freq_hz"]
                nodes = math.prod(p.grid.shape)
                if not (psi.ndim == 2 and freq.ndim == 1 and psi.shape == (nodes, freq.size)
                        and np.isfinite(psi).all() and np.isfinite(freq).all()):
                    raise ValueError(f"psi {list(psi.shape)} and freq_hz {list(freq.shape)} do not fit the "
                                     f"room's {nodes} nodes")
                info = parse_json(meta.get("info", "{}"), str(path), CheckpointError)
                keep = freq < cutoff_hz
                return np.ascontiguousarray(psi[:, keep]), freq[keep], {
                    **(info if isinstance(info, dict) else {}), "cached": True,
                    "cached_cutoff_hz": float(meta["cutoff_hz"])}
        except (SafetensorError, OSError, ValueError, KeyError) as exc:
            raise CheckpointError(f"{path}: unreadable modes cache ({exc}); delete it") from None
    for stale in path.parent.glob(f".{MODES_FILE}.*.tmp"):  # a write killed before its rename (run locked)
        stale.unlink(missing_ok=True)
    t0 = time.process_time()
    m = compute(p.grid, p.velocity, cutoff_hz, p.space_order, tuple(p.obstacles))
    info = {"cutoff_hz": cutoff_hz, "n_modes": int(m.freq_hz.size), "cpu_s": time.process_time() - t0,
            "slices": len(m.slices), "n_nodes": int(m.psi.shape[0])}
    psi, freq = m.psi.astype(np.float32), m.freq_hz.astype(np.float64)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        meta = {"key": key, "cutoff_hz": repr(float(cutoff_hz)), "info": json.dumps(info)}
        save_file({"psi": psi, "freq_hz": freq}, str(tmp), metadata=meta)
    return psi, freq, {**info, "cached": False}


@torch.no_grad()
def fit_response(model: nn.Module, extra: dict[str, Any]) -> dict[str, Any]:
    """Fit ``model.response`` (normalised units) from ``extra``: ``src_train``/``src_val`` [S, 3] m,
    ``rec`` [R, 3] m, ``g_train``/``g_val`` [S, n_t, R] normalised traces. Returns what was chosen."""
    rec = torch.as_tensor(extra["rec"])
    psi_r = model.at_receivers(rec).double().numpy()  # [R, n]

    def parts(src: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        a = model.at_sources(torch.as_tensor(src)).double().numpy()  # [S, n]
        gram = (a.T @ a) * (psi_r.T @ psi_r)
        rhs = np.zeros((a.shape[1], g.shape[1]))
        for i in range(0, len(g), 8):  # Mᵀ G = Σ_s a_s ⊙ (Ψᵀ G_sᵀ), 8 sources at a time: [n, n_t]
            z = psi_r.T @ g[i : i + 8].transpose(0, 2, 1)  # [8, n, n_t]
            rhs += np.einsum("sn,snt->nt", a[i : i + 8], z)
        return gram, rhs

    gt, gv = np.asarray(extra["g_train"], np.float64), np.asarray(extra["g_val"], np.float64)
    gram_t, rhs_t = parts(extra["src_train"], gt)
    s, v = np.linalg.eigh(gram_t)
    scale = float(np.mean(np.diag(gram_t)))
    rot = v.T @ rhs_t
    chosen, errors = RIDGE_GRID[0], []
    if len(gv):
        a_v = model.at_sources(torch.as_tensor(extra["src_val"])).double().numpy()
        m_v = (a_v[:, None, :] * psi_r[None, :, :]).reshape(-1, s.size) @ v  # [S_v R, n] rotated
        y_v = gv.transpose(0, 2, 1).reshape(-1, gv.shape[1])
        for alpha in RIDGE_GRID:
            d = 1.0 / np.maximum(s + alpha * scale, 1e-12 * scale)
            err = float(np.sum((m_v @ (d[:, None] * rot) - y_v) ** 2) / np.sum(y_v**2))
            errors.append(err)
        chosen = RIDGE_GRID[int(np.argmin(errors))]
        gram_v, rhs_v = parts(extra["src_val"], gv)
        gram_t, rhs_t = gram_t + gram_v, rhs_t + rhs_v
        s, v = np.linalg.eigh(gram_t)
        scale = float(np.mean(np.diag(gram_t)))
        rot = v.T @ rhs_t
    d = 1.0 / np.maximum(s + chosen * scale, 1e-12 * scale)
    h = v @ (d[:, None] * rot)
    model.response.copy_(torch.from_numpy(h).to(model.response.dtype))
    return {"ridge": chosen, "ridge_grid": list(RIDGE_GRID), "val_rel_sq_error": errors,
            "gram_condition": float(s.max() / max(s.min(), 1e-300)),
            "n_pairs": int(gt.shape[0] * rec.shape[0])}


def cutoff_of(cfg: Any) -> float:
    """The configured ``cutoff_hz`` of the model, or its constructor's default."""
    import inspect

    from wavesurrogate.nn import registry

    default = inspect.signature(registry.entry(cfg.model.name).cls.__init__).parameters["cutoff_hz"].default
    v = cfg.model.kwargs.get("cutoff_hz", default)
    if not isinstance(v, int | float) or isinstance(v, bool) or not math.isfinite(v) or v <= 0:
        raise ConfigError(f"model.cutoff_hz: expected a positive frequency in Hz, got {v!r}")
    return float(v)


def prepare(cfg: Any, f: Any, stats: dict[str, Any], fa: Any, splits: Any
            ) -> tuple[dict[str, Any], dict[str, Any]]:
    """(stats with ``modes``: the room grid, mode count and cutoff; extra: modes and fitting data) of a fresh
    run of a modal model on 3-D data file ``f`` (ConfigError for 2-D data)."""
    from wavesurrogate.errors import ConfigError

    if f.n_spatial_dims != 3:
        raise ConfigError(f"model.name: {cfg.model.name} needs a 3-D room file, {f.path} is "
                          f"{f.n_spatial_dims}-D")
    cutoff = cutoff_of(cfg)
    psi, freq, info = room_modes(f, cutoff, Path(cfg.out))
    r = stats["receivers"]
    name = r["name"]
    idx = f.trace_index(name)[r["train"]]
    rec = idx[:, ::-1] * np.asarray(f.spacing[::-1])

    def sources(cases: np.ndarray) -> np.ndarray:
        return np.stack([np.asarray(f.params[k])[cases] for k in SOURCE_KEYS], 1).astype(np.float64)

    def traces(cases: np.ndarray) -> np.ndarray:
        if not len(cases):
            return np.zeros((0, r["n_times"], len(r["train"])))
        return fa.encode(np.ascontiguousarray(f.traces(name, cases)[:, :, r["train"]])).numpy()

    grid = f.problem(0).grid
    modes = {"n_modes": int(freq.size), "cutoff_hz": cutoff, "grid_shape": [int(n) for n in grid.shape],
             "spacing_m": [float(h) for h in grid.spacing],
             "f_top_hz": float(freq[-1]) if freq.size else 0.0, **{k: v for k, v in info.items()
                                                                   if k in ("cpu_s", "wall_s", "slices",
                                                                            "cached")}}
    extra = {"psi": psi, "freq_hz": freq, "rec": rec.astype(np.float64), "src_train": sources(splits.train),
             "src_val": sources(splits.val), "g_train": traces(splits.train), "g_val": traces(splits.val)}
    return {**stats, "modes": modes}, extra


def model_kwargs(kw: dict[str, Any], stats: dict[str, Any]) -> dict[str, Any]:
    """``kw`` plus what a modal model's shape follows from: grid, mode count, trace times, cutoff."""
    from wavesurrogate.errors import ConfigError

    m, r = stats.get("modes"), stats.get("receivers")
    if not isinstance(m, dict) or not isinstance(r, dict):
        raise ConfigError("model.name: a modal model needs a 3-D room file (no modes in the statistics)")
    return {**kw, "grid_shape": m["grid_shape"], "spacing_m": m["spacing_m"], "n_modes": m["n_modes"],
            "n_times": r["n_times"], "t0_s": r["t0_s"], "dt_s": r["dt_s"], "cutoff_hz": m["cutoff_hz"]}


def init_model(model: nn.Module, data: Any) -> None:
    """Modes into the model, responses fitted; the fit's choices recorded in ``data.stats["modes"]``."""
    e = data.extra
    model.set_modes(torch.from_numpy(e["psi"]), torch.from_numpy(e["freq_hz"]).float())
    t0 = time.process_time()
    fit = fit_response(model, e)
    data.stats["modes"]["fit"] = {**fit, "cpu_s": time.process_time() - t0}

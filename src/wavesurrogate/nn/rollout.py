"""Autoregressive rollout of a FRAMES model: predictions are fed back as inputs to reach longer horizons.

One call of the model (``step``) sees ``[frames (n_in), velocity (1), extra (n_extra)]`` channels and gives
``n_out`` outputs. With ``update="direct"`` they are the next frames; with ``update="leapfrog"`` each output
``r_j`` is the correction of a leapfrog-shaped update ``u^{n+1} = 2u^n − u^{n−1} + r_j`` (applied in turn, so
with n_out > 1 each new frame is built on the previous new one). The extra channels of a call are
``extra[:, j·n_out : (j+1)·n_out]`` (e.g. the forcing of the frames being predicted).
"""

from __future__ import annotations

import contextlib

import torch
from torch import Tensor, nn

from wavesurrogate.errors import ConfigError

__all__ = ["rollout", "step", "UPDATES"]

UPDATES = ("direct", "leapfrog")


def step(model: nn.Module, frames: Tensor, velocity: Tensor, extra: Tensor | None = None,
         update: str = "direct") -> Tensor:
    """The next ``n_out`` frames ``[B, n_out, ny, nx]`` from ``frames`` ``[B, n_in, ny, nx]`` (one call).

    ``velocity`` ``[B, 1, ny, nx]``; ``extra`` ``[B, n_extra, ny, nx]`` or None.
    """
    x = torch.cat([frames, velocity] + ([] if extra is None else [extra]), dim=1)
    out = model(x)
    if update == "direct":
        return out
    if update != "leapfrog":
        raise ConfigError(f"rollout: update must be one of {', '.join(UPDATES)}, got {update!r}")
    if frames.shape[1] < 2:
        raise ConfigError("rollout: the leapfrog update needs n_in >= 2 frames")
    prev, cur = frames[:, -2:-1], frames[:, -1:]
    new = []
    for j in range(out.shape[1]):
        prev, cur = cur, 2 * cur - prev + out[:, j : j + 1]
        new.append(cur)
    return torch.cat(new, dim=1)


def rollout(model: nn.Module, x0: Tensor, velocity: Tensor, n_steps: int, *, grad: bool = False,
            extra: Tensor | None = None, update: str = "direct", n_out: int | None = None) -> Tensor:
    """Predict ``n_steps`` frames ``[B, n_steps, ny, nx]`` from the last frames ``x0`` ``[B, n_in, ny, nx]``.

    ``velocity`` is ``[B, ny, nx]`` or ``[B, 1, ny, nx]`` (normalised, as in training). Each call of ``model``
    appends its n_out frames, and the window slides by n_out; the last call's surplus frames are dropped.
    ``extra`` ``[B, F, ny, nx]``: per predicted frame, the extra input channel(s) (call j reads frames
    ``j·n_out .. (j+1)·n_out − 1``; frames past F read zeros; ``n_out`` defaults to ``model.n_out``, else 1).
    ``grad=False`` runs under no_grad.
    """
    if x0.ndim != 4:
        raise ConfigError(f"rollout: x0 must be [batch, n_in, ny, nx], got {tuple(x0.shape)}")
    if velocity.ndim == 3:
        velocity = velocity.unsqueeze(1)
    if (
        velocity.ndim != 4
        or velocity.shape[1] != 1
        or velocity.shape[0] != x0.shape[0]
        or velocity.shape[-2:] != x0.shape[-2:]
    ):
        raise ConfigError(f"rollout: velocity {tuple(velocity.shape)} does not match x0 {tuple(x0.shape)}")
    if extra is not None and (extra.ndim != 4 or extra.shape[0] != x0.shape[0]
                              or extra.shape[-2:] != x0.shape[-2:]):
        raise ConfigError(f"rollout: extra {tuple(extra.shape)} does not match x0 {tuple(x0.shape)}")
    if n_steps < 0:
        raise ConfigError(f"rollout: n_steps must be >= 0, got {n_steps}")
    n_in = x0.shape[1]
    if getattr(model, "n_in", n_in) != n_in:
        raise ConfigError(f"rollout: model expects n_in={model.n_in} frames, x0 has {n_in}")
    n_out = int(n_out if n_out is not None else getattr(model, "n_out", 1))
    velocity = velocity.to(x0.dtype)
    if extra is not None:  # zeros past the given frames, so that every call gets n_out channels
        pad = max(0, -(-n_steps // n_out) * n_out - extra.shape[1])
        extra = torch.cat([extra.to(x0.dtype), extra.new_zeros(extra.shape[0], pad, *extra.shape[2:])], 1)
    frames = x0
    out: list[Tensor] = []
    produced = 0
    with torch.no_grad() if not grad else contextlib.nullcontext():
        while produced < n_steps:
            ex = None if extra is None else extra[:, produced : produced + n_out]
            pred = step(model, frames, velocity, ex, update)
            out.append(pred)
            produced += pred.shape[1]
            frames = torch.cat([frames, pred], dim=1)[:, -n_in:]
    if not out:
        return x0.new_zeros(x0.shape[0], 0, *x0.shape[-2:])
    return torch.cat(out, dim=1)[:, :n_steps]

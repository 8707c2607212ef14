"""Autoregressive rollout of a FRAMES model: predictions are fed back as inputs to reach longer horizons."""

from __future__ import annotations

import contextlib

import torch
from torch import Tensor, nn

from wavesurrogate.errors import ConfigError

__all__ = ["rollout"]


def rollout(model: nn.Module, x0: Tensor, velocity: Tensor, n_steps: int, *, grad: bool = False) -> Tensor:
    """Predict ``n_steps`` frames ``[B, n_steps, ny, nx]`` from the last frames ``x0`` ``[B, n_in, ny, nx]``.

    ``velocity`` is ``[B, ny, nx]`` or ``[B, 1, ny, nx]`` (normalised, as in training). Each call of ``model``
    (interface FRAMES: ``[B, n_in + 1, ny, nx] -> [B, n_out, ny, nx]``) appends its n_out frames, and the
    window slides by n_out; the last call's surplus frames are dropped. ``grad=False`` runs under no_grad.
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
    if n_steps < 0:
        raise ConfigError(f"rollout: n_steps must be >= 0, got {n_steps}")
    n_in = x0.shape[1]
    if getattr(model, "n_in", n_in) != n_in:
        raise ConfigError(f"rollout: model expects n_in={model.n_in} frames, x0 has {n_in}")
    velocity = velocity.to(x0.dtype)
    frames = x0
    out: list[Tensor] = []
    produced = 0
    with torch.no_grad() if not grad else contextlib.nullcontext():
        while produced < n_steps:
            pred = model(torch.cat([frames, velocity], dim=1))
            out.append(pred)
            produced += pred.shape[1]
            frames = torch.cat([frames, pred], dim=1)[:, -n_in:]
    if not out:
        return x0.new_zeros(x0.shape[0], 0, *x0.shape[-2:])
    return torch.cat(out, dim=1)[:, :n_steps]

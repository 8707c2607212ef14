"""Optimiser and learning-rate schedule of a TrainConfig (once per epoch; ``exponential_steps`` per step)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

__all__ = ["optimizer", "scheduler", "steps_per_batch"]


def optimizer(cfg: Any, params: Iterator[nn.Parameter]) -> torch.optim.Optimizer:
    """Adam, AdamW or SGD with momentum, as ``cfg.optim`` says."""
    o = cfg.optim
    if o.name == "adam":
        return torch.optim.Adam(params, lr=o.lr, weight_decay=o.weight_decay)
    if o.name == "adamw":
        return torch.optim.AdamW(params, lr=o.lr, weight_decay=o.weight_decay)
    return torch.optim.SGD(params, lr=o.lr, weight_decay=o.weight_decay, momentum=o.momentum)


def scheduler(cfg: Any, opt: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler | None:
    """Cosine over the epochs, step, exponential, exponential_steps, or None (constant rate).

    ``exponential_steps`` (Borrel-Jensen et al.: ``lr · 0.9^(step / 2000)``): after k optimiser steps the rate
    is ``lr · gamma^(k / decay_steps)``, computed in closed form from k (a LambdaLR: no drift by repeated
    products, and its state, ``last_epoch = k``, resumes exactly).
    """
    s = cfg.schedule
    if s.name == "exponential_steps":
        gamma, decay = float(s.gamma), int(s.decay_steps)
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda k: gamma ** (k / decay))
    if s.name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs, eta_min=s.min_lr)
    if s.name == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=s.step_size, gamma=s.gamma)
    if s.name == "exponential":
        return torch.optim.lr_scheduler.ExponentialLR(opt, gamma=s.gamma)
    return None


def steps_per_batch(cfg: Any) -> bool:
    """Whether the schedule of ``cfg`` steps after every optimiser step (else once per epoch)."""
    return bool(cfg.schedule.name == "exponential_steps")

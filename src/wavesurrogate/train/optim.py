"""Optimiser and learning-rate schedule of a TrainConfig (the schedule steps once per epoch)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

__all__ = ["optimizer", "scheduler"]


def optimizer(cfg: Any, params: Iterator[nn.Parameter]) -> torch.optim.Optimizer:
    """Adam, AdamW or SGD with momentum, as ``cfg.optim`` says."""
    o = cfg.optim
    if o.name == "adam":
        return torch.optim.Adam(params, lr=o.lr, weight_decay=o.weight_decay)
    if o.name == "adamw":
        return torch.optim.AdamW(params, lr=o.lr, weight_decay=o.weight_decay)
    return torch.optim.SGD(params, lr=o.lr, weight_decay=o.weight_decay, momentum=o.momentum)


def scheduler(cfg: Any, opt: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler | None:
    """Cosine over the epochs, step, exponential, or None (constant rate)."""
    s = cfg.schedule
    if s.name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs, eta_min=s.min_lr)
    if s.name == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=s.step_size, gamma=s.gamma)
    if s.name == "exponential":
        return torch.optim.lr_scheduler.ExponentialLR(opt, gamma=s.gamma)
    return None

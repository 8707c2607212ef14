"""Elastic training loss (``cfg.elastic``): one model's nested (blocks, rank) sub-networks trained together.

Starbucks (arXiv 2410.13230): with ``sampling: all`` the per-sample loss is, at every step,

    sum over pairs p of  L(pred_p, target) + distill * L(pred_p, stop_grad(pred_full))   (p != full)

with ``L`` the task's ``sample_loss`` (its regression analogue of Starbucks' KL term, weight 0.3 there).
``sampling: random`` (the comparison) takes one pair per training step, drawn from torch's global generator,
which the loop reseeds per (seed, epoch, rank): deterministic on one process; under DDP the processes would
draw different pairs (untested there). The full model's output for the distillation term is then computed
without gradient. Validation (eval mode) always sums over every pair. A task's ``batch_pred`` gives the
predictions, so any task trains elastic; the model must be elastic (``nn.elastic``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from wavesurrogate.nn.elastic import active, check_pairs

__all__ = ["elastic_loss", "train_pairs"]


def train_pairs(model: nn.Module, cfg: Any) -> list[tuple[int, int]]:
    """The pairs of this step: every pair, or (training with ``sampling: random``) one drawn at random."""
    pairs = [(int(b), int(r)) for b, r in cfg.elastic.pairs]
    if model.training and cfg.elastic.sampling == "random":
        return [pairs[int(torch.randint(len(pairs), (1,)))]]
    return pairs


def elastic_loss(task: Any, model: nn.Module, batch: list[Tensor], cfg: Any) -> Tensor:
    """Per-sample loss ``[B]`` summed over this step's pairs, with distillation toward the full model."""
    full = check_pairs(model, cfg.elastic.pairs)
    pairs, w = train_pairs(model, cfg), float(cfg.elastic.distill)
    total: Tensor | None = None
    teacher: Tensor | None = None
    if full in pairs:  # the full model first: its (detached) output is the teacher of the others
        pred, target = task.batch_pred(model, batch, cfg)
        total, teacher = task.sample_loss(pred, target), pred.detach()
    elif w > 0:
        with torch.no_grad():
            teacher = task.batch_pred(model, batch, cfg)[0]
    for p in pairs:
        if p == full:
            continue
        with active(model, *p):
            pred, target = task.batch_pred(model, batch, cfg)
        loss = task.sample_loss(pred, target)
        if w > 0 and teacher is not None:
            loss = loss + w * task.sample_loss(pred, teacher)
        total = loss if total is None else total + loss
    assert total is not None
    return total

"""Memory measurements: closed-form counts and bytes, a known allocation measured, tensor peaks by hand."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from wavesurrogate.eval import memory
from wavesurrogate.nn.registry import build


def test_count_trainable_closed_form() -> None:
    conv = nn.Conv2d(3, 5, kernel_size=3)
    assert memory.count_trainable(conv) == 5 * 3 * 3 * 3 + 5
    conv.bias.requires_grad_(False)
    assert memory.count_trainable(conv) == 5 * 3 * 3 * 3
    m = nn.Module()
    m.w = nn.Parameter(torch.zeros(4, 3, dtype=torch.complex64))  # a complex parameter counts twice
    assert memory.count_trainable(m) == 24


def test_weight_bytes_float32_float64_buffers_and_sharing() -> None:
    conv = nn.Conv2d(2, 4, 3)
    assert memory.weight_bytes(conv) == 4 * memory.count_trainable(conv)
    assert memory.weight_bytes(conv.double()) == 8 * memory.count_trainable(conv)
    bn = nn.BatchNorm2d(6)  # weight, bias, running_mean, running_var (float32) + num_batches_tracked (int64)
    assert memory.weight_bytes(bn) == 4 * 6 * 4 + 8
    lin = nn.Linear(5, 5, bias=False)
    tied = nn.Sequential(lin, lin)  # the same tensor twice in the state dict
    assert memory.weight_bytes(tied) == 4 * 25


def test_peak_memory_sees_a_known_allocation() -> None:
    small = memory.peak_memory_bytes(memory.fill_bytes, 8 << 20)
    big = memory.peak_memory_bytes(memory.fill_bytes, 40 << 20)
    assert small is not None and big is not None
    assert small >= 8 << 20 and big >= 40 << 20
    assert abs((big - small) - (32 << 20)) < 3 << 20  # the difference is the extra 32 MiB, to 3 MiB


def _two_buffers(n: int) -> None:
    """Holds an n-float buffer, then a second one alongside (peak 2n floats), then frees both."""
    a = torch.ones(n)
    b = torch.ones(n)
    del a, b
    c = torch.ones(n)  # after the frees: live n, the peak stays 2n
    del c


def _backward_transient(n: int) -> None:
    """y = (x * w).sum() backward: alive at the peak are x, w (made here), the product and the grad."""
    x = torch.ones(n)
    w = torch.ones(n, requires_grad=True)
    (x * w).sum().backward()


def test_tensor_peak_is_the_closed_form_of_live_tensors() -> None:
    n = 1 << 20
    assert memory.tensor_peak_bytes(_two_buffers, n) == 2 * 4 * n
    # x, w and x*w (3n) in forward; in backward the product is freed only after the sum, and grad(w) = x
    # broadcast from the scalar grad is a new n-buffer: the peak is between 3n and 4n floats, plus scalars
    peak = memory.tensor_peak_bytes(_backward_transient, n)
    assert 3 * 4 * n <= peak <= 4 * 4 * n + 4096
    # a linear layer's training step: weights, grads, two Adam moments and the batch are all alive at once
    peak = memory.train_step_tensor_peak_bytes("cnn2d", {"width": 4, "depth": 0}, (2, 5, 8, 8), (2, 1, 8, 8))
    model = build("cnn2d", {"width": 4, "depth": 0})
    assert peak >= 4 * memory.weight_bytes(model) + 4 * (2 * 5 * 64 + 2 * 64)


def test_peak_memory_reports_the_child_error() -> None:
    with pytest.raises(RuntimeError, match="measured function failed"):
        memory.peak_memory_bytes(memory.fill_bytes, "not a number")

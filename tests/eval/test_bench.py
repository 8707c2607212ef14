"""Bench measurements: closed-form counts and bytes, a known allocation measured, latency sane, speed-up."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from wavesurrogate.eval import bench


def test_count_trainable_closed_form() -> None:
    conv = nn.Conv2d(3, 5, kernel_size=3)
    assert bench.count_trainable(conv) == 5 * 3 * 3 * 3 + 5
    conv.bias.requires_grad_(False)
    assert bench.count_trainable(conv) == 5 * 3 * 3 * 3
    m = nn.Module()
    m.w = nn.Parameter(torch.zeros(4, 3, dtype=torch.complex64))  # a complex parameter counts twice
    assert bench.count_trainable(m) == 24


def test_weight_bytes_float32_float64_buffers_and_sharing() -> None:
    conv = nn.Conv2d(2, 4, 3)
    assert bench.weight_bytes(conv) == 4 * bench.count_trainable(conv)
    assert bench.weight_bytes(conv.double()) == 8 * bench.count_trainable(conv)
    bn = nn.BatchNorm2d(6)  # weight, bias, running_mean, running_var (float32) + num_batches_tracked (int64)
    assert bench.weight_bytes(bn) == 4 * 6 * 4 + 8
    lin = nn.Linear(5, 5, bias=False)
    tied = nn.Sequential(lin, lin)  # the same tensor twice in the state dict
    assert bench.weight_bytes(tied) == 4 * 25


def test_peak_memory_sees_a_known_allocation() -> None:
    small = bench.peak_memory_bytes(bench.fill_bytes, 8 << 20)
    big = bench.peak_memory_bytes(bench.fill_bytes, 40 << 20)
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
    assert bench.tensor_peak_bytes(_two_buffers, n) == 2 * 4 * n
    # x, w and x*w (3n) in forward; in backward the product is freed only after the sum, and grad(w) = x
    # broadcast from the scalar grad is a new n-buffer: the peak is between 3n and 4n floats, plus scalars
    peak = bench.tensor_peak_bytes(_backward_transient, n)
    assert 3 * 4 * n <= peak <= 4 * 4 * n + 4096
    # a linear layer's training step: weights, grads, two Adam moments and the batch are all alive at once
    peak = bench.train_step_tensor_peak_bytes("cnn2d", {"width": 4, "depth": 0}, (2, 5, 8, 8), (2, 1, 8, 8))
    model = bench._build("cnn2d", {"width": 4, "depth": 0})
    assert peak >= 4 * bench.weight_bytes(model) + 4 * (2 * 5 * 64 + 2 * 64)


def test_peak_memory_reports_the_child_error() -> None:
    with pytest.raises(RuntimeError, match="measured function failed"):
        bench.peak_memory_bytes(bench.fill_bytes, "not a number")


def test_latency_positive_finite_and_per_sample() -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 2, 3, padding=1)).train()
    lat = bench.latency_ms(model, (4, 3, 16, 16), warmup=1, repeats=5)
    assert lat.batch == 4 and lat.repeats == 5 and lat.threads == torch.get_num_threads()
    assert 0 < lat.min_ms <= lat.q25_ms <= lat.median_ms <= lat.q75_ms and math.isfinite(lat.q75_ms)
    assert lat.per_sample_ms == pytest.approx(lat.median_ms / 4)
    assert model.training  # the mode is restored


def test_time_calls_counts_calls() -> None:
    calls = []
    secs = bench.time_calls(lambda: calls.append(1), warmup=2, repeats=3)
    assert len(calls) == 5 and len(secs) == 3 and all(s >= 0 for s in secs)


def test_speedup_is_the_ratio() -> None:
    assert bench.speedup(0.3, 0.1) == pytest.approx(3.0)
    assert bench.speedup(0.05, 0.1) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        bench.speedup(1.0, 0.0)

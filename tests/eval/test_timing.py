"""Timing: latency sane and ordered, calls counted, round-robin interleaving, threads restored, speed-up."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from wavesurrogate.eval import timing


def test_latency_positive_finite_and_per_sample() -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 2, 3, padding=1)).train()
    lat = timing.latency_ms(model, (4, 3, 16, 16), warmup=1, repeats=5)
    assert lat.batch == 4 and lat.repeats == 5 and lat.threads == torch.get_num_threads()
    assert 0 < lat.min_ms <= lat.q25_ms <= lat.median_ms <= lat.q75_ms and math.isfinite(lat.q75_ms)
    assert lat.per_sample_ms == pytest.approx(lat.median_ms / 4)
    assert model.training  # the mode is restored


def test_time_calls_counts_calls() -> None:
    calls = []
    secs = timing.time_calls(lambda: calls.append(1), warmup=2, repeats=3)
    assert len(calls) == 5 and len(secs) == 3 and all(s >= 0 for s in secs)


def test_speedup_is_the_ratio() -> None:
    assert timing.speedup(0.3, 0.1) == pytest.approx(3.0)
    assert timing.speedup(0.05, 0.1) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        timing.speedup(1.0, 0.0)


def test_round_robin_interleaves_and_reports_wall_and_cpu() -> None:
    order: list[str] = []
    fns = {"a": lambda: order.append("a"), "b": lambda: order.append("b")}
    out = timing.round_robin(fns, repeats=3, warmup=1)
    assert order == ["a", "b"] * 4  # one call of each per round, warm-up round included
    assert set(out) == {"a", "b"} and all(len(w) == len(c) == 3 for w, c in out.values())
    busy = timing.round_robin({"spin": lambda: sum(range(200_000))}, repeats=2)["spin"]
    assert all(w > 0 and c >= 0 for w, c in zip(*busy, strict=True))
    with pytest.raises(ValueError):
        timing.round_robin({"a": lambda: None}, repeats=0)


def test_with_threads_sets_and_restores() -> None:
    before = torch.get_num_threads()
    assert timing.with_threads(1, torch.get_num_threads) == 1
    assert torch.get_num_threads() == before

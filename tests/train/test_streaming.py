"""Streaming forecast data (``data.stream``): one-pass statistics, the bounded LRU cache, per-process file
handles (DataLoader workers), and training streamed vs in memory: same seed → bit-identical losses/weights."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import test_rollout_training
import torch
import train_tiny as tt
import yaml
from safetensors.torch import load_file
from torch.utils.data import DataLoader

from wavesurrogate.config.campaign import load_campaign_config
from wavesurrogate.data.campaign import simulate
from wavesurrogate.data.store import open_data
from wavesurrogate.data.stream import CaseCache, ProcessFile
from wavesurrogate.data.windows import RunningMeanStd, _mean_std, compute_stats
from wavesurrogate.errors import ConfigError
from wavesurrogate.tasks import get
from wavesurrogate.tasks._forecast_stream import StreamedWindows, stream_stats
from wavesurrogate.train.loop import config_from_dict, train

CASE_BYTES = 8 * 16 * 16 * 4  # one tiny case's normalised fields (velocity: 1 KiB more)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return tt.write_tiny_file(tmp_path_factory.mktemp("d") / "tiny.h5", n_cases=10, n_test=2)


def _cfg(data: Path, out: Path, stream: dict | None, **over):
    c = tt.tiny_config(data, out, epochs=2, **over)
    if stream is not None:
        c["data"]["stream"] = stream
    return config_from_dict(c)


def _f32(stats: dict) -> list[np.float32]:
    return [np.float32(stats[k]) for k in ("field_mean", "field_std", "velocity_mean", "velocity_std")]


def test_running_mean_std_matches_the_two_pass_statistics():
    rng = np.random.default_rng(0)
    chunks = [(rng.standard_normal((5, 7, 9)) * 3 + 100).astype(np.float32) for _ in range(6)]
    acc = RunningMeanStd()
    for c in chunks:
        acc.add(c)
    (m, s), (m2, s2) = acc.result(), _mean_std(chunks)
    assert m == m2  # the same float64 sums in the same order
    assert s == pytest.approx(s2, rel=1e-12)
    flat = RunningMeanStd()
    flat.add(np.ones(4))
    assert flat.result() == (1.0, 1.0)  # zero std → 1


def test_streaming_stats_equal_the_in_memory_ones(tiny):
    with open_data(tiny) as f:
        cases = np.arange(6)
        got, want = stream_stats(f, cases), compute_stats(*f.load_all(cases))
    assert got["field_mean"] == want["field_mean"]
    for k in ("field_std", "velocity_mean", "velocity_std"):
        assert got[k] == pytest.approx(want[k], rel=1e-12)
    assert _f32(got) == _f32(want)  # what normalisation uses


def test_case_cache_is_lru_and_bounded():
    cache = CaseCache(3 * 100)
    loads = []

    def loader(k):
        return lambda: loads.append(k) or np.zeros(25, np.float32)  # 100 bytes

    for k in (0, 1, 2, 0, 3):  # 0 is touched again, so 1 is the least recently used when 3 arrives
        cache.get(k, loader(k))
    assert loads == [0, 1, 2, 3] and 1 not in cache and {0, 2, 3} <= set(cache._items)
    assert cache.bytes == 300 and cache.info()["evictions"] == 1 and cache.hits == 1
    big = CaseCache(10)
    big.get("a", lambda: np.zeros(100))
    assert len(big) == 1  # an entry larger than the bound still stays (the one being used)
    big.get("b", lambda: np.zeros(100))
    assert list(big._items) == ["b"]
    copy = pickle.loads(pickle.dumps(cache))
    assert len(copy) == 0 and copy.max_bytes == 300


def _datasets(tiny, cache_bytes: int, **kw):
    cfg = _cfg(tiny, tiny.parent / "unused", None)
    mem = get("forecast").prepare(cfg)
    with open_data(tiny) as f:
        n_frames = f.n_frames
    cases = mem.stats["splits"]["train"]
    streamed = StreamedWindows(ProcessFile(tiny), cases, n_frames, 2, 1, mem.stats, **kw,
                               cache=CaseCache(cache_bytes))
    return mem, streamed


@pytest.mark.parametrize("kw", [{}, {"stride": 2, "unroll": (1, 3), "noise_std": 0.1, "seed": 4}])
def test_streamed_windows_are_the_in_memory_windows(tiny, kw):
    from wavesurrogate.tasks.forecast import ForecastWindows

    mem, streamed = _datasets(tiny, CASE_BYTES, **kw)  # room for about one case: evicts all the time
    with open_data(tiny) as f:
        ref = ForecastWindows(*f.load_all(mem.stats["splits"]["train"]), 2, 1, mem.stats, **kw)
    for epoch in (0, 1):
        ref.set_epoch(epoch)
        streamed.set_epoch(epoch)
        assert len(streamed) == len(ref)
        for i in np.random.default_rng(epoch).permutation(len(ref)):
            for a, b in zip(streamed[i], ref[i], strict=True):
                assert torch.equal(a, b)
    assert streamed.cache.evictions > 0 and streamed.cache.bytes <= 2 * CASE_BYTES
    with pytest.raises(IndexError):
        streamed[len(streamed)]


def test_dataloader_workers_open_their_own_file(tiny):
    mem, streamed = _datasets(tiny, 1 << 20)
    streamed[0]  # the parent has opened the file and cached a case
    state = pickle.dumps(streamed)
    assert b"h5py" not in state and len(pickle.loads(state).cache) == 0
    batches = [list(range(s, min(s + 5, len(streamed)))) for s in range(0, len(streamed), 5)]
    want = [[torch.stack(p) for p in zip(*(streamed[i] for i in b), strict=True)] for b in batches]
    for ctx in ("fork", "spawn"):
        loader = DataLoader(streamed, batch_sampler=batches, num_workers=2, multiprocessing_context=ctx)
        got = list(loader)
        pairs = [(a, b) for g, w in zip(got, want, strict=True) for a, b in zip(g, w, strict=True)]
        assert len(pairs) == 2 * len(batches) and all(torch.equal(a, b) for a, b in pairs)
    assert streamed.file.opens == 1  # workers opened their own; the parent's was neither shared nor reopened


def test_streamed_training_is_bit_identical_to_in_memory(tiny, tmp_path):
    runs = {}
    for name, stream in (("mem", None), ("stream", {"cache_mb": 2 * CASE_BYTES / 2**20})):
        runs[name] = train(_cfg(tiny, tmp_path / name, stream, log_step_losses=True))
    lines = {k: [json.loads(x) for x in (r / "metrics.jsonl").read_text().splitlines()]
             for k, r in runs.items()}
    assert len(lines["mem"]) == 2
    for a, b in zip(lines["mem"], lines["stream"], strict=True):
        assert (a["step_losses"], a["train_loss"], a["val_loss"]) == (b["step_losses"], b["train_loss"],
                                                                      b["val_loss"])
    w = {k: load_file(str(r / "weights.safetensors")) for k, r in runs.items()}
    assert w["mem"].keys() == w["stream"].keys()
    assert all(torch.equal(w["mem"][k], w["stream"][k]) for k in w["mem"])
    s = {k: json.loads((r / "stats.json").read_text()) for k, r in runs.items()}
    assert s["mem"]["splits"] == s["stream"]["splits"] and _f32(s["mem"]) == _f32(s["stream"])
    cfg = yaml.safe_load((runs["stream"] / "config.yaml").read_text())
    assert cfg["data"]["stream"] == {"cache_mb": 2 * CASE_BYTES / 2**20}
    assert yaml.safe_load((runs["mem"] / "config.yaml").read_text())["data"]["stream"] is None


def test_streamed_training_resumes_bit_for_bit(tiny, tmp_path):
    stream = {"cache_mb": 1.0}
    full = train(_cfg(tiny, tmp_path / "full", stream))
    part = train(_cfg(tiny, tmp_path / "part", stream), stop_after_epoch=1)
    train(None, resume=part)
    a, b = load_file(str(full / "weights.safetensors")), load_file(str(part / "weights.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


CAMPAIGN = {**test_rollout_training.CAMPAIGN, "cases": 4, "test_cases": 1,
            "time": {"n_frames": 12, "frame_stride": 3}}


def test_forcing_inputs_stream_the_same_windows(tmp_path):
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(CAMPAIGN), encoding="utf-8")
    data = simulate(load_campaign_config(tmp_path / "c.yaml"), tmp_path / "d.h5", workers=1, progress=False)
    over = {"inputs": ["frames", "velocity", "forcing"], "update": "leapfrog"}
    base = tt.tiny_config(data, tmp_path / "r", rollout={"unroll": [2]})
    base["data"].update(over)
    base["model"] = {"name": "cnn2d", "kwargs": {"width": 4, "depth": 1}}
    mem = get("forecast").prepare(config_from_dict(base))
    base["data"]["stream"] = {"cache_mb": 0.01}
    got = get("forecast").prepare(config_from_dict(base))
    assert got.stats["forcing_scale"] == mem.stats["forcing_scale"]
    assert _f32(got.stats) == _f32(mem.stats)
    for ds_got, ds_mem in ((got.train, mem.train), (got.val, mem.val)):
        assert len(ds_got) == len(ds_mem)
        for i in range(len(ds_mem)):
            assert all(torch.equal(a, b) for a, b in zip(ds_got[i], ds_mem[i], strict=True))


@pytest.mark.parametrize("stream, msg", [({"cache_mb": 0}, "cache_mb"), ({"cache": 1}, "cache"),
                                         ({}, "data.stream is an option of the forecast task")])
def test_bad_stream_configs_are_one_line_config_errors(tiny, tmp_path, stream, msg):
    c = tt.tiny_config(tiny, tmp_path / "r")
    c["data"]["stream"] = stream
    if not msg.startswith("data.stream"):
        c["data"]["task"] = "forecast"
    else:
        c["data"]["task"] = "source_to_field"
        c["model"] = {"name": tt.FIELD, "kwargs": {}}
    with pytest.raises(ConfigError, match=msg) as err:
        config_from_dict(c)
    assert "\n" not in str(err.value)

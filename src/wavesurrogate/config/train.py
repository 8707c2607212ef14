"""Training config (``wavesurrogate train CONFIG.yaml``): pydantic models, strict, frozen.

A minimal config::

    name: forecast16
    data: {path: data.h5, task: forecast, n_in: 2, n_out: 1}
    model: {name: cnn2d, kwargs: {n_in: 2, n_out: 1, width: 16}}
    epochs: 10
    batch_size: 16

Relative paths (``data.path``, ``out``) are resolved against the current working directory; the run
directory keeps the resolved config (absolute paths) in ``config.yaml``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from wavesurrogate.config.base import Strict, load_config
from wavesurrogate.limits import MAX_SEED, MAX_THREADS

MAX_UNROLL = 10_000  # model calls per training sample

__all__ = [
    "DataConfig",
    "ModelConfig",
    "OptimConfig",
    "ScheduleConfig",
    "RolloutConfig",
    "StreamConfig",
    "ElasticConfig",
    "TrainConfig",
    "load_train_config",
    "RESUMABLE_CHANGES",
    "RUN_NAME",
]

# A run name becomes a directory name (runs/<name>): no separator, no '..', nothing hidden, not too long.
RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")

# Keys of a TrainConfig that may differ between a run's config.yaml and the config given with --resume.
RESUMABLE_CHANGES = ("epochs", "num_threads", "progress", "out")


class StreamConfig(Strict):
    """Streaming training data (forecast): cases read from the file chunk by chunk, an LRU cache of cases."""

    cache_mb: float = Field(256.0, gt=0.0, le=2.0**30,
                            description="bound of the LRU cache of normalised cases, in MiB "
                            "per process (at least one case is always held)")


class DataConfig(Strict):
    """Which data file, which task, and how cases become training samples."""

    path: str
    task: str = Field("forecast", description="a task of wavesurrogate.tasks (checked when training)")
    n_in: int = Field(1, ge=1, le=100_000, description="input frames per window (forecast)")
    n_out: int = Field(1, ge=1, le=100_000, description="target frames per window (forecast)")
    window_stride: int = Field(1, ge=1, description="frames between consecutive window starts (forecast)")
    val_fraction: float = Field(0.2, ge=0.0, lt=1.0, description="share of training cases for validation")
    points_per_case: int = Field(1024, ge=1, le=10**7, description="(x, y, t) samples per case, epoch")
    params: list[str] | None = Field(None, description="parameters fed to the model; default all")
    receivers: str = Field("receivers", description="trace group traces/<name> (source_to_receiver)")
    held_out_receivers: int | list[int] = Field(
        8, description="source_to_receiver: receivers never trained on, a count (chosen deterministically) "
                       "or their positions in the trace group")
    max_cases: int | None = Field(None, ge=1, description="use only the first N cases")
    inputs: list[Literal["frames", "velocity", "forcing"]] = Field(
        ["frames", "velocity"], description="forecast input channels: frames, velocity, then forcing "
        "(the source term of the frames being predicted)")
    forcing_kind: Literal["interval", "leapfrog"] = Field(
        "interval", description="forcing input per predicted frame: the source's integral over the frame "
        "interval (interval) or over the two intervals around the last input frame, hat-weighted as the "
        "leapfrog residual sees it (leapfrog; physics.sources.frame_forcing)")
    update: Literal["direct", "leapfrog"] = Field(
        "direct", description="forecast: the network gives the next frames (direct) or the correction in "
        "u^{n+1} = 2u^n - u^{n-1} + network (leapfrog, needs n_in >= 2)")
    stream: StreamConfig | None = Field(
        None, description="forecast: stream windows from the file through a bounded cache instead of "
        "loading the splits into memory (default: in memory)")

    @model_validator(mode="after")
    def _check_inputs(self) -> DataConfig:
        if self.inputs[:2] != ["frames", "velocity"] or self.inputs[2:] not in ([], ["forcing"]):
            raise ValueError("inputs must be [frames, velocity] or [frames, velocity, forcing]")
        if self.update == "leapfrog" and self.n_in < 2:
            raise ValueError("update: leapfrog needs two time levels, n_in >= 2")
        return self


class ModelConfig(Strict):
    """A registered model name and its JSON-serialisable constructor arguments."""

    name: str
    kwargs: dict[str, Any] = Field(default_factory=dict)


class OptimConfig(Strict):
    """Optimiser: adam, adamw or sgd (with momentum)."""

    name: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = Field(1e-3, gt=0.0, le=1e6)
    weight_decay: float = Field(0.0, ge=0.0, le=1e6)
    momentum: float = Field(0.9, ge=0.0, lt=1.0, description="sgd only")


class ScheduleConfig(Strict):
    """Learning-rate schedule, stepped once per epoch; ``exponential_steps`` once per optimiser step."""

    name: Literal["none", "cosine", "step", "exponential", "exponential_steps"] = "none"
    step_size: int = Field(10, ge=1, description="step: epochs between decays")
    gamma: float = Field(0.5, gt=0.0, le=1.0, description="step/exponential(_steps): decay factor")
    decay_steps: int = Field(
        2000, ge=1, description="exponential_steps: lr = lr0 * gamma**(step / decay_steps)"
    )
    min_lr: float = Field(0.0, ge=0.0, le=1e6, description="cosine: final learning rate")


class RolloutConfig(Strict):
    """Rollout-aware training of forecasts: unrolled steps on a curriculum, pushforward, input noise."""

    unroll: list[int] = Field([1], min_length=1, description="model calls per training sample, one entry "
                              "per curriculum stage (e.g. [2, 4, 8, 16]); the loss is over all of them")
    stage_epochs: int = Field(1, ge=1, description="epochs per curriculum stage (the last stage stays)")
    pushforward: bool = Field(False, description="unroll without gradient, then one step with gradient "
                              "(loss on that step only)")
    noise_std: float = Field(0.0, ge=0.0, le=1e6, description="std of Gaussian noise on the input frames "
                             "(normalised units; training only, seeded by seed, epoch, sample)")

    @model_validator(mode="after")
    def _check(self) -> RolloutConfig:
        if any(not 1 <= k <= MAX_UNROLL for k in self.unroll):
            raise ValueError(f"unroll: every stage needs 1 … {MAX_UNROLL} steps")
        return self

    @property
    def default(self) -> bool:
        """Whether this is plain one-step training."""
        return self.unroll == [1] and not self.pushforward and self.noise_std == 0.0

    def steps(self, epoch: int) -> int:
        """Unrolled steps in 0-based ``epoch``."""
        return self.unroll[min(epoch // self.stage_epochs, len(self.unroll) - 1)]


class ElasticConfig(Strict):
    """Nested training of one elastic model (``nn.elastic``) at several (blocks, rank) sub-networks."""

    pairs: list[tuple[int, int]] = Field(
        min_length=1, description="(blocks, rank) sub-networks trained together, small to large; must "
        "include the model's full size, e.g. [[1, 2], [2, 4], [3, 8], [4, 16]]")
    sampling: Literal["all", "random"] = Field(
        "all", description="all: the loss summed over every pair at every step (Starbucks' fixed list); "
        "random: one pair per training step, drawn from torch's generator the loop seeds per epoch")
    distill: float = Field(0.3, ge=0.0, description="weight of each sub-network's loss against the full "
                           "model's detached output (the regression analogue of Starbucks' KL term)")

    @model_validator(mode="after")
    def _check(self) -> ElasticConfig:
        if any(b < 1 or r < 1 for b, r in self.pairs):
            raise ValueError("pairs: blocks and rank must be >= 1")
        if len(set(self.pairs)) != len(self.pairs):
            raise ValueError("pairs: each (blocks, rank) once")
        return self


class TrainConfig(Strict):
    """Everything one training run needs; the resolved copy is ``config.yaml`` in the run directory."""

    name: str = "run"
    seed: int = Field(0, ge=0, le=MAX_SEED)
    out: str | None = Field(None, description="run directory; default runs/<name>")
    data: DataConfig
    model: ModelConfig
    optim: OptimConfig = Field(default_factory=OptimConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(16, ge=1, le=10**7,
                            description="global batch (summed over DDP processes)")
    grad_clip: float | None = Field(None, gt=0.0, le=1e15, description="max global gradient norm")
    num_threads: int | None = Field(None, ge=1, le=MAX_THREADS,
                                    description="torch intra-op threads (default: torch's)")
    eval_every: int = Field(1, ge=1, description="validate every N epochs (and always at the last)")
    device: Literal["cpu", "cuda", "auto"] = "cpu"
    progress: bool | None = Field(None, description="rich progress bar; default: when stderr is a terminal")
    log_step_losses: bool = Field(False, description="add the per-step training losses to metrics.jsonl")
    rollout: RolloutConfig = Field(default_factory=RolloutConfig)
    elastic: ElasticConfig | None = Field(
        None, description="train the model's nested (blocks, rank) sub-networks together (default: off)")

    @field_validator("name")
    @classmethod
    def _safe_name(cls, v: str) -> str:
        if not RUN_NAME.fullmatch(v):  # runs/<name> must stay inside runs/
            raise ValueError(f"must match {RUN_NAME.pattern} (letters, digits, '.', '_', '-', starting "
                             f"with a letter or digit, at most 100 characters), got {v[:40]!r}")
        return v

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        for what, p in (("name", self.name), ("data.path", self.data.path), ("out", self.out or "")):
            if "\x00" in p:  # the OS refuses such paths (ValueError deep in pathlib otherwise)
                raise ValueError(f"{what} must not contain a NUL character")
        d = self.data
        if self.data.task != "forecast" and (not self.rollout.default or d.update != "direct"
                                             or d.inputs != ["frames", "velocity"]):
            raise ValueError("rollout, data.inputs and data.update are options of the forecast task")
        if self.data.task != "forecast" and d.stream is not None:
            raise ValueError("data.stream is an option of the forecast task")
        return self

    def resolved(self) -> TrainConfig:
        """A copy with absolute ``data.path`` and ``out``."""
        out = Path(self.out) if self.out is not None else Path("runs") / self.name
        data = self.data.model_copy(update={"path": str(Path(self.data.path).expanduser().resolve())})
        return self.model_copy(update={"out": str(out.expanduser().resolve()), "data": data})


def load_train_config(path: str | Path) -> TrainConfig:
    """Read and validate a training config; ConfigError (one line) on any problem."""
    return load_config(path, TrainConfig)

"""Task ``forecast``: the next ``n_out`` frames from the last ``n_in`` frames and the velocity map.

Model interface ``frames``: ``forward(x)`` with x float32 ``[batch, n_in + 1 (+ n_out), ny, nx]`` (the last
n_in frames, the normalised velocity map, and with ``data.inputs: [frames, velocity, forcing]`` the source
term of the n_out frames being predicted) returns ``[batch, n_out, ny, nx]``: the next frames, or with
``data.update: leapfrog`` the corrections r in u^{n+1} = 2u^n − u^{n−1} + r (``nn.rollout.step``).
Training: ``batch_pred`` unrolls ``rollout.unroll`` calls per window (curriculum, pushforward; input noise in
the windows). Evaluation: one-step metrics over the test cases' windows (true inputs; every
``window_stride`` frames), a rollout (``predict``) from frames ``rollout_start ..`` to the last frame: errors
per horizon and over all, ``diverged`` (non-finite or above the threshold) instead of a crash, energy growth
after the source stops (``flagged``), the step map's spectral radius at the last true state (``stability``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from wavesurrogate.data.windows import compute_stats, sample_seed
from wavesurrogate.errors import CheckpointError, ConfigError, DataFileError
from wavesurrogate.metrics import temporal
from wavesurrogate.metrics.suite import summarise
from wavesurrogate.nn.registry import FRAMES
from wavesurrogate.tasks._forcing import (
    forcing_channels,
    forcing_kind,
    forcing_scale,
    load_forcing,
    source_info,
)
from wavesurrogate.tasks.base import (
    Affine,
    Task,
    TrainData,
    check_geometry,
    check_grid_stats,
    check_numbers,
    load_cases,
)

__all__ = ["ForecastWindows", "Forecast", "TASK", "field_affine", "velocity_affine", "load_forcing",
           "energy_report", "step_radius", "ENERGY_THRESHOLD"]


def field_affine(stats: Mapping[str, Any]) -> Affine:
    """The field normalisation of a run's statistics."""
    return Affine(float(stats["field_mean"]), float(stats["field_std"]))


def velocity_affine(stats: Mapping[str, Any]) -> Affine:
    """The velocity normalisation of a run's statistics."""
    return Affine(float(stats["velocity_mean"]), float(stats["velocity_std"]))


class ForecastWindows(Dataset):
    """Windows of consecutive frames: input = n_in frames + velocity (+ forcing), target = next frames.

    ``fields`` ``[case, frame, y, x]`` and ``velocity`` ``[case, y, x]`` hold only this split's cases;
    item ``i`` is ``(x [n_in + 1 (+ F), y, x], y [F, y, x])`` float32, normalised with ``stats``, where
    F = ``steps · n_out`` target frames (``steps`` model calls: ``unroll`` of the current curriculum stage,
    see ``set_epoch``). ``forcing`` = ``(amplitude [case, frame], footprint [case, y, x])`` adds the F
    forcing channels ``amplitude · footprint / stats["forcing_scale"]`` of the target frames. ``noise_std``
    adds Gaussian noise to the input frames, drawn from a generator seeded by (seed, epoch, i).
    Windows start every ``stride`` frames; window ``i`` is (case ``i // per_case``, start
    ``stride * (i % per_case)``).
    """

    def __init__(self, fields: np.ndarray, velocity: np.ndarray, n_in: int, n_out: int,
                 stats: Mapping[str, Any], stride: int = 1, *,
                 forcing: tuple[np.ndarray, np.ndarray] | None = None, unroll: tuple[int, ...] = (1,),
                 stage_epochs: int = 1, noise_std: float = 0.0, seed: int = 0) -> None:
        fields, velocity = np.asarray(fields), np.asarray(velocity)
        if fields.ndim != 4 or velocity.shape != (fields.shape[0], *fields.shape[2:]):
            raise DataFileError(f"fields {fields.shape} and velocity {velocity.shape} do not match")
        if n_in < 1 or n_out < 1 or stride < 1 or min(unroll) < 1 or stage_epochs < 1:
            raise ValueError("n_in, n_out, stride, unroll and stage_epochs must be >= 1")
        n_frames, need = fields.shape[1], n_in + max(unroll) * n_out
        if n_frames < need:
            times = " · max(unroll)" if max(unroll) > 1 else ""
            raise DataFileError(f"cases have {n_frames} frames, fewer than n_in + n_out{times} = {need}")
        self.n_in, self.n_out, self.stride, self.n_frames = n_in, n_out, stride, n_frames
        self.unroll, self.stage_epochs = tuple(unroll), stage_epochs
        self.noise_std, self.seed = noise_std, seed
        self.fields = field_affine(stats).encode(fields)
        self.velocity = velocity_affine(stats).encode(velocity)
        self.forcing = None
        if forcing is not None:
            scale = float(stats["forcing_scale"])
            self.forcing = (torch.from_numpy(forcing[0] / scale).float(),
                            torch.from_numpy(forcing[1]).float())
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        """Select the curriculum stage of 0-based ``epoch`` (the loop calls this before each epoch)."""
        self.epoch = epoch
        self.steps = self.unroll[min(epoch // self.stage_epochs, len(self.unroll) - 1)]
        self.per_case = (self.n_frames - self.n_in - self.steps * self.n_out) // self.stride + 1

    def __len__(self) -> int:
        return self.fields.shape[0] * self.per_case

    def locate(self, i: int) -> tuple[int, int]:
        """(case position within this split, first input frame) of window ``i``."""
        if not 0 <= i < len(self):
            raise IndexError(i)
        return i // self.per_case, self.stride * (i % self.per_case)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        c, t0 = self.locate(int(i))
        t1, t2 = t0 + self.n_in, t0 + self.n_in + self.steps * self.n_out
        frames = self.fields[c, t0:t1]
        if self.noise_std > 0:
            gen = torch.Generator().manual_seed(sample_seed(self.seed, self.epoch, int(i)))
            frames = frames + self.noise_std * torch.randn(frames.shape, generator=gen)
        parts = [frames, self.velocity[c][None]]
        if self.forcing is not None:
            parts.append(self.forcing[0][c, t1:t2, None, None] * self.forcing[1][c][None])
        return torch.cat(parts, dim=0), self.fields[c, t1:t2]


ENERGY_THRESHOLD = 1.5  # a rollout whose energy after the source stops grows beyond this factor is flagged


def energy_report(pred: Tensor, true: Tensor, first: int, stops: list[int] | None,
                  threshold: float) -> dict[str, Any]:
    """Energy growth (``nn.stability.energy_growth``) of each rolled-out case from the frame its source is
    off (``first``: frame index of ``pred[:, 0]``; stops unknown: from the first predicted frame), of the
    truth over the same frames, and ``flagged`` when a prediction grows by more than ``threshold``."""
    from wavesurrogate.nn.stability import energy_growth

    grow, grow_true, starts = [], [], []
    for c in range(pred.shape[0]):
        j0 = max(0, (stops[c] if stops is not None else first) - first)
        starts.append(first + j0)
        ok = pred.shape[1] - j0 >= 2
        grow.append(float(energy_growth(pred[c : c + 1, j0:])[0]) if ok else None)
        grow_true.append(float(energy_growth(true[c : c + 1, j0:])[0]) if ok else None)
    known = [g for g in grow if g is not None]
    worst = max(known, key=lambda g: g if g == g else np.inf) if known else None
    return {"energy_from_frame": starts, "energy_growth_cases": grow, "energy_growth_true_cases": grow_true,
            "energy_growth": worst, "energy_threshold": threshold,
            "flagged": any(not g <= threshold for g in known)}


def step_radius(model: nn.Module, state: Tensor, velocity: Tensor, update: str, n_out: int,
                extra: Tensor | None) -> dict[str, Any]:
    """Spectral radius of the one-call map (last n_in frames → last n_in frames after the call) at ``state``
    ``[case, n_in, y, x]`` (normalised), per case and its largest; ``per_frame`` = radius^(1/n_out)."""
    from wavesurrogate.nn.rollout import step
    from wavesurrogate.nn.stability import spectral_radius

    n_in, vel = state.shape[1], velocity.unsqueeze(1)

    def one_call(s: Tensor) -> Tensor:
        return torch.cat([s, step(model, s, vel, extra, update)], dim=1)[:, -n_in:]

    r = spectral_radius(one_call, state)
    worst = float(r.max())
    return {"spectral_radius": worst, "spectral_radius_cases": [float(v) for v in r],
            "spectral_radius_per_frame": worst ** (1.0 / n_out), "state_frames": "last n_in true frames"}


def run_options(stats: Mapping[str, Any]) -> tuple[bool, str]:
    """(forcing in the inputs?, update) of a run's statistics; older runs: (False, "direct")."""
    return "forcing" in stats.get("inputs", ["frames", "velocity"]), str(stats.get("update", "direct"))


def physics_from_stats(stats: Mapping[str, Any]) -> dict[str, float]:
    """``physics`` of a model that starts from the solver's frame map (``model.kwargs.physics: from_data``):
    velocity mean and std, dt, frame stride, dx, dy, field std and forcing scale of the run's statistics."""
    try:
        d = stats["data"]
        return {"c_mean": float(stats["velocity_mean"]), "c_std": float(stats["velocity_std"]),
                "dt_s": float(d["dt"]), "stride": float(d["frame_stride"]), "dx_m": float(d["dx"]),
                "dy_m": float(d["dy"]), "field_std": float(stats["field_std"]),
                "forcing_scale": float(stats.get("forcing_scale", 1.0))}
    except (KeyError, TypeError, ValueError):
        raise ConfigError("model.kwargs.physics: from_data needs the run's statistics (velocity, field, "
                          "dt, frame stride, spacing)") from None


class Forecast(Task):
    """Frames → next frames, rolled out autoregressively."""

    name = "forecast"
    interfaces = (FRAMES,)

    def check_config(self, cfg: Any) -> None:
        for k in ("n_in", "n_out"):
            if k in cfg.model.kwargs and cfg.model.kwargs[k] != getattr(cfg.data, k):
                raise ConfigError(f"model.kwargs.{k} = {cfg.model.kwargs[k]} but data.{k} = "
                                  f"{getattr(cfg.data, k)}")
        if cfg.data.update == "leapfrog" and cfg.model.kwargs.get("residual") is True:
            raise ConfigError("model.kwargs.residual: the leapfrog update adds 2u^n - u^(n-1) itself; "
                              "set residual: false (the default with update: leapfrog)")

    def model_kwargs(self, cfg: Any, stats: dict[str, Any]) -> dict[str, Any]:
        """The config's kwargs; ``n_in``, ``n_out`` from ``data`` where the config omits them; ``n_extra``
        (the forcing channels) with forcing inputs; ``residual: false`` with the leapfrog update where the
        model has that argument and the config does not set it."""
        import inspect

        from wavesurrogate.nn import registry

        kw = {"n_in": cfg.data.n_in, "n_out": cfg.data.n_out}
        if "forcing" in cfg.data.inputs:
            kw["n_extra"] = cfg.data.n_out
        params = inspect.signature(registry.entry(cfg.model.name).cls.__init__).parameters
        if cfg.data.update == "leapfrog" and "residual" in params:
            kw["residual"] = False
        kw = {**kw, **cfg.model.kwargs}
        if "physics" in params and kw.get("physics") == "from_data":
            kw["physics"] = physics_from_stats(stats)
        return kw

    def prepare(self, cfg: Any, stats: dict[str, Any] | None = None) -> TrainData:
        from wavesurrogate.data.store import open_data

        d = cfg.data
        run = {"task": self.name, "n_in": d.n_in, "n_out": d.n_out, "inputs": list(d.inputs),
               "update": d.update}
        if "forcing" in d.inputs and d.forcing_kind != "interval":
            run["forcing_kind"] = d.forcing_kind
        kind = d.forcing_kind
        if d.stream is not None:  # windows read from the file through a bounded cache
            from functools import partial

            from wavesurrogate.tasks._forecast_stream import prepare_streamed

            return prepare_streamed(cfg, stats, run, partial(load_forcing, kind=kind))
        r, got = cfg.rollout, load_cases(cfg, stats)
        forcing = val_forcing = None
        if "forcing" in d.inputs:
            with open_data(d.path) as f:
                forcing = load_forcing(f, got.record["splits"]["train"], kind=kind)
                val_forcing = load_forcing(f, got.record["splits"]["val"], kind=kind) if got.val is not None \
                    else None
        if stats is None:
            stats = compute_stats(*got.train)
            if forcing is not None:
                stats["forcing_scale"] = forcing_scale(forcing)
        stats = {**stats, **run, **got.record}
        train = ForecastWindows(*got.train, d.n_in, d.n_out, stats, d.window_stride, forcing=forcing,
                                unroll=tuple(r.unroll), stage_epochs=r.stage_epochs, noise_std=r.noise_std,
                                seed=cfg.seed)
        val = None if got.val is None else ForecastWindows(  # validated at the last stage's horizon
            *got.val, d.n_in, d.n_out, stats, d.window_stride, forcing=val_forcing, unroll=(r.unroll[-1],))
        return TrainData(train, val, stats)

    def batch_pred(self, model: nn.Module, batch: list[Tensor], cfg: Any) -> tuple[Tensor, Tensor]:
        """(prediction, target) of ``(x, y)``: y holds ``steps · n_out`` frames; one model call per n_out
        frames (rolled out with gradients, the loss over all steps), or with ``rollout.pushforward`` all but
        the last call without gradient and the last call against the last frames; one call when steps = 1."""
        from wavesurrogate.nn.rollout import rollout, step

        x, y = batch
        n_in, n_out, update = cfg.data.n_in, cfg.data.n_out, cfg.data.update
        k = y.shape[1] // n_out
        if k == 1 and update == "direct":
            return model(x), y
        frames, vel = x[:, :n_in], x[:, n_in : n_in + 1]
        extra = x[:, n_in + 1 :] if "forcing" in cfg.data.inputs else None
        if cfg.rollout.pushforward and k > 1:
            pre = rollout(model, frames, vel, (k - 1) * n_out, extra=extra, update=update, n_out=n_out)
            state = torch.cat([frames, pre], dim=1)[:, -n_in:]
            last = None if extra is None else extra[:, (k - 1) * n_out :]
            return step(model, state, vel, last, update), y[:, -n_out:]
        pred = rollout(model, frames, vel, k * n_out, grad=True, extra=extra, update=update, n_out=n_out)
        return pred, y

    def in_channels(self, stats: Mapping[str, Any]) -> int:
        """Input channels of one model call: n_in frames, velocity, and n_out forcing channels if read."""
        return int(stats["n_in"]) + 1 + (int(stats["n_out"]) if run_options(stats)[0] else 0)

    @torch.no_grad()
    def predict(self, model: nn.Module, stats: Mapping[str, Any], fields: np.ndarray, velocity: np.ndarray,
                start: int, n_steps: int, *, forcing: tuple[np.ndarray, np.ndarray] | None = None,
                batch_size: int = 32) -> Tensor:
        """Rollout of a run, float64 field units ``[case, n_steps, y, x]``: frames ``start .. start + n_steps
        − 1`` from the true frames ``[start − n_in, start)`` of ``fields`` ``[case, frame, y, x]`` (field
        units), ``velocity`` ``[case, y, x]`` (m/s), through the run's inputs and update (``nn.rollout``);
        ``forcing`` (``load_forcing`` of these cases, frames from 0, of the run's ``forcing_kind``) is
        required when the run reads it."""
        from wavesurrogate.nn.rollout import rollout

        n_in, n_out = int(stats["n_in"]), int(stats["n_out"])
        use_forcing, update = run_options(stats)
        if use_forcing and forcing is None:
            raise DataFileError("forecast: this run reads the forcing; pass forcing=load_forcing(f, cases)")
        if not n_in <= start <= fields.shape[1]:
            raise ConfigError(f"forecast: start frame {start} needs {n_in} true frames of {fields.shape[1]}")
        fa = field_affine(stats)
        x0, vel = fa.encode(fields[:, start - n_in : start]), velocity_affine(stats).encode(velocity)
        end = start + -(-n_steps // n_out) * n_out  # every call's forcing, the last call's surplus frames too
        ex = forcing_channels(forcing, stats, start, end) if use_forcing else None  # type: ignore[arg-type]
        b = batch_size
        return torch.cat([fa.decode(rollout(model, x0[c : c + b], vel[c : c + b], n_steps, update=update,
                                            n_out=n_out, extra=None if ex is None else ex[c : c + b]))
                          for c in range(0, max(1, fields.shape[0]), b)])

    def export(self, model: nn.Module, stats: dict[str, Any]) -> Any:
        """One call of the run in physical units, its update inside (``tasks._export.FrameStep``)."""
        from wavesurrogate.tasks._export import frames_export

        return frames_export(model, stats, *run_options(stats))

    def export_samples(self, f: Any, cases: np.ndarray, stats: dict[str, Any], n: int) -> list[dict]:
        """``n`` windows of consecutive frames (with velocity and forcing) spread over ``cases``."""
        from wavesurrogate.tasks._export import frames_samples

        forcing = load_forcing(f, cases, f.n_frames, forcing_kind(stats)) if run_options(stats)[0] else None
        return frames_samples(f, cases, stats, n, forcing)

    def check_stats(self, stats: dict[str, Any], source: str) -> None:
        check_numbers(stats, source, {"field_mean": False, "field_std": True, "velocity_mean": False,
                                      "velocity_std": True}, ints=("n_in", "n_out"))
        check_grid_stats(stats, source)
        forcing, update = run_options(stats)
        if update not in ("direct", "leapfrog") or stats.get("inputs", ["frames", "velocity"]) not in (
                ["frames", "velocity"], ["frames", "velocity", "forcing"]):
            raise CheckpointError(f"{source}: unknown inputs {stats.get('inputs')!r} or update {update!r}")
        if forcing:
            check_numbers(stats, source, {"forcing_scale": True})
        if forcing_kind(stats) not in ("interval", "leapfrog"):
            raise CheckpointError(f"{source}: unknown forcing_kind {stats.get('forcing_kind')!r}")

    def check_fits(self, f: Any, info: Any) -> None:
        where = f"{f.path}: run {info.run_dir.name}"
        check_geometry(f, info.stats, where)
        n_in = int(info.stats["n_in"])
        if f.n_frames < n_in + 1:
            raise DataFileError(f"{where} needs at least n_in + 1 = {n_in + 1} frames, the file has "
                                f"{f.n_frames}")

    @torch.no_grad()
    def evaluate(self, model: nn.Module, info: Any, f: Any, cases: np.ndarray, *, batch_size: int = 32,
                 rollout_start: int = 0, window_stride: int = 1,
                 energy_threshold: float = ENERGY_THRESHOLD) -> dict[str, Any]:
        """One-step metrics (windows every ``window_stride`` frames); the rollout from ``rollout_start``, its
        energy after the source stops and the spectral radius of the step map at the last true state."""
        from wavesurrogate.metrics.spatial import pooled_rel_l2
        from wavesurrogate.nn.rollout import rollout

        fields, velocity = f.load_all(cases)
        s = info.stats
        n_in, n_out = int(s["n_in"]), int(s["n_out"])
        (use_forcing, update), fa = run_options(s), field_affine(s)
        src = source_info(f, cases, fields.shape[1] + n_out, forcing_kind(s))
        if use_forcing and src is None:
            raise DataFileError(f"{f.path}: run {info.run_dir.name} reads the forcing, which needs the "
                                "campaign config of the data file")
        forcing = None if not use_forcing else (src[0], src[1])  # type: ignore[index]
        out: dict[str, Any] = {"one_step": None}
        if fields.shape[1] >= n_in + n_out:
            ds = ForecastWindows(fields, velocity, n_in, n_out, s, window_stride, forcing=forcing)
            preds, trues = [], []
            for start in range(0, len(ds), batch_size):
                xs, ys = zip(*(ds[i] for i in range(start, min(start + batch_size, len(ds)))), strict=True)
                p = rollout(model, torch.stack(xs)[:, :n_in], torch.stack(xs)[:, n_in], n_out,
                            extra=torch.stack(xs)[:, n_in + 1 :] if use_forcing else None, update=update,
                            n_out=n_out)
                preds.append(fa.decode(p))
                trues.append(fa.decode(torch.stack(ys)))
            out["one_step"] = summarise(preds, trues, f.n_spatial_dims)
        end = fields.shape[1]
        last = end - n_in - 1
        if not 0 <= rollout_start <= last:
            raise ConfigError(f"--rollout-start: frame {rollout_start} leaves no frame to forecast (the data "
                              f"has {fields.shape[1]} frames, the model reads {n_in}: use 0..{last})")
        s0, n_steps, norm_v = rollout_start, end - n_in - rollout_start, velocity_affine(s).encode(velocity)
        pred = self.predict(model, s, fields, velocity, s0 + n_in, n_steps, forcing=forcing,
                            batch_size=batch_size)
        true = torch.from_numpy(fields[:, s0 + n_in :].astype(np.float64))
        errs = temporal.rollout_errors(pred, true)
        at = temporal.diverged_at(errs)
        out["rollout"] = {"start_frame": s0, "horizon": list(range(1, n_steps + 1)),
                          "time_s": [h * f.frame_dt for h in range(1, n_steps + 1)], **errs,
                          "rel_l2_all_horizons": pooled_rel_l2(pred, true),
                          "diverged": at is not None, "diverged_at": at,
                          **energy_report(pred, true, s0 + n_in, None if src is None else src[2],
                                          energy_threshold)}
        out["diverged"] = at is not None
        with torch.enable_grad():
            ex = None if forcing is None else forcing_channels(forcing, s, end, end + n_out)
            out["stability"] = step_radius(model, fa.encode(fields[:, -n_in:]), norm_v, update, n_out, ex)
        return out


TASK = Forecast()

"""``wavesurrogate slice RUN --blocks b --rank r --out RUN2``: a standalone run of one nested sub-network.

An FNO nests in (modes, rank) instead (``--modes m [--rank r]``; ``nn.elastic``'s own protocol); without
``--rank`` the run's largest trained rank is taken.

The run must have been trained elastic (``elastic`` in its config) and (b, r) must be one of its trained
pairs: a sub-network never trained is refused (one line, exit 2) rather than shipped with an unmeasured
error. The new run directory holds:

- ``model.json``: the sub-model's constructor arguments (``elastic_kwargs(b, r)``), its parameter count and
  ``sliced_from`` (source run, its weights' sha256, blocks, rank);
- ``weights.safetensors``: only the sub-model's tensors (best and last), cut from the source's;
- ``config.yaml``: the source's config with those kwargs, ``out`` and the trained pairs that fit in (b, r);
- ``stats.json`` and ``metrics.jsonl``: the source's (the statistics and the training it came from).

It loads with ``load_run`` like any run, so evaluate, bench, export and the demo's prediction accept it.
Written to a temporary sibling directory, then renamed into place: nothing half-written; an existing run
is replaced only with ``overwrite``, and a directory that is not a run never.
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

from wavesurrogate.config.train import ElasticConfig, ModelConfig
from wavesurrogate.errors import ConfigError
from wavesurrogate.io import atomic_write_bytes, write_json
from wavesurrogate.runs import layout
from wavesurrogate.runs.layout import start_weights
from wavesurrogate.runs.load import load_into, load_run, load_weights
from wavesurrogate.runs.save import save_config, save_weights

__all__ = ["slice_run", "family"]


def _check_out(src: Path, out: Path, overwrite: bool) -> None:
    if out.resolve() == src.resolve():
        raise ConfigError(f"slice --out {out}: is the source run; choose another directory")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"slice --out {out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        if not (out / layout.MODEL_JSON).is_file():
            raise ConfigError(f"slice --out {out}: exists, is not empty and is not a run directory")
        if not overwrite:
            raise ConfigError(f"slice --out {out}: already holds a run; use --overwrite to replace it")


def slice_run(run: str | Path, blocks: int, rank: int | None, out: str | Path, *, overwrite: bool = False,
              axis: str | None = None) -> Path:
    """Write the standalone (``blocks``, ``rank``) sub-network of elastic run ``run`` to ``out``; ``out``.
    ``blocks`` is the first elastic axis of the model (blocks, or modes for an FNO); ``axis`` (the CLI's
    option name) must then be that axis's name; ``rank`` None: the largest trained rank."""
    from wavesurrogate.nn import elastic, registry

    src, out = Path(run), Path(out)
    model, info = load_run(src, "best")
    el = info.config.elastic
    if el is None or not elastic.is_elastic(model):
        raise ConfigError(f"slice: run {src} was not trained elastic (no elastic pairs in its config)")
    names = elastic.axes(model)
    if axis is not None and axis != names[0]:
        raise ConfigError(f"slice: run {src.name} nests in ({names[0]}, {names[1]}), not {axis}; "
                          f"use --{names[0]}")
    trained = [(int(b), int(r)) for b, r in el.pairs]
    if rank is None:
        rank = max(r for _, r in trained)
    if (blocks, rank) not in trained:
        listed = ", ".join(f"({b}, {r})" for b, r in trained)
        raise ConfigError(f"slice: ({names[0]} {blocks}, {names[1]} {rank}) is not a trained pair of "
                          f"{src.name} (trained: {listed})")
    _check_out(src, out, overwrite)
    kwargs = model.elastic_kwargs(blocks, rank)
    sub = registry.build(info.model_name, kwargs)
    cut = {}
    for which in layout.WHICH:
        sd, meta = load_weights(src / layout.WEIGHTS, which)
        cut[which] = elastic.sliced_state(sd, sub.state_dict(), getattr(model, "elastic_centred", None))
        load_into(sub, cut[which], info.model_name, f"slice of {src}")  # the cut fits the sub-model
    old = dict(info.model_kwargs)
    cfg_kwargs = {**info.config.model.kwargs, **{k: v for k, v in kwargs.items() if old.get(k) != v}}
    sub_pairs = [p for p in trained if p[0] <= blocks and p[1] <= rank]
    cfg = info.config.model_copy(update={
        "out": str(out.resolve()), "model": ModelConfig(name=info.model_name, kwargs=cfg_kwargs),
        "elastic": ElasticConfig(pairs=sub_pairs, sampling=el.sampling, distill=el.distill)})
    model_json = layout.read_json(src / layout.MODEL_JSON)
    model_json.update(kwargs=kwargs, n_params=registry.count_trainable(sub),
                      sliced_from={**start_weights(src), names[0]: blocks, names[1]: rank})
    tmp = out.parent / f".{out.name}.slice-tmp"
    old_dir = out.parent / f".{out.name}.slice-old"
    for d in (tmp, old_dir):
        shutil.rmtree(d, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        save_config(tmp, cfg)
        write_json(tmp / layout.MODEL_JSON, model_json)
        for f in (layout.STATS, layout.METRICS):
            if (src / f).is_file():
                atomic_write_bytes(tmp / f, (src / f).read_bytes())
        save_weights(tmp / layout.WEIGHTS, cut["last"], cut["best"], meta)
        if out.exists():
            out.rename(old_dir)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old_dir.exists() and not out.exists():
            old_dir.rename(out)
        raise
    shutil.rmtree(old_dir, ignore_errors=True)
    load_run(out)  # the written run loads (else a CheckpointError names what does not)
    return out


def family(run: str | Path) -> dict[str, object] | None:
    """The elastic family of a run directory: ``{"family": source run path, "blocks", "rank"}`` for a slice
    (from ``model.json``'s ``sliced_from``; ``"modes"`` in place of ``"blocks"`` for an FNO), the run itself
    at its largest trained pair for an elastic run, None for any other run."""
    run = Path(run)
    meta = layout.read_json(run / layout.MODEL_JSON)
    src = meta.get("sliced_from") if isinstance(meta, dict) else None
    first = "blocks"
    if isinstance(meta, dict) and isinstance(meta.get("name"), str):
        from wavesurrogate.nn import registry

        with contextlib.suppress(ConfigError):
            first = getattr(registry.entry(meta["name"]).cls, "elastic_axes", ("blocks",))[0]
    if isinstance(src, dict):
        return {"family": str(src.get("run")), first: src.get(first), "rank": src.get("rank")}
    el = layout.read_run_config(run).elastic
    if el is None:
        return None
    b, r = max((int(b), int(r)) for b, r in el.pairs)
    return {"family": str(run.resolve()), first: b, "rank": r}

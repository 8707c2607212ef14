"""Run directories as their own layer: ``layout`` (file names, readers), ``save``, ``load``.

Used alike by training, evaluation, applications and benchmarks; the names below are the public API.
"""

from wavesurrogate.runs.layout import (
    CONFIG,
    METRICS,
    MODEL_JSON,
    OPTIM,
    RUN_FILES,
    STATS,
    WEIGHTS,
    holds_config,
    read_json,
    read_metrics,
    read_run_config,
)
from wavesurrogate.runs.load import RunInfo, load_into, load_run, load_state, load_weights
from wavesurrogate.runs.save import save_checkpoint, save_header, save_state, save_weights, write_metrics

__all__ = ["CONFIG", "METRICS", "MODEL_JSON", "OPTIM", "RUN_FILES", "STATS", "WEIGHTS", "holds_config",
           "read_json", "read_metrics", "read_run_config", "RunInfo", "load_into", "load_run", "load_state",
           "load_weights", "save_checkpoint", "save_header", "save_state", "save_weights", "write_metrics"]

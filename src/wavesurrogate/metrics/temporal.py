"""TEMPORARY shim."""
from wavesurrogate.eval.metrics import DIVERGENCE_THRESHOLD, diverged_at, rollout_errors  # noqa: F401

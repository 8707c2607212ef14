"""TEMPORARY shim."""
from wavesurrogate.eval.metrics import BAND_EDGES, BANDS  # noqa: F401

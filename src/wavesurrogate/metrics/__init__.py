"""Error metrics, split by kind (as the_well does) and dimension-generic: spatial, spectral, temporal, suite;
receiver signals (per source×receiver pair), room acoustics (energy decay, reverberation times) and the POD
floor of a training set.

All computed in float64 on ``[N, ...]`` tensors (a sample is one index of the first axis).
"""

from wavesurrogate.metrics.pod import pod_floor, pod_floor_curve, pod_modes
from wavesurrogate.metrics.room import schroeder_edc, t20, t30, t60, t60_direct
from wavesurrogate.metrics.signals import mean_relative_error_above, peak_normalised_rmse, relative_rmse
from wavesurrogate.metrics.spatial import max_error, pooled_rel_l2, rel_l2, rmse, squared_norms
from wavesurrogate.metrics.spectral import BAND_EDGES, BANDS, frmse, radial_wavenumber
from wavesurrogate.metrics.suite import METRICS, TEMPORAL, Metric, summarise
from wavesurrogate.metrics.temporal import DIVERGENCE_THRESHOLD, diverged_at, rollout_errors

__all__ = ["BAND_EDGES", "BANDS", "DIVERGENCE_THRESHOLD", "METRICS", "TEMPORAL", "Metric", "rel_l2",
           "pooled_rel_l2", "rmse", "max_error", "squared_norms", "radial_wavenumber", "frmse",
           "rollout_errors", "diverged_at", "summarise", "pod_modes", "pod_floor", "pod_floor_curve",
           "peak_normalised_rmse", "relative_rmse", "mean_relative_error_above", "schroeder_edc", "t20",
           "t30", "t60", "t60_direct"]

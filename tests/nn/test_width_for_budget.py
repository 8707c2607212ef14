"""nn.budget.width_for_budget: the width whose parameter count is nearest a target (log ratio)."""

from __future__ import annotations

import math

from wavesurrogate.nn import registry
from wavesurrogate.nn.budget import width_for_budget
from wavesurrogate.nn.registry import count_trainable


def test_width_for_budget_is_the_brute_force_nearest():
    def kwargs_of(w: int) -> dict:
        return {"n_in": 2, "n_out": 1, "depth": 2, "width": w}

    counts = {w: count_trainable(registry.build("cnn2d", kwargs_of(w))) for w in range(1, 41)}
    for target in (500, 5_000, 20_000):
        want = min(counts, key=lambda w: abs(math.log(counts[w] / target)))
        assert width_for_budget("cnn2d", kwargs_of, target) == kwargs_of(want), target

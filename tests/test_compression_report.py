"""benchmarks/compression.py's goal checks and its docs/results.md section, on hand-made records."""

from __future__ import annotations

from benchmarks import compression, results_md

KEYS = compression.RATIO_KEYS


def _record(label: str, kind: str, **ratios: float) -> dict:
    q = {k: 1.0 for k in KEYS}
    q.update(ratios)
    values = {k: 100.0 * v for k, v in q.items()}
    return {"label": label, "kind": kind, "lr": 1e-3, **values, "params": int(values["params"]),
            "ratio_to_dense": q}


def test_goals_follow_the_measured_ratios() -> None:
    results = {
        "dense": _record("dense", "dense"),
        "cp_p100": _record("cp_p100", "a priori", params=0.1, test_rel_l2=1.09, rollout40_rel_l2_late=1.3,
                           weight_bytes=0.1, tensor_peak_train_bytes=0.99, tensor_peak_infer_bytes=0.7,
                           ms_b1=0.9, ms_per_sample_b32=1.01),
        "post_cp_p100": _record("post_cp_p100", "a posteriori", params=0.1, test_rel_l2=1.11,
                                rollout40_rel_l2_late=1.2, weight_bytes=0.1, tensor_peak_train_bytes=1.0,
                                tensor_peak_infer_bytes=0.7),
    }
    g = compression.goals(results, {"1/10": 100}, {})
    pri = g["a priori cp layer_params 100 (0.100 of the parameters)"]
    post = g["a posteriori cp layer_params 100 (0.100 of the parameters)"]
    assert pri["accuracy_met (<= 1.10)"] is True and post["accuracy_met (<= 1.10)"] is False
    assert pri["rollout_met (<= 1.2)"] is False and post["rollout_met (<= 1.2)"] is True
    # "lower" is strict: a training peak equal to the dense one is not lower
    assert pri["memory_lower (weights, tensor peak train, tensor peak inference)"] is True
    assert post["memory_lower (weights, tensor peak train, tensor peak inference)"] is False
    assert pri["inference_not_slower (batch 1, batch 32)"] == [True, False]


def test_results_section_shows_every_model_and_goal() -> None:
    results = {"dense": _record("dense", "dense"),
               "cp_p100": _record("cp_p100", "a priori", params=0.1, test_rel_l2=1.5)}
    res = {"settings": {"epochs": 8, "architecture": {"width": 16}}, "machine": {"cores": 2},
           "results": list(results.values()), "goals": compression.goals(results, {"1/10": 100}, {})}
    text = "\n".join(results_md.compression_section(res))
    assert "| cp_p100 | a priori |" in text and "| dense | dense |" in text
    assert "(1.50×)" in text and "1.5 **no**" in text

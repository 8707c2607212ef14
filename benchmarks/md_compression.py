"""The compression.json section of docs/results.md (benchmarks/compression.py, issue 3)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.md_format import COMMAND, pct
from wavesurrogate.eval.table import markdown as table
from wavesurrogate.eval.table import num


def _mib(b: Any) -> str:
    return "n/a" if not isinstance(b, int | float) else f"{b / 2**20:.2f}"


def _ratio(r: dict[str, Any], key: str) -> str:
    q = (r.get("ratio_to_dense") or {}).get(key)
    return "" if r.get("kind") == "dense" or q is None else f" ({q:.2f}×)"


def compression_section(res: dict[str, Any]) -> list[str]:
    """Dense against a priori / a posteriori compressed CNNs, from compression.json."""
    st = res.get("settings", {})
    arch = st.get("architecture", {})
    mach = res.get("machine", {})
    lines = ["## A priori compressed CNNs against the dense CNN (benchmarks/compression.py)", "",
             f"Data `{Path(res.get('data', '?')).name}`: first {st.get('max_cases')} cases of the file for "
             f"training and validation (window stride {st.get('window_stride')}), all its test cases for the "
             f"errors. cnn2d width {arch.get('width')}, depth {arch.get('depth')}, kernel "
             f"{arch.get('kernel_size')}, n_in {arch.get('n_in')}; every model {st.get('epochs')} epochs, "
             f"batch {st.get('batch')}, Adam with cosine decay; learning rate per model from "
             f"{st.get('learning_rates')}, the one with the lowest validation loss. Ratios in brackets are "
             "compressed / dense, measured in the same run. `cp_pN`: every conv layer's CP rank is the "
             "largest whose factors fit N numbers (`layer_params`); `cp_rN`: one rank N for all layers; "
             "`post_`: the trained dense network compressed by `from_dense` then fine-tuned for the same "
             "epochs.", "",
             f"Machine: {mach.get('cores')} cores, torch {mach.get('torch')}, load "
             f"{num(mach.get('load_1min'))}.", ""]
    rows = []
    for r in res.get("results", []):
        rows.append([r["label"], r.get("kind", ""), num(r.get("lr"), "g"),
                     f"{r['params']:,}{_ratio(r, 'params')}",
                     pct(r.get("test_rel_l2")) + _ratio(r, "test_rel_l2"),
                     pct(r.get("rollout40_rel_l2_late")) + _ratio(r, "rollout40_rel_l2_late"),
                     _mib(r.get("tensor_peak_train_bytes")) + _ratio(r, "tensor_peak_train_bytes"),
                     _mib(r.get("tensor_peak_infer_bytes")) + _ratio(r, "tensor_peak_infer_bytes"),
                     _mib(r.get("peak_train_bytes")) + _ratio(r, "peak_train_bytes"),
                     num(r.get("ms_b1")) + _ratio(r, "ms_b1"),
                     num(r.get("ms_per_sample_b32")) + _ratio(r, "ms_per_sample_b32")])
    lines += table(["model", "kind", "lr", "parameters", "one-step test rel. L2 %", "40-frame rollout %",
                    "train peak MiB (tensors)", "inference peak MiB (tensors)", "train peak MiB (RSS)",
                    "ms batch 1", "ms/sample batch 32"], rows) + [""]
    lrs = [f"{x:g}" for x in st.get("learning_rates", [])]
    if lrs:
        lines += ["Learning-rate search: best validation loss (MSE on normalised frames) per rate; the "
                  "chosen rate in bold, a dash where the model was not trained at that rate.", ""]
        vrows = []
        for r in res.get("results", []):
            by = r.get("val_loss_by_lr") or {}
            cells = []
            for lr in lrs:
                v = by.get(lr)
                cell = "–" if v is None else num(v, ".3g")
                cells.append(f"**{cell}**" if v is not None and lr == f"{r.get('lr'):g}" else cell)
            vrows.append([r["label"], *cells])
        lines += table(["model", *lrs], vrows) + [""]
    lines += ["Rollout: 40 frames autoregressively from the latest start that leaves 40 frames (after the "
              "sources have fired), relative L2 over the 40 frames. Tensor peaks: live tensor bytes "
              "(weights, gradients, Adam state, activations) from the profiler's allocation records; RSS: "
              "process resident-set growth, which also counts library code pages touched for the first "
              "time. Latency: median of timed calls at torch's default threads.", ""]
    goals = res.get("goals") or {}
    if goals:
        lines += ["Goals of issue 3, per compressed model (measured ratio, then whether it holds):", ""]
        grows = []
        for name, g in goals.items():
            def yes(v: Any) -> str:
                return "n/a" if v is None else ("yes" if v else "**no**")
            inf = g.get("inference_not_slower (batch 1, batch 32)") or [None, None]
            grows.append([name, f"{num(g.get('test_rel_l2_ratio'))} {yes(g.get('accuracy_met (<= 1.10)'))}",
                          f"{num(g.get('rollout_ratio'))} {yes(g.get('rollout_met (<= 1.2)'))}",
                          yes(g.get("memory_lower (weights, tensor peak train, tensor peak inference)")),
                          f"{yes(inf[0])}, {yes(inf[1])}"])
        lines += table(["model", "error ratio ≤ 1.10", "rollout ratio ≤ 1.2",
                        "memory lower (weights, train, inference)", "not slower (batch 1, 32)"], grows) + [""]
    lines += ["Reproduce: `.venv/bin/python -m benchmarks.compression --out benchmarks/out/compression.json` "
              "(defaults: 8 epochs, 120 cases, the rate grid above; simulates configs/forecast64.yaml once; "
              f"finished runs are reused), then `{COMMAND}`.", ""]
    return lines

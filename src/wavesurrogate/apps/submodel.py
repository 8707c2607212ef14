"""``wavesurrogate submodel RUN --case N``: network trace → FE on the ZOI only → field, errors, timings, plot.

For one case of a campaign file with ZOI boundary traces (``record.boundary_trace_stride``), the trained
network predicts the ZOI boundary trace from the case's parameters, ``solve_zoi`` runs the FE solver on
the ZOI mesh with that trace as time-dependent Dirichlet data, and the result is compared with the
full-domain FE solve stored in the file. The same submodel
driven by the exact (stored) trace gives the error floor: what a perfect network would reach with traces
sampled as the network's are.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from wavesurrogate import tasks
from wavesurrogate.data.schema import SPLITS
from wavesurrogate.data.store import DataFile, open_data
from wavesurrogate.errors import CheckpointError, DataFileError, UserError
from wavesurrogate.io import atomic_path, write_json
from wavesurrogate.nn.registry import TRACE
from wavesurrogate.outputs import check_output_dir
from wavesurrogate.physics.zoi import Zoi, solve_zoi
from wavesurrogate.runs import RunInfo, load_run
from wavesurrogate.runs.layout import run_files
from wavesurrogate.tasks.boundary_trace import GROUP


def load_trace_run(run: str | Path, which: str = "best") -> tuple[nn.Module, RunInfo]:
    """A trained boundary-trace run (``runs.load_run``); CheckpointError if it is a run of another task."""
    model, info = load_run(run, which)
    if tasks.get(info.task).interfaces != (TRACE,):
        raise CheckpointError(f"{run}: model {info.model_name!r} is not a boundary-trace model")
    return model, info


def rel_l2(a: np.ndarray, b: np.ndarray) -> float:
    """‖a − b‖ / ‖b‖ over all entries."""
    return float(np.linalg.norm(np.asarray(a, np.float64) - b) / max(np.linalg.norm(b), 1e-300))


def zoi_of(f: DataFile) -> Zoi:
    """The file's ZOI (record.zoi); DataFileError if the file has no boundary traces."""
    zoi = f.config.zoi_obj()
    if zoi is None or GROUP not in f.trace_names:
        raise DataFileError(f"{f.path}: no ZOI boundary traces (set record.boundary_trace_stride)")
    return zoi


def zoi_field(f: DataFile, case: int, zoi: Zoi) -> np.ndarray:
    """The stored full solve inside the ZOI, float32 [n_frames, zoi.ny, zoi.nx] (checksum verified)."""
    u = f.fields(case)
    return u if "window_ij0" in f.attrs else np.ascontiguousarray(u[(slice(None), *zoi.slices)])


def predict_trace(model: nn.Module, stats: dict[str, Any], params: dict[str, float]) -> np.ndarray:
    """The network's trace for one case, float64 [n_times, n_boundary] (the zoi module's layout)."""
    p = torch.tensor([[params[n] for n in stats["param_names"]]], dtype=torch.float64)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one small sample: extra threads only add synchronisation (measured 10–50×)
    try:
        with torch.no_grad():
            out = model(p)
    finally:
        torch.set_num_threads(threads)
    return out[0].double().numpy().T.copy()


def evaluate_case(model: nn.Module, stats: dict[str, Any], f: DataFile, case: int, *,
                  floor: bool = True) -> dict[str, Any]:
    """Network + submodel and exact-trace submodel for one case: arrays, errors and wall times (s)."""
    problem, zoi = f.problem(case), zoi_of(f)
    truth, trace_exact = zoi_field(f, case, zoi), f.traces(GROUP, [case])[0]
    t_s, element = f.trace_t(GROUP), f.config.solver.element
    params = {k: float(v[case]) for k, v in f.params.items()}
    predict_trace(model, stats, params)  # warm-up: the first call of a torch model pays one-off costs
    t0 = time.perf_counter()
    trace_net = predict_trace(model, stats, params)
    t1 = time.perf_counter()
    sub_net = solve_zoi(problem, zoi, trace_net, t_s, element=element)
    t2 = time.perf_counter()
    out: dict[str, Any] = {
        "case": int(case), "split": SPLITS[int(f.split[case])], "params": params,
        "zoi_rel_l2": rel_l2(sub_net, truth), "trace_rel_l2": rel_l2(trace_net, trace_exact),
        "network_s": t1 - t0, "zoi_solve_s": t2 - t1, "network_plus_submodel_s": t2 - t0,
        "campaign_full_solve_s": f.solve_s(case),
        "arrays": {"truth": truth, "submodel": sub_net.astype(np.float32), "trace_net": trace_net,
                   "trace_exact": trace_exact},
    }
    if floor:
        sub_exact = solve_zoi(problem, zoi, trace_exact, t_s, element=element)
        out["floor_rel_l2"] = rel_l2(sub_exact, truth)
        out["arrays"]["submodel_exact_trace"] = sub_exact.astype(np.float32)
    out["frame_rel_l2"] = [rel_l2(a, b) if np.linalg.norm(b) > 0 else 0.0
                           for a, b in zip(sub_net, truth, strict=True)]
    return out


def run_submodel(run: str | Path, case: int, data: str | Path | None = None, out: str | Path | None = None,
                 overwrite: bool = False) -> str:
    """Run the ZOI submodel of one case end to end; writes zoi_field.npz, submodel.json, submodel.png
    (existing ones replaced only with ``overwrite``)."""
    model, info = load_trace_run(run)
    stats = info.stats
    path = Path(data) if data is not None else Path(info.config.data.path)
    out_dir = Path(out) if out is not None else Path(run) / "submodel" / f"case_{int(case):04d}"
    check_output_dir(out_dir, ["zoi_field.npz", "submodel.json", "submodel.png"], [path, *run_files(run)],
                     overwrite=overwrite)
    with open_data(path) as f:
        tasks.get(info.task).check_fits(f, info)
        if not 0 <= int(case) < f.n_cases:
            raise UserError(f"--case: {case} out of range; {path} has cases 0..{f.n_cases - 1}")
        res = evaluate_case(model, stats, f, int(case))
        frame_t, trace_t, zoi = f.t, f.trace_t(GROUP), zoi_of(f)
        x, y = (f.x, f.y) if "window_ij0" in f.attrs else (f.x[zoi.slices[1]], f.y[zoi.slices[0]])
    out_dir.mkdir(parents=True, exist_ok=True)
    arrays = res.pop("arrays")
    with atomic_path(out_dir / "zoi_field.npz") as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, frame_t_s=frame_t, trace_t_s=trace_t, zoi_x_m=x, zoi_y_m=y, **arrays)
    summary = {"run": str(Path(run).resolve()), "data": str(path.resolve()),
               "zoi": [zoi.i0, zoi.j0, zoi.nx, zoi.ny], **res}
    write_json(out_dir / "submodel.json", summary)
    plot_case(out_dir / "submodel.png", arrays, frame_t, res)
    return (f"case {case} ({res['split']}): ZOI rel L2 {res['zoi_rel_l2']:.3g} network + submodel, "
            f"{res['floor_rel_l2']:.3g} exact trace; network {1e3 * res['network_s']:.1f} ms + ZOI solve "
            f"{res['zoi_solve_s']:.2f} s; wrote {out_dir}")


def plot_case(path: Path, arrays: dict[str, np.ndarray], frame_t: np.ndarray, res: dict[str, Any]) -> Path:
    """PNG: true / submodel / error at four times, and the exact / predicted / error trace maps."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    truth, sub = arrays["truth"], arrays["submodel"]
    energy = (truth.astype(np.float64) ** 2).sum(axis=(1, 2))
    active = np.flatnonzero(energy > 1e-3 * energy.max())
    frames = np.unique(np.linspace(active[0], active[-1], 4).round().astype(int)) if active.size else [0]
    n_col = max(len(frames), 3)
    fig = Figure(figsize=(3.0 * n_col, 12.0), layout="constrained")
    FigureCanvasAgg(fig)
    top, bottom = fig.subfigures(2, 1, height_ratios=[3.0, 1.1])
    vmax = float(np.abs(truth).max()) or 1.0
    err = sub - truth
    emax = float(np.abs(err).max()) or 1.0
    axes = top.subplots(3, len(frames), squeeze=False)
    for k, n in enumerate(frames):
        for row, (img, title, lim, cmap) in enumerate((
                (truth[n], "full FE", vmax, "RdBu_r"), (sub[n], "network + submodel", vmax, "RdBu_r"),
                (err[n], "error", emax, "PuOr_r"))):
            ax = axes[row, k]
            ax.imshow(img, origin="lower", cmap=cmap, vmin=-lim, vmax=lim)
            ax.set_title(f"{title}, t = {frame_t[n]:.3f} s", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
    te, tn = arrays["trace_exact"], arrays["trace_net"]
    tmax = float(np.abs(te).max()) or 1.0
    for ax, k, (img, title, lim) in zip(bottom.subplots(1, 3), range(3), (
            (te, "exact trace", tmax), (tn, "network trace", tmax),
            (tn - te, "trace error", float(np.abs(tn - te).max()) or 1.0)), strict=True):
        ax.imshow(np.asarray(img).T, origin="lower", aspect="auto", cmap="RdBu_r" if k < 2 else "PuOr_r",
                  vmin=-lim, vmax=lim)
        ax.set_title(title, fontsize=8)
        ax.set_xlabel("trace sample", fontsize=7)
        ax.set_ylabel("boundary node", fontsize=7)
    fig.suptitle(f"case {res['case']} ({res['split']}): ZOI rel L2 {res['zoi_rel_l2']:.3g}, exact-trace "
                 f"floor {res.get('floor_rel_l2', float('nan')):.2g}", fontsize=10)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    return path

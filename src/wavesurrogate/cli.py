"""Thin command line: parses arguments and calls the library. Errors: one line on stderr, exit code 2."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from wavesurrogate.errors import UserError


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def _existing_file(p: str) -> Path:
    path = Path(p)
    if not os.path.isfile(path):  # unlike Path.is_file, False (not OSError) for a name that is too long
        if os.path.exists(path):  # a directory, FIFO, socket or device: never opened (it could block)
            from wavesurrogate.safeload import file_kind

            raise argparse.ArgumentTypeError(f"{p}: {file_kind(os.stat(path).st_mode)}, not a regular file")
        raise argparse.ArgumentTypeError(f"file not found: {p}")
    return path


def _existing_dir(p: str) -> Path:
    path = Path(p)
    if not os.path.isdir(path):
        raise argparse.ArgumentTypeError(f"run directory not found: {p}")
    return path


def _nonneg_int(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {s!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0: {v}")
    return v


def _port(s: str) -> int:
    v = _nonneg_int(s)
    if not 0 <= v <= 65535:
        raise argparse.ArgumentTypeError(f"not a port (0-65535): {v}")
    return v


def _positive_int(s: str) -> int:
    v = _nonneg_int(s)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1: {v}")
    return v


def _pos_float(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {s!r}") from None
    if not 0 < v < 1e6:
        raise argparse.ArgumentTypeError(f"must be > 0 and < 1e6: {s}")
    return v


def _progress_flags(s: argparse.ArgumentParser) -> None:
    g = s.add_mutually_exclusive_group()
    g.add_argument("--progress", action="store_true", default=None,
                   help="draw progress bars on stderr (default: only when stderr is a terminal)")
    g.add_argument("--no-progress", action="store_false", dest="progress", help="never draw progress bars")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``wavesurrogate`` command."""
    from wavesurrogate import __version__

    p = _Parser(prog="wavesurrogate", description="Neural surrogates of wave simulators, measured.")
    p.add_argument("--version", action="version", version=f"wavesurrogate {__version__}")
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=_Parser)

    s = sub.add_parser("simulate", help="run a simulation campaign into an HDF5 file")
    s.add_argument("config", type=_existing_file)
    s.add_argument("--out", required=True, type=Path)
    s.add_argument("--scheduler", default=None, help="Dask scheduler address (default: local processes)")
    s.add_argument("--workers", type=_nonneg_int, default=None, help="local processes (default: cores)")
    s.add_argument("--overwrite", action="store_true", help="replace an existing complete output file")
    s.add_argument("--scheduler-timeout", type=_pos_float, default=20.0, metavar="SECONDS",
                   help="give up on a Dask scheduler that does not answer within this time (default 20)")
    _progress_flags(s)

    s = sub.add_parser("info", help="summarise a data file")
    s.add_argument("file", type=_existing_file)

    s = sub.add_parser("show", help="PNG of frames and an animated GIF of one case")
    s.add_argument("file", type=_existing_file)
    s.add_argument("--case", type=_nonneg_int, default=0)
    s.add_argument("--out", required=True, type=Path)
    s.add_argument("--overwrite", action="store_true", help="replace existing figures of this case")

    s = sub.add_parser("train", help="train a surrogate from a config")
    s.add_argument("config", type=_existing_file, nargs="?")
    s.add_argument("--resume", type=_existing_dir, default=None, help="continue this run directory")
    s.add_argument("--out", type=Path, default=None, help="run directory (default from the config)")
    s.add_argument("--overwrite", action="store_true")
    s.add_argument("--init-from", type=_existing_dir, default=None,
                   help="start from this run's best weights (fine-tuning; same model)")
    _progress_flags(s)

    s = sub.add_parser("evaluate", help="errors of a trained run on a data file (JSON)")
    s.add_argument("run", type=_existing_dir)
    s.add_argument("--data", required=True, type=_existing_file)
    s.add_argument("--out", type=Path, default=None)
    s.add_argument("--rollout-start", type=_nonneg_int, default=0,
                   help="first input frame of the rollout (forecast runs; default 0)")
    s.add_argument("--overwrite", action="store_true", help="replace an existing --out file")

    s = sub.add_parser("bench", help="one table comparing runs, with the speed-up against the solver")
    s.add_argument("runs", type=_existing_dir, nargs="+")
    s.add_argument("--data", type=_existing_file, default=None, help="test data (default: each run's)")
    s.add_argument("--out", required=True, type=Path)
    s.add_argument("--overwrite", action="store_true", help="replace an existing bench.json / bench.md")

    s = sub.add_parser("slice", help="a standalone run of one trained sub-network of an elastic run")
    s.add_argument("run", type=_existing_dir)
    g = s.add_mutually_exclusive_group(required=True)
    g.add_argument("--blocks", type=_positive_int, help="first b blocks (CNNs, decoders)")
    g.add_argument("--modes", type=_positive_int, help="lowest m Fourier modes per axis (FNO, TFNO)")
    s.add_argument("--rank", type=_positive_int, default=None,
                   help="first r CP terms of each layer (default: the largest trained rank)")
    s.add_argument("--out", required=True, type=Path)
    s.add_argument("--overwrite", action="store_true", help="replace an existing run directory")

    s = sub.add_parser("submodel", help="zone-of-interest FE submodel driven by a trained boundary network")
    s.add_argument("run", type=_existing_dir)
    s.add_argument("--case", type=_nonneg_int, default=0)
    s.add_argument("--data", type=_existing_file, default=None)
    s.add_argument("--out", type=Path, default=None)
    s.add_argument("--overwrite", action="store_true", help="replace this case's existing outputs")

    s = sub.add_parser("auralize", help="a dry WAV heard at a receiver of a 3-D room through a trained run")
    s.add_argument("run", type=_existing_dir)
    where = s.add_mutually_exclusive_group(required=True)
    where.add_argument("--source", type=float, nargs=3, metavar=("X", "Y", "Z"), help="source position (m)")
    where.add_argument("--path", type=Path, help="moving source: CSV t_s,x_m,y_m,z_m (Doppler ignored)")
    s.add_argument("--receiver", type=float, nargs=3, metavar=("X", "Y", "Z"), required=True)
    s.add_argument("--dry", type=_existing_file, required=True, help="dry signal (WAV)")
    s.add_argument("--out", type=Path, required=True, help="output WAV (48 kHz)")

    s = sub.add_parser("normsearch", help="evolve norm–activation graphs for forecast networks (resumable)")
    s.add_argument("config", type=_existing_file)
    s.add_argument("--out", type=Path, default=None, help="summary JSON (default <work>/summary.json)")

    s = sub.add_parser("export", help="a run as one ONNX graph in physical units, with a sidecar JSON")
    s.add_argument("run", type=_existing_dir)
    s.add_argument("--out", required=True, type=Path, help="the graph, *.onnx (sidecar: <out>.json)")
    s.add_argument("--int8", action="store_true", help="static int8 (QDQ, per channel) instead of fp32")
    s.add_argument("--calibration", type=_existing_file, default=None,
                   help="data file whose training windows calibrate --int8 (default: the run's)")
    s.add_argument("--overwrite", action="store_true", help="replace an existing graph and sidecar")

    s = sub.add_parser("serve", help="a local page: click to place a source, surrogate beside the solver")
    s.add_argument("run", type=_existing_dir)
    s.add_argument("--data", type=_existing_file, default=None, help="data file (default: the run's)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=_port, default=8765)

    s = sub.add_parser("learn", help="multi-fidelity active learning: which solves to run")
    s.add_argument("config", type=_existing_file)
    s.add_argument("--out", required=True, type=Path, help="run directory (resumed if it holds this config)")
    s.add_argument("--scheduler", default=None, help="Dask scheduler address (default: local processes)")

    s = sub.add_parser("demo", help="the main job on local files: campaign, training, evaluation, report")
    s.add_argument("--out", type=Path, default=Path("runs/demo"))
    s.add_argument("--quick", action="store_true", help="a smaller, faster demo (used by tests)")
    return p


def _dispatch(a: argparse.Namespace) -> None:
    if a.cmd == "simulate":
        from wavesurrogate.data.campaign import run_campaign

        print(run_campaign(a.config, a.out, scheduler=a.scheduler, workers=a.workers, overwrite=a.overwrite,
                           progress=a.progress, scheduler_timeout_s=a.scheduler_timeout))
    elif a.cmd == "info":
        from wavesurrogate.data.store import describe

        print(describe(a.file))
    elif a.cmd == "show":
        from wavesurrogate.eval.show import show_case

        for path in show_case(a.file, a.case, a.out, overwrite=a.overwrite):
            print(path)
    elif a.cmd == "train":
        from wavesurrogate.train.loop import train_from_config

        run = train_from_config(a.config, resume=a.resume, out=a.out, overwrite=a.overwrite,
                                init_from=a.init_from, progress=a.progress)
        print(run)
    elif a.cmd == "evaluate":
        from wavesurrogate.eval.evaluate import evaluate_run

        print(evaluate_run(a.run, a.data, out=a.out, rollout_start=a.rollout_start, overwrite=a.overwrite))
    elif a.cmd == "bench":
        from wavesurrogate.eval.bench import bench_runs

        print(bench_runs(a.runs, a.out, data=a.data, overwrite=a.overwrite))
    elif a.cmd == "slice":
        from wavesurrogate.runs.slice import slice_run

        axis = "blocks" if a.blocks is not None else "modes"
        print(slice_run(a.run, getattr(a, axis), a.rank, a.out, overwrite=a.overwrite, axis=axis))
    elif a.cmd == "submodel":
        from wavesurrogate.apps.submodel import run_submodel

        print(run_submodel(a.run, a.case, data=a.data, out=a.out, overwrite=a.overwrite))
    elif a.cmd == "auralize":
        from wavesurrogate.apps.auralize import auralize

        print(auralize(a.run, a.receiver, a.dry, a.out, source=a.source, path=a.path))
    elif a.cmd == "normsearch":
        from wavesurrogate.apps.normsearch import run_search_from_config

        print(run_search_from_config(a.config, out=a.out))
    elif a.cmd == "export":
        from wavesurrogate.runs.export import export_run

        print(export_run(a.run, a.out, int8=a.int8, calibration=a.calibration, overwrite=a.overwrite))
    elif a.cmd == "serve":
        from wavesurrogate.apps.serve import serve

        serve(a.run, data=a.data, host=a.host, port=a.port)
    elif a.cmd == "learn":
        from wavesurrogate.apps.learn import run_learn

        print(run_learn(a.config, a.out, scheduler=a.scheduler))
    elif a.cmd == "demo":
        from wavesurrogate.apps.demo import run_demo

        print(run_demo(a.out, quick=a.quick))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``wavesurrogate`` command; returns the exit code."""
    args = build_parser().parse_args(argv)
    from wavesurrogate.procs import Terminated, signals_raise

    try:
        with signals_raise():  # SIGTERM/SIGHUP unwind like Ctrl-C: cleanups run, workers stop
            _dispatch(args)
    except Terminated as exc:
        print(f"wavesurrogate {args.cmd}: terminated by signal {exc.signum}", file=sys.stderr)
        return 128 + exc.signum
    except UserError as exc:
        print(f"wavesurrogate {args.cmd}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:  # the environment (disk full, permission denied, name too long): one line too
        print(f"wavesurrogate {args.cmd}: error: {exc}".replace("\n", " "), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"wavesurrogate {args.cmd}: interrupted", file=sys.stderr)
        return 130
    return 0


def run() -> None:
    """The console script: ``main()``, then exit. After a worker pool was stopped (a signal, an error) its
    manager thread may be blocked for good on half a result a killed worker left in the pipe, and the
    interpreter's exit would join it forever; every cleanup of ours has run by then, so such a process ends
    with ``os._exit`` once its one line is flushed."""
    code = main()
    from wavesurrogate import procs

    if procs.pool_stopped():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    run()

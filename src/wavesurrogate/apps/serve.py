"""``wavesurrogate serve RUN``: a local page where a click places the source and the surrogate answers beside
the solver (docs/deploy.md).

Source → field runs: a click in the domain places the source; the surrogate's field (every node of every
stored frame, through the run's model as ``SourceToField.evaluate`` computes it) comes back with its latency,
then the campaign's own FD solve of the same source (``data.cases.solve_case`` on the data file's campaign
config: the first test case's medium and parameters with the source moved) with its wall time and the
relative L2 error between the two. Forecast runs: pick a test case; the rollout from its first n_in frames
(``Forecast.predict``, through the run's forcing input and update) plays against the stored truth, with its
latency and the error per frame.

The standard library's ``http.server``, one request at a time (the solver is compiled once per thread), on
127.0.0.1 unless told. Only the embedded page and the JSON API are served (no file is read on request).
Malformed requests get 4xx and the server goes on: an unknown path 404, a wrong method 405, a body over
``MAX_BODY`` bytes 413, no length 411, bad JSON 400, a non-finite or out-of-domain coordinate or an unknown
case 422. A port already in use is one line (``ServeError``), exit 2.
"""

from __future__ import annotations

import base64
import errno
import math
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wavesurrogate.errors import UserError
from wavesurrogate.safeload import parse_json

__all__ = ["ServeError", "App", "make_server", "serve", "MAX_BODY"]

MAX_BODY = 1024  # bytes of a request body: {"x_m": ..., "y_m": ...} or {"case": ...} needs far fewer


class ServeError(UserError):
    """The server cannot start (port in use, no permission) or cannot answer for this run."""


class BadRequest(Exception):
    """A request the server refuses: its HTTP status and a one-line reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


def b64(a: np.ndarray) -> str:
    """float32 little-endian bytes of ``a`` in base64 (the page decodes them into a Float32Array)."""
    return base64.b64encode(np.ascontiguousarray(a, dtype="<f4").tobytes()).decode("ascii")


def rel_l2(pred: np.ndarray, true: np.ndarray) -> float:
    """‖pred − true‖ / ‖true‖ over all values (float64)."""
    p, t = np.asarray(pred, np.float64), np.asarray(true, np.float64)
    n = float(np.linalg.norm(t))
    return float(np.linalg.norm(p - t) / n) if n > 0 else math.nan


@dataclass
class App:
    """What the server answers with: the run's model and statistics, its task, the data file's grid."""

    model: torch.nn.Module
    info: Any
    data: Path
    x: np.ndarray
    y: np.ndarray
    t: np.ndarray
    test_cases: list[int]
    source_range: dict[str, list[float]]
    mode: str  # "click" (a points model: place a source) or "rollout" (a frames model with Task.predict)

    @classmethod
    def load(cls, run: str | Path, data: str | Path | None = None) -> App:
        """The run (``runs.load_run``) and its data file (default: the one it was trained on)."""
        from wavesurrogate.data.store import open_data
        from wavesurrogate.nn import registry
        from wavesurrogate.runs import load_run
        from wavesurrogate.tasks import get

        model, info = load_run(run)
        interface, task = registry.entry(info.model_name).interface, get(info.task)
        rolls = interface == registry.FRAMES and callable(getattr(task, "predict", None))
        mode = "click" if interface == registry.POINTS else "rollout" if rolls else None
        if mode is None:
            raise ServeError(f"{run}: task {info.task!r}; serve shows source → field and forecast runs")
        path = Path(data if data is not None else info.config.data.path)
        with open_data(path) as f:
            task.check_fits(f, info)
            test = [int(c) for c in f.cases("test") if f.done[c]] or [int(c) for c in np.flatnonzero(f.done)]
            params = f.params
            rng = {k: [float(np.min(params[k])), float(np.max(params[k]))]
                   for k in ("source_x_m", "source_y_m") if k in params}
            app = cls(model, info, path, np.asarray(f.x), np.asarray(f.y), np.asarray(f.t), test, rng, mode)
            if mode == "click":
                if f.config.solver.kind != "fd" or f.n_spatial_dims != 2:
                    raise ServeError(f"{path}: serve solves 2-D FD campaigns on request")
                missing = [n for n in info.stats["param_names"] if n not in params]
                if missing or not {"source_x_m", "source_y_m"} <= set(info.stats["param_names"]):
                    raise ServeError(f"{run}: serve places the source; the run must read source_x_m and "
                                     f"source_y_m (it reads {info.stats['param_names']})")
        return app

    # ------------------------------------------------------------------------------------------ answers
    def describe(self) -> dict[str, Any]:
        """What the page needs first: task, grid extent (m), frame times, test cases, the training sources."""
        return {"task": self.info.task, "mode": self.mode, "run": self.info.run_dir.name,
                "model": self.info.model_name,
                "extent_m": [float(self.x[0]), float(self.x[-1]), float(self.y[0]), float(self.y[-1])],
                "shape": [len(self.t), len(self.y), len(self.x)], "t_s": [float(v) for v in self.t],
                "test_cases": self.test_cases, "source_range_m": self.source_range}

    def source(self, body: dict[str, Any]) -> tuple[float, float]:
        """(x, y) in metres of a request body, rounded to the millimetre; BadRequest 422 unless finite numbers
        inside the domain."""
        xy = []
        for k, axis in (("x_m", self.x), ("y_m", self.y)):
            v = body.get(k)
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise BadRequest(422, f"{k}: a number is required")
            if not math.isfinite(v):
                raise BadRequest(422, f"{k}: not a finite number")
            lo, hi = float(np.min(axis)), float(np.max(axis))
            if not lo <= v <= hi:
                raise BadRequest(422, f"{k} = {v:g} m is outside the domain [{lo:g}, {hi:g}] m")
            xy.append(round(float(v), 3))  # to the millimetre: the page shows the position it solved for
        return xy[0], xy[1]

    def surrogate_field(self, x_m: float, y_m: float) -> tuple[np.ndarray, float]:
        """(field [frame, y, x] float64 in field units, seconds) of the source at (x_m, y_m)."""
        from wavesurrogate.tasks.source_to_field import grid_coords, param_affine

        s = self.info.stats
        with_source = self._case_params(x_m, y_m)
        p = param_affine(s).encode(np.array([[with_source[n] for n in s["param_names"]]]))
        coords = grid_coords(s, self.x, self.y, self.t)[None]
        t0 = time.perf_counter()
        with torch.inference_mode():
            v = self.model(p, coords)[0]
        secs = time.perf_counter() - t0
        v = v.double().numpy() * float(s["field_std"]) + float(s["field_mean"])
        return v.reshape(len(self.t), len(self.y), len(self.x)), secs

    def _case_params(self, x_m: float, y_m: float) -> dict[str, float]:
        """The first test case's parameters with the source moved to (x_m, y_m)."""
        from wavesurrogate.data.store import open_data

        with open_data(self.data) as f:
            params = {k: float(v[self.test_cases[0]]) for k, v in f.params.items()}
        return {**params, "source_x_m": x_m, "source_y_m": y_m}

    def solver_field(self, x_m: float, y_m: float) -> tuple[np.ndarray, float]:
        """(frames [frame, y, x] float64, solve seconds) of the campaign's FD solve of that source."""
        from wavesurrogate.data.cases import CaseSpec, solve_case
        from wavesurrogate.data.store import open_data

        with open_data(self.data) as f:
            cfg = f.config
        r = solve_case(cfg, CaseSpec(self.test_cases[0], 1, self._case_params(x_m, y_m)))
        return np.asarray(r.frames, np.float64), float(r.solve_s)

    def answer_surrogate(self, body: dict[str, Any]) -> dict[str, Any]:
        x_m, y_m = self.source(body)
        field, secs = self.surrogate_field(x_m, y_m)
        return {"x_m": x_m, "y_m": y_m, "latency_ms": 1e3 * secs, "shape": list(field.shape),
                "peak": float(np.abs(field).max()), "field": b64(field)}

    def answer_solver(self, body: dict[str, Any]) -> dict[str, Any]:
        x_m, y_m = self.source(body)
        frames, secs = self.solver_field(x_m, y_m)
        field, _ = self.surrogate_field(x_m, y_m)
        return {"x_m": x_m, "y_m": y_m, "solve_ms": 1e3 * secs, "shape": list(frames.shape),
                "peak": float(np.abs(frames).max()), "rel_l2": rel_l2(field, frames),
                "rel_l2_frames": [rel_l2(a, b) for a, b in zip(field, frames, strict=True)],
                "field": b64(frames)}

    def answer_rollout(self, body: dict[str, Any]) -> dict[str, Any]:
        """The rollout of test case ``body["case"]`` from its first n_in true frames, beside the truth."""
        from wavesurrogate.data.store import open_data
        from wavesurrogate.tasks import get
        from wavesurrogate.tasks.forecast import load_forcing, run_options

        case = body.get("case")
        if isinstance(case, bool) or not isinstance(case, int) or case not in self.test_cases:
            raise BadRequest(422, f"case: one of the test cases {self.test_cases} is required")
        s = self.info.stats
        n_in, n_out = int(s["n_in"]), int(s["n_out"])
        with open_data(self.data) as f:
            fields, velocity = f.fields(case), f.velocity(case)
            forcing = load_forcing(f, [case], f.n_frames + n_out) if run_options(s)[0] else None
            solve_s = f.solve_s(case)
        n = fields.shape[0] - n_in
        t0 = time.perf_counter()
        task = get(self.info.task)
        pred = task.predict(self.model, s, fields[None], velocity[None], n_in, n, forcing=forcing).numpy()[0]
        secs = time.perf_counter() - t0
        truth = fields[n_in:]
        return {"case": case, "first_frame": n_in, "latency_ms": 1e3 * secs, "shape": list(pred.shape),
                "solve_ms": None if solve_s is None else 1e3 * solve_s, "rel_l2": rel_l2(pred, truth),
                "rel_l2_frames": [rel_l2(a, b) for a, b in zip(pred, truth, strict=True)],
                "peak": float(np.abs(truth).max()), "field": b64(pred), "truth": b64(truth)}


ROUTES = {"/api/surrogate": "answer_surrogate", "/api/solver": "answer_solver",
          "/api/rollout": "answer_rollout"}


class Handler(BaseHTTPRequestHandler):
    """GET / (the page), GET /api/info, POST /api/surrogate|solver|rollout (JSON); everything else 4xx."""

    app: App  # set on the subclass make_server builds
    timeout = 10  # seconds a client may take to send its request (a stalled one does not hold the server)
    server_version = "wavesurrogate"  # HTTP/1.0: one request per connection, none held open by a browser
    default_request_version = "HTTP/1.0"  # so that an error answering an unparsable line has a status line

    def __getattr__(self, name: str) -> Any:
        if name.startswith("do_"):  # any other method: 405 (http.server would say 501)
            return self._not_allowed
        raise AttributeError(name)

    def _not_allowed(self) -> None:
        self._error(405, f"method {self.command} not allowed")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass  # quiet: the page shows what happened

    def _send(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, obj: dict[str, Any]) -> None:
        from wavesurrogate.io import to_json

        self._send(status, to_json(obj, indent=None).encode("utf-8"), "application/json")

    def _error(self, status: int, reason: str) -> None:
        self.close_connection = True
        self._json(status, {"error": reason, "status": status})

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        from wavesurrogate.apps.serve_page import PAGE

        path = self.path.split("?", 1)[0]
        if path in ("/", "/index.html"):
            self._send(200, PAGE.encode("utf-8"), "text/html; charset=utf-8")
        elif path == "/api/info":
            self._json(200, self.app.describe())
        elif path in ROUTES:
            self._error(405, f"{path}: use POST with a JSON body")
        else:
            self._error(404, "not found")

    do_HEAD = do_GET

    def do_POST(self) -> None:  # noqa: N802
        path = self.path.split("?", 1)[0]
        try:
            if path not in ROUTES:
                raise BadRequest(404 if path not in ("/", "/index.html", "/api/info") else 405, "not found")
            body = self._body()
            if (path == "/api/rollout") != (self.app.mode == "rollout"):
                raise BadRequest(404, f"{path}: not for a {self.app.info.task} run")
            self._json(200, getattr(self.app, ROUTES[path])(body))
        except BadRequest as exc:
            self._error(exc.status, exc.reason)
        except UserError as exc:
            self._error(422, str(exc))
        except Exception as exc:  # noqa: BLE001 - the server answers 500 and keeps serving
            self._error(500, f"{type(exc).__name__}: {str(exc)[:200]}")

    def _body(self) -> dict[str, Any]:
        length = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding"):
            raise BadRequest(411, "send a Content-Length, not a chunked body")
        if length is None:
            raise BadRequest(411, "Content-Length required")
        try:
            n = int(length)
        except ValueError:
            raise BadRequest(400, "Content-Length is not an integer") from None
        if n < 0:
            raise BadRequest(400, "Content-Length is negative")
        if n > MAX_BODY:
            raise BadRequest(413, f"body of {n} bytes; at most {MAX_BODY}")
        try:
            body = parse_json(self.rfile.read(n), "the body")
        except UserError as exc:
            raise BadRequest(400, str(exc)) from None
        if not isinstance(body, dict):
            raise BadRequest(400, "the body must be a JSON object")
        return body


class _Server(HTTPServer):
    """HTTPServer that stays quiet when a client hangs up early (e.g. after a 413 sent before its body)."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            super().handle_error(request, client_address)


def make_server(run: str | Path, data: str | Path | None = None, host: str = "127.0.0.1",
                port: int = 8765) -> HTTPServer:
    """A bound (not yet serving) server of ``run``; ServeError (one line) if the port is taken. For source →
    field runs the solver and the model are run once first, so that the first click's times are warm ones."""
    handler = type("RunHandler", (Handler,), {})
    try:  # bind first: a taken port is said before seconds of loading and compiling
        server = _Server((host, int(port)), handler)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise ServeError(f"port {port} on {host} is already in use; pass --port") from None
        raise ServeError(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from None
    try:
        app = App.load(run, data)
        if app.mode == "click":  # build (devito: compile) and warm the solver, and warm the model
            app.solver_field(float(np.mean(app.x)), float(np.mean(app.y)))
            app.surrogate_field(float(np.mean(app.x)), float(np.mean(app.y)))
    except BaseException:
        server.server_close()
        raise
    handler.app = app
    return server


def serve(run: str | Path, data: str | Path | None = None, host: str = "127.0.0.1", port: int = 8765) -> None:
    """Serve ``run`` until interrupted (Ctrl-C)."""
    server = make_server(run, data, host, port)
    h, p = server.server_address[:2]
    print(f"wavesurrogate serve: http://{h}:{p}/ (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()

"""``wavesurrogate serve``: the JSON API answers the library's numbers, malformed requests get 4xx while the
server keeps serving, a taken port is one line and exit 2."""

from __future__ import annotations

import base64
import http.client
import json
import socket
import threading

import numpy as np
import pytest

from wavesurrogate.apps.serve import make_server
from wavesurrogate.cli import main


def request(srv, method, path, body=None, headers=None, raw=None):
    c = http.client.HTTPConnection(*srv.server_address[:2], timeout=30)
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    c.request(method, path, body=data, headers=headers or {})
    r = c.getresponse()
    out = r.status, r.read()
    c.close()
    return out


def raw_send(srv, payload: bytes) -> int:
    """Send bytes as they are; the status code of the answer (0 if none)."""
    with socket.create_connection(srv.server_address[:2], timeout=30) as s:
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        head = s.recv(64).split(b" ")
    return int(head[1]) if len(head) > 1 and head[1].isdigit() else 0


def floats(b64: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(b64), dtype="<f4")


def test_the_api_answers_the_library_numbers(field_server, field_run):
    from wavesurrogate.data.cases import CaseSpec, solve_case
    from wavesurrogate.data.store import open_data
    from wavesurrogate.runs import load_run

    status, info = request(field_server, "GET", "/api/info")
    info = json.loads(info)
    assert status == 200 and info["task"] == "source_to_field" and info["shape"] == [10, 16, 16]
    assert info["extent_m"] == [0.0, 150.0, 0.0, 150.0]
    status, page = request(field_server, "GET", "/")
    assert status == 200 and b"<canvas" in page
    s_status, s = request(field_server, "POST", "/api/surrogate", {"x_m": 72.5, "y_m": 81.0})
    f_status, f = request(field_server, "POST", "/api/solver", {"x_m": 72.5, "y_m": 81.0})
    s, f = json.loads(s), json.loads(f)
    assert s_status == f_status == 200 and s["latency_ms"] > 0 and f["solve_ms"] > 0
    # independently: the FD solve of the first test case's parameters with the source moved
    _, run_info = load_run(field_run)
    with open_data(run_info.config.data.path) as d:
        case = int(d.cases("test")[0])
        params = {k: float(v[case]) for k, v in d.params.items()} | {"source_x_m": 72.5, "source_y_m": 81.0}
        truth = solve_case(d.config, CaseSpec(case, 1, params)).frames
    solver = floats(f["field"]).reshape(10, 16, 16)
    np.testing.assert_array_equal(solver, truth)  # the solver is deterministic: the same frames
    sur = floats(s["field"]).astype(np.float64).reshape(10, 16, 16)
    err = np.linalg.norm(sur - truth) / np.linalg.norm(truth)
    assert f["rel_l2"] == pytest.approx(err, rel=1e-5) and s["peak"] == pytest.approx(np.abs(sur).max(), 1e-6)


MALFORMED = [
    ("GET", "/nothing", None, None, None),
    ("GET", "/../../etc/passwd", None, None, None),
    ("GET", "/%2e%2e/%2e%2e/etc/passwd", None, None, None),
    ("GET", "/static/../pyproject.toml", None, None, None),
    ("POST", "/api/unknown", {"x_m": 1.0, "y_m": 1.0}, None, None),
    ("GET", "/api/surrogate", None, None, None),
    ("PUT", "/api/surrogate", {"x_m": 1.0, "y_m": 1.0}, None, None),
    ("DELETE", "/", None, None, None),
    ("POST", "/api/surrogate", {"x_m": -10.0, "y_m": 50.0}, None, None),
    ("POST", "/api/surrogate", {"x_m": 50.0, "y_m": 1e9}, None, None),
    ("POST", "/api/solver", {"x_m": 151.0, "y_m": 50.0}, None, None),
    ("POST", "/api/surrogate", None, None, b'{"x_m": NaN, "y_m": 50.0}'),
    ("POST", "/api/surrogate", None, None, b'{"x_m": Infinity, "y_m": 50.0}'),
    ("POST", "/api/surrogate", {"x_m": "50", "y_m": 50.0}, None, None),
    ("POST", "/api/surrogate", {"x_m": True, "y_m": 50.0}, None, None),
    ("POST", "/api/surrogate", {"y_m": 50.0}, None, None),
    ("POST", "/api/surrogate", [50.0, 50.0], None, None),
    ("POST", "/api/surrogate", None, None, b"{not json"),
    ("POST", "/api/surrogate", None, None, b"\xff\xfe\x00"),
    ("POST", "/api/surrogate", None, None, b"[" * 5000 + b"]" * 5000),
    ("POST", "/api/surrogate", None, None, b'{"x_m": 1.0, "pad": "' + b"x" * 100_000 + b'"}'),
    ("POST", "/api/surrogate", None, {"Content-Length": "abc"}, b""),
    ("POST", "/api/rollout", {"case": 0}, None, None),
]


def test_malformed_requests_get_4xx_and_the_server_keeps_serving(field_server):
    codes = []
    for method, path, body, headers, raw in MALFORMED:
        try:
            codes.append(request(field_server, method, path, body, headers, raw)[0])
        except (ConnectionError, http.client.HTTPException):  # the server may close on an oversized body
            codes.append(-1)
    codes += [raw_send(field_server, b"POST /api/surrogate HTTP/1.0\r\n\r\n"),  # no Content-Length
              raw_send(field_server, b"GARBAGE\r\n\r\n"),
              raw_send(field_server, b"GET /" + b"a" * 70_000 + b" HTTP/1.0\r\n\r\n"),
              raw_send(field_server, b"POST /api/surrogate HTTP/1.0\r\nContent-Length: -5\r\n\r\n")]
    assert len(codes) >= 20
    assert all(400 <= c < 500 for c in codes), str(codes)
    assert codes[0] == 404 and codes[8] == 422 and codes[11] == 422 and codes[20] == 413
    status, good = request(field_server, "POST", "/api/surrogate", {"x_m": 60.0, "y_m": 90.0})
    assert status == 200 and json.loads(good)["x_m"] == 60.0


def test_a_port_in_use_is_one_line_and_exit_2(field_run, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert main(["serve", str(field_run), "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"port {port} on 127.0.0.1 is already in use" in err


def test_forecast_runs_roll_out_a_test_case_against_the_truth(forecast_run):
    from wavesurrogate.data.store import open_data
    from wavesurrogate.runs import load_run
    from wavesurrogate.tasks.forecast import TASK, load_forcing

    srv = make_server(forecast_run, port=0)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    try:
        info = json.loads(request(srv, "GET", "/api/info")[1])
        case = info["test_cases"][0]
        assert request(srv, "POST", "/api/rollout", {"case": 999})[0] == 422
        assert request(srv, "POST", "/api/surrogate", {"x_m": 50.0, "y_m": 50.0})[0] == 404
        status, r = request(srv, "POST", "/api/rollout", {"case": case})
        r = json.loads(r)
    finally:
        srv.shutdown()
        srv.server_close()
    model, run_info = load_run(forecast_run)
    with open_data(run_info.config.data.path) as f:
        fields, vel = f.fields(case), f.velocity(case)
        want = TASK.predict(model, run_info.stats, fields[None], vel[None], 2, 18,
                            forcing=load_forcing(f, [case], 21)).numpy()[0]
    assert status == 200 and r["shape"] == [18, 16, 16] and r["first_frame"] == 2
    np.testing.assert_allclose(floats(r["field"]).reshape(18, 16, 16), want, rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(floats(r["truth"]).reshape(18, 16, 16), fields[2:])
    assert r["rel_l2"] == pytest.approx(np.linalg.norm(want - fields[2:]) / np.linalg.norm(fields[2:]), 1e-6)

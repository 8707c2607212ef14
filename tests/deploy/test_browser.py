"""The serve page in a real browser: headless Chromium (Debian's ``chromium`` + ``chromium-driver``, which
``make test`` installs) driven by selenium. A click places the source; the test waits for the surrogate's and
the solver's fields, checks the numbers the page shows against the library's, checks that the canvases hold a
drawn field, and keeps a screenshot at ``tests/artifacts/serve_click.png`` (ignored by git)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.fixture
def browser():
    if CHROMIUM is None or DRIVER is None:
        pytest.skip("chromium and chromium-driver are not installed (make test installs them with apt-get)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--window-size=900,760", "--disable-extensions", "--no-first-run"):
        opts.add_argument(a)
    driver = webdriver.Chrome(options=opts, service=Service(DRIVER))
    yield driver
    driver.quit()


def _library_numbers(run: Path, x_m: float, y_m: float) -> tuple[float, float, float]:
    """(relative L2 surrogate vs solver, surrogate peak, solver peak) computed here through the library."""
    from wavesurrogate.data.cases import CaseSpec, solve_case
    from wavesurrogate.data.store import open_data
    from wavesurrogate.runs import load_run
    from wavesurrogate.tasks.source_to_field import grid_coords, param_affine

    model, info = load_run(run)
    s = info.stats
    with open_data(info.config.data.path) as f:
        case = int(f.cases("test")[0])
        params = {k: float(v[case]) for k, v in f.params.items()} | {"source_x_m": x_m, "source_y_m": y_m}
        truth = solve_case(f.config, CaseSpec(case, 1, params)).frames.astype(np.float64)
        p = param_affine(s).encode(np.array([[params[n] for n in s["param_names"]]]))
        with torch.no_grad():
            v = model(p, grid_coords(s, f.x, f.y, f.t)[None])[0].double().numpy()
    sur = (v * s["field_std"] + s["field_mean"]).reshape(truth.shape)
    return float(np.linalg.norm(sur - truth) / np.linalg.norm(truth)), float(np.abs(sur).max()), \
        float(np.abs(truth).max())


def test_a_click_places_the_source_and_shows_the_library_numbers(browser, field_server, field_run):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    host, port = field_server.server_address[:2]
    browser.get(f"http://{host}:{port}/")
    text = lambda i: browser.find_element(By.ID, i).text  # noqa: E731
    WebDriverWait(browser, 30).until(lambda d: text("status") == "ready")
    canvas = browser.find_element(By.ID, "left")
    ActionChains(browser).move_to_element_with_offset(canvas, 40, -30).click().perform()
    WebDriverWait(browser, 60).until(lambda d: text("status") == "done" or text("status").startswith("error"))
    assert text("status") == "done"
    x_m, y_m = (float(v) for v in re.findall(r"-?\d+\.\d+", text("source")))
    # 320-px canvas over 16 nodes at 10 m from 0: 40 px right of the centre is node 9.5 → x = 95 m; y = 90 m
    assert x_m == pytest.approx(95.0, abs=1.0) and y_m == pytest.approx(90.0, abs=1.0)
    err, peak_s, peak_f = _library_numbers(field_run, x_m, y_m)
    shown_err = float(text("error").split()[0])
    assert shown_err == pytest.approx(100 * err, abs=6e-4)  # shown with 3 decimals of a percent
    peaks = [float(v) for v in text("peaks").split(" / ")]
    assert peaks == pytest.approx([peak_s, peak_f], rel=1e-5)
    latency, solve = (float(text(i).split()[0]) for i in ("latency", "solver-time"))
    assert latency > 0 and solve > 0
    drawn = browser.execute_script(
        "const out = [];"
        "for (const id of ['left', 'right']) { const c = document.getElementById(id);"
        "  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; const seen = new Set();"
        "  for (let i = 0; i < d.length; i += 4) seen.add(d[i] * 65536 + d[i + 1] * 256 + d[i + 2]);"
        "  out.push(seen.size); } return out;")
    assert min(drawn) > 20  # a field in many colours on both panels, not a blank canvas
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "serve_click.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000

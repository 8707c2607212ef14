"""The one page ``wavesurrogate serve`` sends (embedded: no file is read on request). Plain HTML, a canvas per
field, and a small script: decode the float32 frames of the JSON answers and animate them in a diverging
colour map (the solver's or the truth's peak sets the scale of both panels)."""

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>wavesurrogate serve</title>
<style>
 body { font: 14px system-ui, sans-serif; margin: 1.2em; color: #222; }
 .panels { display: flex; gap: 1.5em; flex-wrap: wrap; }
 .panel { text-align: center; }
 canvas { width: 320px; height: 320px; image-rendering: pixelated; border: 1px solid #888;
          cursor: crosshair; }
 table { border-collapse: collapse; margin-top: .8em; }
 td { padding: .15em .8em; } td.v { font-family: monospace; text-align: right; }
 #status { font-weight: bold; }
</style></head>
<body>
<h2>wavesurrogate serve: <span id="run"></span></h2>
<p id="help"></p>
<p id="forecast-controls" hidden>test case <select id="case"></select> <button id="play">roll out</button></p>
<div class="panels">
 <div class="panel"><div id="left-title">surrogate</div>
  <canvas id="left" width="320" height="320"></canvas></div>
 <div class="panel"><div id="right-title">solver</div>
  <canvas id="right" width="320" height="320"></canvas></div>
</div>
<table>
 <tr><td>status</td><td class="v" id="status">loading</td></tr>
 <tr><td>source</td><td class="v" id="source">-</td></tr>
 <tr><td>surrogate latency</td><td class="v" id="latency">-</td></tr>
 <tr><td>solver time</td><td class="v" id="solver-time">-</td></tr>
 <tr><td>relative L2 error, all frames</td><td class="v" id="error">-</td></tr>
 <tr><td>peak |field|, surrogate / solver</td><td class="v" id="peaks">-</td></tr>
 <tr><td>frame, time, error of the frame</td><td class="v" id="frame">-</td></tr>
</table>
<script>
"use strict";
let info = null, left = null, right = null, shape = null, scale = 1, errs = null, frame = 0, timer = null;
let source = null, busy = false;
const $ = (id) => document.getElementById(id);

function decode(b64) {
  const bin = atob(b64), bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return new Float32Array(bytes.buffer);
}

function draw(canvas, data, k) {
  const [nt, ny, nx] = shape, ctx = canvas.getContext("2d");
  if (!data) { ctx.clearRect(0, 0, canvas.width, canvas.height); return; }
  const img = ctx.createImageData(nx, ny), off = k * ny * nx;
  for (let j = 0; j < ny; j++) for (let i = 0; i < nx; i++) {
    const v = Math.max(-1, Math.min(1, data[off + j * nx + i] / scale));
    const p = 4 * ((ny - 1 - j) * nx + i);  // y grows upwards
    img.data[p] = v > 0 ? 255 : Math.round(255 * (1 + v));
    img.data[p + 1] = Math.round(255 * (1 - Math.abs(v)));
    img.data[p + 2] = v < 0 ? 255 : Math.round(255 * (1 - v));
    img.data[p + 3] = 255;
  }
  const tmp = document.createElement("canvas");
  tmp.width = nx; tmp.height = ny; tmp.getContext("2d").putImageData(img, 0, 0);
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(tmp, 0, 0, canvas.width, canvas.height);
  if (source) {
    const [x0, x1, y0, y1] = info.extent_m;
    const px = (source[0] - x0) / (x1 - x0) * canvas.width;
    const py = (1 - (source[1] - y0) / (y1 - y0)) * canvas.height;
    ctx.strokeStyle = "#000"; ctx.beginPath(); ctx.arc(px, py, 6, 0, 2 * Math.PI); ctx.stroke();
  }
}

function tick() {
  if (!shape) return;
  draw($("left"), left, frame); draw($("right"), right, frame);
  const e = errs ? (100 * errs[frame]).toFixed(2) + " %" : "-";
  $("frame").textContent = (frame + 1) + " / " + shape[0] + ", " + info.shown_t[frame].toFixed(4) + " s, "
    + e;
  frame = (frame + 1) % shape[0];
}

function animate() { if (timer) clearInterval(timer); frame = 0; tick(); timer = setInterval(tick, 120); }

async function post(path, body) {
  const r = await fetch(path, {method: "POST", headers: {"Content-Type": "application/json"},
                               body: JSON.stringify(body)});
  const j = await r.json();
  if (!r.ok) throw new Error(j.error || r.statusText);
  return j;
}

function ms(v) { return v === null || v === undefined ? "n/a" : v.toFixed(3) + " ms"; }

async function place(ev) {
  if (busy || info.mode !== "click") return;
  const c = ev.target.getBoundingClientRect(), [x0, x1, y0, y1] = info.extent_m;
  const [, ny, nx] = info.shape, dx = (x1 - x0) / (nx - 1), dy = (y1 - y0) / (ny - 1);
  const u = (ev.clientX - c.left) / c.width, w = (ev.clientY - c.top) / c.height;
  const x = Math.min(x1, Math.max(x0, x0 + (u * nx - 0.5) * dx));
  const y = Math.min(y1, Math.max(y0, y0 + ((1 - w) * ny - 0.5) * dy));
  busy = true; source = [x, y]; right = null; errs = null;
  $("status").textContent = "surrogate…"; $("solver-time").textContent = "-"; $("error").textContent = "-";
  try {
    const s = await post("/api/surrogate", {x_m: x, y_m: y});
    source = [s.x_m, s.y_m]; shape = s.shape; left = decode(s.field); scale = s.peak || 1;
    info.shown_t = info.t_s;
    $("source").textContent = "x = " + s.x_m.toFixed(3) + " m, y = " + s.y_m.toFixed(3) + " m";
    $("latency").textContent = ms(s.latency_ms);
    $("peaks").textContent = s.peak.toPrecision(6) + " / -";
    animate();
    $("status").textContent = "solver…";
    const f = await post("/api/solver", {x_m: s.x_m, y_m: s.y_m});
    right = decode(f.field); scale = f.peak || scale; errs = f.rel_l2_frames;
    $("solver-time").textContent = ms(f.solve_ms);
    $("error").textContent = (100 * f.rel_l2).toFixed(3) + " %";
    $("peaks").textContent = s.peak.toPrecision(6) + " / " + f.peak.toPrecision(6);
    $("status").textContent = "done";
  } catch (e) { $("status").textContent = "error: " + e.message; }
  busy = false;
}

async function rollout() {
  if (busy) return;
  busy = true; $("status").textContent = "rolling out…";
  try {
    const r = await post("/api/rollout", {case: parseInt($("case").value, 10)});
    shape = r.shape; left = decode(r.field); right = decode(r.truth); scale = r.peak || 1;
    errs = r.rel_l2_frames; source = null;
    info.shown_t = info.t_s.slice(r.first_frame);
    $("source").textContent = "test case " + r.case + ", frames " + r.first_frame + "-"
      + (r.first_frame + shape[0] - 1);
    $("latency").textContent = ms(r.latency_ms);
    $("solver-time").textContent = ms(r.solve_ms) + " (the campaign's solve)";
    $("error").textContent = (100 * r.rel_l2).toFixed(3) + " %";
    $("peaks").textContent = "- / " + r.peak.toPrecision(6);
    animate(); $("status").textContent = "done";
  } catch (e) { $("status").textContent = "error: " + e.message; }
  busy = false;
}

async function start() {
  info = await (await fetch("/api/info")).json();
  $("run").textContent = info.run + " (" + info.model + ", " + info.task + ")";
  if (info.mode === "click") {
    const [x0, x1, y0, y1] = info.extent_m;
    $("help").textContent = "Click in the domain (x " + x0 + "-" + x1 + " m, y " + y0 + "-" + y1 +
      " m) to place the source: the surrogate answers, then the campaign's FD solver solves the same source.";
    $("left").addEventListener("click", place); $("right").addEventListener("click", place);
  } else {
    $("help").textContent =
      "Pick a test case: the surrogate rolls out from its first true frames beside the truth.";
    $("left-title").textContent = "surrogate rollout"; $("right-title").textContent = "truth (the data file)";
    for (const c of info.test_cases) {
      const o = document.createElement("option"); o.value = o.textContent = c; $("case").appendChild(o);
    }
    $("forecast-controls").hidden = false; $("play").addEventListener("click", rollout);
  }
  $("status").textContent = "ready";
}
start();
</script>
</body></html>
"""

"""Neural-operator peers: FNO/TFNO adapters (neuralop), DeepONet, CNN-branch DeepONet, parameter budgets."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest
import torch

from wavesurrogate.errors import ConfigError
from wavesurrogate.nn import registry
from wavesurrogate.nn.budget import params_for_budget
from wavesurrogate.nn.layers.blocks import MLP
from wavesurrogate.nn.models.deeponet import DeepONet, TensorizedBranchDeepONet, fourier_frequencies

try:
    import neuralop  # noqa: F401

    HAS_NEURALOP = True
except ImportError:
    HAS_NEURALOP = False
needs_neuralop = pytest.mark.skipif(
    not HAS_NEURALOP, reason="neuralop (optional extra .[operators]) not installed"
)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models on a shared 2-core machine run ~10x faster on one intra-op thread; restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def n_real_params(model: torch.nn.Module) -> int:
    """Independent count: every real scalar of every parameter (complex = 2)."""
    return sum(p.numel() * (2 if torch.is_complex(p) else 1) for p in model.parameters())


def dense_count(d_in: int, width: int, depth: int, d_out: int, modified: bool) -> int:
    """Layer-by-layer count of an MLP written out, not taken from the module under test."""
    sizes = [d_in] + [width] * depth + [d_out]
    n = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:], strict=True))
    return n + (2 * (d_in * width + width) if modified else 0)


# ---------------------------------------------------------------------------------------------- FNO / TFNO


def smooth_fields(gen: torch.Generator, n: int, c: int, size: int) -> torch.Tensor:
    """Random periodic fields [n, c, size, size] built from wavenumbers |k| <= 2."""
    grid = torch.arange(size) * (2 * math.pi / size)
    out = torch.zeros(n, c, size, size)
    for kx in range(-2, 3):
        for ky in range(0, 3):
            a = torch.randn(n, c, 1, 1, generator=gen)
            ph = torch.rand(n, c, 1, 1, generator=gen) * 2 * math.pi
            out += a * torch.cos(ky * grid[:, None] + kx * grid[None, :] + ph)
    return out / 4


def forecast_problem(n_in: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs [16, n_in + 1, 16, 16]; target = last frame shifted one cell in x + half the previous one."""
    gen = torch.Generator().manual_seed(1)
    x = smooth_fields(gen, 16, n_in + 1, 16)
    y = torch.roll(x[:, n_in - 1 : n_in], shifts=1, dims=-1) + 0.5 * x[:, n_in - 2 : n_in - 1]
    return x, y


def train(model: torch.nn.Module, loss_fn, steps: int, lr: float) -> tuple[float, float]:
    """Full-batch Adam for ``steps``; (first loss, mean of the last 5 losses)."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = loss_fn(model)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses[0], sum(losses[-5:]) / 5


@needs_neuralop
@pytest.mark.parametrize("name", ["fno", "tfno"])
def test_fno_learns_a_shift(name):
    torch.manual_seed(0)
    x, y = forecast_problem()
    model = registry.build(
        name, {"n_in": 2, "n_out": 1, "n_modes": [6, 6], "hidden_channels": 8, "n_layers": 2}
    )
    assert model(x).shape == (16, 1, 16, 16)
    first, last = train(model, lambda m: torch.mean((m(x) - y) ** 2), steps=40, lr=1e-2)
    assert last < 0.3 * first, (first, last)
    assert last < 0.2 * y.var().item(), (last, y.var().item())  # far better than predicting the mean


@needs_neuralop
@pytest.mark.parametrize("name", ["fno", "tfno"])
def test_fno_rebuilds_from_name_kwargs_and_safetensors(name, tmp_path):
    from safetensors.torch import load_file, save_file

    torch.manual_seed(0)
    kwargs = {"n_in": 3, "n_out": 2, "n_modes": [8, 6], "hidden_channels": 8, "n_layers": 2}
    model = registry.build(name, kwargs)
    sd = model.state_dict()
    assert all(isinstance(v, torch.Tensor) for v in sd.values())  # no pickled neuralop metadata
    save_file(sd, tmp_path / "w.safetensors")
    torch.manual_seed(123)  # a different init, so equality below comes from the weights file
    clone = registry.build(name, json.loads(json.dumps(kwargs)))
    clone.load_state_dict(load_file(tmp_path / "w.safetensors"))
    x = torch.randn(2, 4, 16, 12)
    assert torch.equal(model(x), clone(x))
    assert model(x).shape == (2, 2, 16, 12)


@needs_neuralop
def test_tfno_has_fewer_parameters_than_fno_of_same_width():
    kwargs = {"n_in": 4, "n_out": 1, "n_modes": [12, 12], "hidden_channels": 32, "n_layers": 4}
    n_fno = n_real_params(registry.build("fno", kwargs))
    n_tfno = n_real_params(registry.build("tfno", kwargs))
    assert n_tfno < 0.5 * n_fno, (n_tfno, n_fno)


@needs_neuralop
def test_fno_rejects_bad_config_and_input():
    with pytest.raises(ConfigError, match="n_modes"):
        registry.build("fno", {"n_in": 2, "n_out": 1, "n_modes": [8]})
    model = registry.build("fno", {"n_in": 2, "n_out": 1, "n_modes": [4, 4], "hidden_channels": 4})
    with pytest.raises(ValueError, match="expected x"):
        model(torch.zeros(1, 2, 8, 8))


def test_fno_without_neuralop_raises_config_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "neuralop", None)
    monkeypatch.setitem(sys.modules, "neuralop.models", None)
    with pytest.raises(ConfigError, match=r"pip install \.\[operators\]"):
        registry.build("fno", {"n_in": 2, "n_out": 1})


def test_module_imports_without_neuralop_and_neuralop_stays_offline():
    """One fresh interpreter (imports take seconds): network denied throughout; first without neuralop."""
    code = (
        "import socket, sys\n"
        "def deny(*a, **k): raise RuntimeError('network access attempted')\n"
        "socket.socket.connect = deny; socket.socket.connect_ex = deny; socket.getaddrinfo = deny\n"
        "socket.create_connection = deny\n"
        "sys.modules['neuralop'] = None; sys.modules['neuralop.models'] = None\n"
        "import torch\n"
        "from wavesurrogate.nn import registry\n"
        "print(','.join(registry.names()))\n"
        "del sys.modules['neuralop'], sys.modules['neuralop.models']\n"
        f"if {HAS_NEURALOP}:\n"
        "    for name in ('fno', 'tfno'):\n"
        "        m = registry.build(name, {'n_in': 1, 'n_out': 1, 'n_modes': [4, 4], 'hidden_channels': 4})\n"
        "        m(torch.zeros(1, 2, 8, 8)).sum().backward()\n"
        "    print('neuralop ok')\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.split()
    assert {"fno", "tfno", "deeponet"} <= set(lines[0].split(","))
    assert lines[1:] == (["neuralop", "ok"] if HAS_NEURALOP else [])


# ---------------------------------------------------------------------------------------------- DeepONet

SMALL = {
    "n_params": 3,
    "n_basis": 16,
    "branch_width": 32,
    "branch_depth": 2,
    "trunk_width": 32,
    "trunk_depth": 2,
    "n_fourier": 16,
    "fourier_scale": 0.5,
}


def pulse(params: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """Analytic field: Gaussian blob at (sx, sy) oscillating in time at frequency f; [B, Q]."""
    sx, sy, f = (params[:, i : i + 1] for i in range(3))
    x, y, t = coords.unbind(-1)
    return torch.exp(-((x - sx) ** 2 + (y - sy) ** 2) / 0.3) * torch.cos(math.pi * f * t)


def test_deeponet_learns_an_analytic_field():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(2)
    params = torch.cat([torch.rand(32, 2, generator=gen) - 0.5, 1 + torch.rand(32, 1, generator=gen)], dim=1)
    coords = 2 * torch.rand(32, 64, 3, generator=gen) - 1
    target = pulse(params, coords)
    model = registry.build("deeponet", SMALL)
    first, last = train(model, lambda m: torch.mean((m(params, coords) - target) ** 2), steps=60, lr=3e-3)
    assert last < 0.3 * first, (first, last)
    assert last < 0.5 * target.var().item(), (last, target.var().item())  # beats predicting the mean


@pytest.mark.parametrize("modified", [True, False])
@pytest.mark.parametrize("fourier", ["gaussian", "axis", "none"])
def test_deeponet_grid_equals_pointwise(modified, fourier):
    torch.manual_seed(0)
    model = DeepONet(**{**SMALL, "modified": modified, "fourier": fourier, "n_fourier": 15})
    params = torch.randn(2, 3)
    x, y, t = torch.linspace(-1, 1, 5), torch.rand(4) * 2 - 1, torch.linspace(-1, 0.5, 3)
    grid = model.predict_grid(params, x, y, t, chunk=7)  # chunk smaller than the grid: exercises chunking
    assert grid.shape == (2, 3, 4, 5)
    pts = torch.tensor([[xi, yj, tk] for tk in t for yj in y for xi in x])  # t slowest, x fastest
    point = model(params, pts.expand(2, -1, -1))
    assert torch.allclose(grid.reshape(2, -1), point, atol=1e-5, rtol=0)


def test_deeponet_off_grid_queries_match_single_point_grids():
    torch.manual_seed(0)
    model = DeepONet(**SMALL)
    params = torch.randn(3, 3)
    pts = torch.rand(3, 6, 3) * 2 - 1  # a different set of arbitrary points per batch item
    out = model(params, pts)
    for b in range(3):
        for q in range(6):
            x, y, t = pts[b, q].split(1)
            single = model.predict_grid(params[b : b + 1], x, y, t)
            assert torch.allclose(single.reshape(()), out[b, q], atol=1e-5)


def deeponet_formula(n_params, n_basis, bw, bd, tw, td, modified, fourier, n_fourier, include_coords):
    d_trunk = (0 if fourier == "none" else 2 * n_fourier) + (3 if include_coords or fourier == "none" else 0)
    return (
        dense_count(n_params, bw, bd, n_basis, modified) + dense_count(d_trunk, tw, td, n_basis, modified) + 1
    )


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"modified": False},
        {"fourier": "none", "n_fourier": 0},
        {"fourier": "axis", "n_fourier": 12, "include_coords": False},
        {"n_basis": 7, "branch_width": 5, "branch_depth": 1, "trunk_width": 9, "trunk_depth": 3},
    ],
)
def test_deeponet_parameter_count_closed_form(kw):
    full = {
        "n_params": 4,
        "n_basis": 100,
        "branch_width": 128,
        "branch_depth": 4,
        "trunk_width": 128,
        "trunk_depth": 4,
        "modified": True,
        "fourier": "gaussian",
        "n_fourier": 64,
        "include_coords": True,
        **kw,
    }
    model = DeepONet(**full)
    expected = deeponet_formula(
        full["n_params"], full["n_basis"], full["branch_width"], full["branch_depth"], full["trunk_width"],
        full["trunk_depth"], full["modified"], full["fourier"], full["n_fourier"], full["include_coords"],
    )  # fmt: skip
    assert n_real_params(model) == expected


def test_deeponet_rebuilds_identically(tmp_path):
    from safetensors.torch import load_file, save_file

    torch.manual_seed(0)
    kwargs = {**SMALL, "fourier_seed": 7, "fourier_scale": [1.0, 1.0, 2.0]}
    model = registry.build("deeponet", kwargs)
    save_file(model.state_dict(), tmp_path / "w.safetensors")
    torch.manual_seed(99)
    clone = registry.build("deeponet", json.loads(json.dumps(kwargs)))
    assert torch.equal(clone.freqs, model.freqs)  # features rebuilt from the seed alone, before loading
    clone.load_state_dict(load_file(tmp_path / "w.safetensors"))
    params, coords = torch.randn(2, 3), torch.rand(2, 10, 3) * 2 - 1
    assert torch.equal(model(params, coords), clone(params, coords))


def test_fourier_frequencies():
    a = fourier_frequencies("gaussian", 8, 2.0, seed=3)
    assert torch.equal(a, fourier_frequencies("gaussian", 8, 2.0, seed=3))
    assert not torch.equal(a, fourier_frequencies("gaussian", 8, 2.0, seed=4))
    assert 0.5 < a.std().item() < 4.0
    axis = fourier_frequencies("axis", 6, [4.0, 2.0, 1.0], seed=0)
    expected = torch.tensor([[2, 0, 0], [4, 0, 0], [0, 1, 0], [0, 2, 0], [0, 0, 0.5], [0, 0, 1]])
    assert torch.equal(axis, expected.float())
    with pytest.raises(ConfigError, match="multiple of 3"):
        fourier_frequencies("axis", 4, 1.0, seed=0)
    with pytest.raises(ConfigError, match="fourier"):
        fourier_frequencies("bessel", 4, 1.0, seed=0)


def test_modified_mlp_matches_published_formula():
    torch.manual_seed(0)
    mlp = MLP(2, 3, 2, 1, activation="tanh", modified=True)
    x = torch.randn(5, 2)
    (wu, wv), (bu, bv) = mlp.gate.weight.chunk(2), mlp.gate.bias.chunk(2)
    u, v = torch.tanh(x @ wu.T + bu), torch.tanh(x @ wv.T + bv)
    h = x
    for layer in mlp.hidden:
        z = torch.tanh(h @ layer.weight.T + layer.bias)
        h = (1 - z) * u + z * v
    expected = h @ mlp.out.weight.T + mlp.out.bias
    assert torch.allclose(mlp(x), expected, atol=1e-6)
    with torch.inference_mode():  # the in-place inference path agrees too
        assert torch.allclose(mlp(x), expected, atol=1e-6)


def test_deeponet_rejects_bad_config_and_shapes():
    with pytest.raises(ConfigError, match="activation"):
        DeepONet(n_params=2, activation="swish2")
    with pytest.raises(ConfigError, match="n_params"):
        DeepONet(n_params=0)
    model = DeepONet(**SMALL)
    with pytest.raises(ValueError, match="params"):
        model(torch.zeros(2, 4), torch.zeros(2, 5, 3))
    with pytest.raises(ValueError, match="coords"):
        model(torch.zeros(2, 3), torch.zeros(2, 5, 2))


# ---------------------------------------------------------------------------------------------- CNN branch


def test_cnn_branch_deeponet_rebuilds_and_uses_velocity():
    torch.manual_seed(0)
    kwargs = {**SMALL, "channels": [4, 8], "branch_depth": 1}
    model = registry.build("deeponet_cnn", kwargs)
    params, coords = torch.randn(2, 3), torch.rand(2, 10, 3) * 2 - 1
    vel = torch.rand(2, 24, 20)
    out = model(params, coords, vel)
    assert out.shape == (2, 10)
    assert not torch.allclose(out, model(params, coords, vel.flip(-1)))  # the velocity map matters
    grid = model.predict_grid(params, vel, torch.linspace(-1, 1, 4), torch.linspace(-1, 1, 3), torch.zeros(1))
    assert grid.shape == (2, 1, 3, 4)
    clone = registry.build("deeponet_cnn", kwargs)
    clone.load_state_dict(model.state_dict())
    assert torch.equal(out, clone(params, coords, vel))


def test_cnn_branch_with_cp_convs_is_smaller_and_rebuilds():
    pytest.importorskip("wavesurrogate.nn.layers.tensorized", reason="nn.layers.tensorized not in this tree")
    torch.manual_seed(0)
    base = {**SMALL, "channels": [4, 8], "branch_depth": 1}
    dense = registry.build("deeponet_cnn", base)
    cp = registry.build("deeponet_cnn", {**base, "conv": "cp", "conv_rank": 2})
    # conv weights: dense 1*4*9 + 4*8*9 = 324; cp R*(out+in+3+3) = 2*(4+1+6) + 2*(8+4+6) = 58
    assert n_real_params(dense) - n_real_params(cp) == 324 - 58
    params, coords, vel = torch.randn(2, 3), torch.rand(2, 10, 3) * 2 - 1, torch.rand(2, 16, 16)
    clone = registry.build("deeponet_cnn", {**base, "conv": "cp", "conv_rank": 2})
    clone.load_state_dict(cp.state_dict())
    assert torch.equal(cp(params, coords, vel), clone(params, coords, vel))


def test_cnn_branch_factorised_conv_needs_tensorized_module(monkeypatch):
    monkeypatch.setitem(sys.modules, "wavesurrogate.nn.layers.tensorized.conv", None)
    with pytest.raises(ConfigError, match="tensorized"):
        TensorizedBranchDeepONet(n_params=3, conv="cp")


# ---------------------------------------------------------------------------------------------- budgets


@pytest.mark.parametrize("budget", [10_000, 50_000, 250_000])
@pytest.mark.parametrize(
    ("name", "fixed"),
    [
        pytest.param("fno", {"n_in": 4, "n_out": 1}, marks=needs_neuralop),
        pytest.param("tfno", {"n_in": 4, "n_out": 1}, marks=needs_neuralop),
        pytest.param("fno", {"n_in": 4, "n_out": 1, "n_modes": [8, 8]}, marks=needs_neuralop),
        ("deeponet", {"n_params": 4}),
        ("deeponet", {"n_params": 4, "n_basis": 32, "trunk_depth": 2, "n_fourier": 16}),
    ],
)
def test_params_for_budget_within_25_percent(name, fixed, budget):
    kwargs = params_for_budget(name, budget, **fixed)
    assert {k: kwargs[k] for k in fixed} == fixed
    n = n_real_params(registry.build(name, json.loads(json.dumps(kwargs))))
    assert 0.75 * budget <= n <= 1.25 * budget, (kwargs, n)


def test_params_for_budget_rejects_unknown_and_overfixed():
    with pytest.raises(ConfigError, match="no budget rule"):
        params_for_budget("cnn9000", 10_000)
    with pytest.raises(ConfigError, match="nothing to choose"):
        params_for_budget("deeponet", 10_000, n_params=2, branch_width=8, trunk_width=8)
    with pytest.raises(ConfigError, match="cannot reach 10000"):  # the fixed trunk alone has ~25 k
        params_for_budget("deeponet", 10_000, n_params=4, n_basis=32, trunk_width=64)

"""SIREN initialisation of sine MLPs (Sitzmann et al. 2020): weight ranges, depth-stable pre-activations, off
by default."""

from __future__ import annotations

import math

import pytest
import torch

from wavesurrogate.errors import ConfigError
from wavesurrogate.nn import registry
from wavesurrogate.nn.layers.blocks import MLP, SIREN_OMEGA0
from wavesurrogate.nn.models.deeponet import DeepONet, TensorizedBranchDeepONet


def test_siren_weights_are_uniform_with_the_published_bounds():
    torch.manual_seed(0)
    mlp = MLP(5, 512, 3, 64, activation="sine", modified=True, init="siren")
    assert mlp.omega0 == SIREN_OMEGA0 == 30.0
    hidden = math.sqrt(6 / 512) / 30
    for layer, bound in [(mlp.hidden[0], 1 / 5), (mlp.gate, 1 / 5), (mlp.hidden[1], hidden),
                         (mlp.hidden[2], hidden), (mlp.out, hidden)]:  # fmt: skip
        w = layer.weight.detach().double()
        assert float(w.abs().max()) <= bound and float(w.abs().max()) > 0.99 * bound
        assert float(w.var()) == pytest.approx(bound**2 / 3, rel=0.08)  # uniform on ±b: var = b²/3
        assert float(w.mean()) == pytest.approx(0.0, abs=0.05 * bound)
        assert not layer.bias.any()


def test_siren_preactivations_stay_order_one_through_five_layers():
    torch.manual_seed(1)
    mlp = MLP(3, 256, 5, 2, activation="sine", init="siren")
    x = torch.rand(4096, 3) * 2 - 1
    h, stds = x, []
    with torch.no_grad():
        for layer in mlp.hidden:  # the forward pass, written out: sin(ω0 · (W h + b)) per layer
            z = 30.0 * layer(h)
            stds.append(float(z.std()))
            h = torch.sin(z)
        torch.testing.assert_close(mlp(x), mlp.out(h))
    assert stds[0] == pytest.approx(30 / math.sqrt(27), rel=0.1)  # ω0 · std(W x), x ~ U(-1, 1)³
    assert all(0.8 < s < 1.2 for s in stds[1:]), stds  # Sitzmann: ω0 W h ~ N(0, 1) at every depth
    assert 2.5 < float(z.pow(4).mean() / z.pow(2).mean() ** 2) < 3.5  # 5th layer's kurtosis; a normal's is 3


def test_siren_is_off_by_default_and_needs_sine():
    torch.manual_seed(2)
    mlp = MLP(64, 256, 2, 32, activation="sine")
    assert mlp.omega0 == 1.0
    assert float(mlp.hidden[1].weight.detach().var()) == pytest.approx(2 / 512, rel=0.05)  # Glorot normal
    model = DeepONet(2, n_basis=8, branch_width=16, trunk_width=16, n_fourier=4)
    assert model.init_kwargs["init"] == "glorot" and model.trunk.omega0 == model.branch.omega0 == 1.0
    with pytest.raises(ConfigError, match="siren needs activation 'sine'"):
        MLP(3, 4, 2, 1, activation="tanh", init="siren")
    with pytest.raises(ConfigError, match="model.init"):
        DeepONet(2, init="kaiming")


@pytest.mark.parametrize("name", ["deeponet", "deeponet_cnn"])
def test_deeponet_siren_is_captured_and_rebuilds(name: str):
    kwargs = {"n_params": 2, "n_basis": 8, "branch_width": 16, "trunk_width": 16, "n_fourier": 4,
              "init": "siren"}  # fmt: skip
    model = registry.build(name, kwargs)
    assert isinstance(model, DeepONet | TensorizedBranchDeepONet)
    assert registry.describe(model)["kwargs"]["init"] == "siren"
    assert model.trunk.omega0 == model.branch.omega0 == 30.0
    first = model.trunk.hidden[0]
    assert float(first.weight.detach().abs().max()) <= 1 / first.in_features

"""CNN surrogate family: shapes, formats only in the convs, residual, rollout, learning."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from wavesurrogate.errors import ConfigError
from wavesurrogate.nn import registry
from wavesurrogate.nn.layers.blocks import make_conv
from wavesurrogate.nn.layers.tensorized import TensorizedConv2d, TensorizedConv3d
from wavesurrogate.nn.models.cnn import CNN2d
from wavesurrogate.nn.rollout import rollout

FAMILIES = ("cnn2d", "unet2d", "cnn3d")
CONVS = (
    {"format": "dense"},
    {"format": "cp", "rank": 3},
    {"format": "separable", "rank": 1},
    {"format": "tucker", "rank": 3},
)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny networks: one thread avoids oversubscription on a shared 2-core machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _kwargs(conv, **extra):
    return {"n_in": 3, "n_out": 2, "width": 4, "depth": 2, "kernel_size": 3, "conv": conv, **extra}


@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize("conv", CONVS, ids=lambda c: c["format"])
@pytest.mark.parametrize("padding_mode", ["zeros", "circular"])
def test_output_shape_on_odd_grids(name, conv, padding_mode):
    torch.manual_seed(0)
    model = registry.build(name, _kwargs(conv, padding_mode=padding_mode))
    assert registry.entry(name).interface == registry.FRAMES
    x = torch.randn(2, 4, 13, 18)
    y = model(x)
    assert y.shape == (2, 2, 13, 18)
    assert y.dtype == torch.float32 and torch.isfinite(y).all()


@pytest.mark.parametrize("name", FAMILIES)
def test_kwargs_json_round_trip_rebuilds_identical_model(name):
    kwargs = json.loads(json.dumps(_kwargs({"format": "cp", "rank": 2}, activation="silu", norm="group")))
    a = registry.build(name, kwargs)
    b = registry.build(name, kwargs)
    b.load_state_dict(a.state_dict())
    x = torch.randn(1, 4, 8, 8)
    torch.testing.assert_close(a(x), b(x))


@pytest.mark.parametrize("name", FAMILIES)
def test_formats_differ_only_in_their_spatial_convs(name):
    dense = registry.build(name, _kwargs({"format": "dense"}))
    cp = registry.build(name, _kwargs({"format": "cp", "rank": 2}))
    conv_types = (nn.Conv2d, nn.Conv3d, TensorizedConv2d, TensorizedConv3d)

    def skeleton(module):
        """Layer list with every conv (of any format) reduced to its hyper-parameters."""
        if isinstance(module, conv_types):
            return [
                (
                    "conv",
                    module.in_channels,
                    module.out_channels,
                    tuple(module.kernel_size),
                    tuple(module.stride),
                )
            ]
        children = list(module.children())
        if not children:
            return [type(module).__name__]
        return [item for child in children for item in skeleton(child)]

    assert skeleton(dense) == skeleton(cp)
    spatial = [m for m in cp.modules() if isinstance(m, conv_types) and max(m.kernel_size) > 1]
    assert spatial and all(isinstance(m, TensorizedConv2d | TensorizedConv3d) for m in spatial)
    assert sum(p.numel() for p in cp.parameters()) < sum(p.numel() for p in dense.parameters())


@pytest.mark.parametrize("name", FAMILIES)
def test_residual_predicts_increment_over_last_frame(name):
    model = registry.build(name, _kwargs({"format": "cp", "rank": 2}))
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.zero_()
    x = torch.randn(2, 4, 9, 10)
    torch.testing.assert_close(model(x), x[:, 2:3].expand(2, 2, 9, 10))
    plain = registry.build(name, _kwargs({"format": "cp", "rank": 2}, residual=False))
    with torch.no_grad():
        plain.head.weight.zero_()
        plain.head.bias.zero_()
    assert plain(x).abs().max() == 0


def test_make_conv_factory_and_errors():
    assert type(make_conv(3, 4, 3, {"format": "dense"})) is nn.Conv2d
    assert type(make_conv(3, 4, 3, None, dim=3)) is nn.Conv3d
    layer = make_conv(3, 4, 5, {"format": "cp", "rank": 2, "channels_last": False}, padding_mode="reflect")
    assert isinstance(layer, TensorizedConv2d) and layer.padding == (2, 2) and not layer.channels_last
    assert make_conv(3, 4, 3, {"format": "tucker", "rank": 2}, dim=3)(torch.randn(1, 3, 4, 5, 6)).shape == (
        1,
        4,
        4,
        5,
        6,
    )
    with pytest.raises(ConfigError, match="unknown keys"):
        make_conv(3, 4, 3, {"format": "cp", "rank": 2, "ranks": 3})
    with pytest.raises(ConfigError, match="rank"):
        make_conv(3, 4, 3, {"format": "cp"})
    with pytest.raises(ConfigError, match="format"):
        make_conv(3, 4, 3, {"format": "tt", "rank": 2})
    with pytest.raises(ConfigError, match="kernel_size"):
        CNN2d(kernel_size=4)
    with pytest.raises(ConfigError, match="activation"):
        CNN2d(activation="swish")
    with pytest.raises(ConfigError, match="input"):
        CNN2d(n_in=3)(torch.randn(1, 3, 8, 8))


class _Shift(nn.Module):
    """Stub forecast model: next frames = last frame + 1, 2, ... (n_out of them)."""

    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.n_in, self.n_out = n_in, n_out
        self.calls = 0
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x):
        self.calls += 1
        last = x[:, self.n_in - 1 : self.n_in]
        assert torch.equal(x[:, self.n_in], x[:, -1])  # velocity stays the last channel
        return self.scale * torch.cat([last + j + 1 for j in range(self.n_out)], dim=1)


@pytest.mark.parametrize("n_out", [1, 2, 3])
def test_rollout_feeds_predictions_back(n_out):
    model = _Shift(n_in=2, n_out=n_out)
    x0 = torch.zeros(1, 2, 3, 4)
    x0[:, 1] = 10.0
    vel = torch.full((1, 3, 4), 0.5)
    out = rollout(model, x0, vel, 7)
    assert out.shape == (1, 7, 3, 4)
    torch.testing.assert_close(out[0, :, 0, 0], torch.arange(11.0, 18.0))
    assert model.calls == -(-7 // n_out)
    assert not out.requires_grad
    assert rollout(model, x0, vel.unsqueeze(1), 7, grad=True).requires_grad
    assert rollout(model, x0, vel, 0).shape == (1, 0, 3, 4)


def test_rollout_with_a_real_model_and_errors():
    model = registry.build("unet2d", _kwargs({"format": "cp", "rank": 2})).eval()
    x0, vel = torch.randn(2, 3, 10, 12), torch.rand(2, 10, 12)
    out = rollout(model, x0, vel, 5)
    assert out.shape == (2, 5, 10, 12)
    with torch.no_grad():
        first = model(torch.cat([x0, vel[:, None]], 1))
    torch.testing.assert_close(out[:, :2], first)
    with pytest.raises(ConfigError, match="n_in"):
        rollout(model, x0[:, :2], vel, 3)
    with pytest.raises(ConfigError, match="velocity"):
        rollout(model, x0, vel[:1], 3)


def _wave_step_data(n: int, size: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Toy forecast task: leapfrog step of the 2-D wave equation, u2 = 2 u1 - u0 + c^2 lap(u1) (periodic)."""
    u = torch.randn(n, 1, size, size, generator=g)
    smooth = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]])[None, None] / 16
    for _ in range(3):
        u = F.conv2d(F.pad(u, (1, 1, 1, 1), mode="circular"), smooth)
    u0 = u / u.std()
    c = (0.3 + 0.4 * torch.rand(n, 1, 1, 1, generator=g)).expand(n, 1, size, size)
    lap = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])[None, None]
    u1 = u0 + 0.5 * c**2 * F.conv2d(F.pad(u0, (1, 1, 1, 1), mode="circular"), lap)
    u2 = 2 * u1 - u0 + c**2 * F.conv2d(F.pad(u1, (1, 1, 1, 1), mode="circular"), lap)
    return torch.cat([u0, u1, c], dim=1), u2


def _train_rel_errors(fmt: str, rank: int, naive: bool = False) -> tuple[float, float]:
    """Relative error of the predicted increment before and after 50 Adam steps of a tiny CNN2d."""
    torch.manual_seed(0)
    x, y = _wave_step_data(16, 16, torch.Generator().manual_seed(0))
    model = CNN2d(
        n_in=2, n_out=1, width=8, depth=1, conv={"format": fmt, "rank": rank}, padding_mode="circular"
    )
    if naive:  # small-std factors, as generic factorised layers do: the reconstructed kernel is ~0
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, TensorizedConv2d):
                    for name, p in m.named_parameters():
                        if name != "bias":
                            p.normal_(0.0, 0.02)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    scale = (y - x[:, 1:2]).pow(2).mean().item()  # the increment the residual network has to learn
    losses = []
    for _ in range(50):
        loss = F.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return (losses[0] / scale) ** 0.5, (losses[-1] / scale) ** 0.5


@pytest.mark.parametrize("fmt,rank", [("cp", 4), ("separable", 1), ("tucker", 4)])
def test_tiny_compressed_cnn_learns_a_wave_step(fmt, rank):
    rel0, rel = _train_rel_errors(fmt, rank)
    assert rel0 > 0.8  # starts near "predict no change"
    assert rel < 0.5 and rel < 0.5 * rel0, (rel0, rel)


def test_naive_factor_init_does_not_learn_where_ours_does():
    _, rel_naive = _train_rel_errors("cp", 4, naive=True)
    assert rel_naive > 0.9

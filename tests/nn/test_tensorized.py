"""TensorizedConv2d/3d against torch's convolutions, closed forms, init statistics, from_dense, tltorch."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from wavesurrogate.errors import ConfigError
from wavesurrogate.nn.layers.tensorized import (
    TensorizedConv2d,
    TensorizedConv3d,
    count_parameters,
    default_kernel_variance,
    factor_variances,
    from_dense,
)

CLS = {2: TensorizedConv2d, 3: TensorizedConv3d}
REF = {2: nn.Conv2d, 3: nn.Conv3d}
FORMAT_RANKS = [("dense", None), ("cp", 4), ("separable", 2), ("tucker", 3), ("tucker", (4, 2, 2, 3, 2))]

# (stride, padding, padding_mode, dilation, bias), per-axis tuples cut to the layer's dim
CONFIGS = [
    (1, 1, "zeros", 1, True),
    (2, 2, "reflect", 2, False),
    (1, "same", "circular", 1, True),
    ((1, 2, 1), (1, 0, 2), "replicate", (2, 1, 1), True),
    (2, (2, 1, 0), "zeros", 1, True),
    (1, "valid", "zeros", (1, 2, 1), False),
    (3, 1, "circular", 1, True),
]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Small convolutions: one thread avoids oversubscription on a shared 2-core machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _cut(v, dim):
    return tuple(v[:dim]) if isinstance(v, tuple) else v


def _reference(layer, dim: int) -> nn.Module:
    """nn.ConvNd with the same hyper-parameters and the layer's reconstructed kernel."""
    ref = REF[dim](
        layer.in_channels,
        layer.out_channels,
        layer.kernel_size,
        stride=layer.stride,
        padding=layer.padding,
        dilation=layer.dilation,
        bias=layer.bias is not None,
        padding_mode=layer.padding_mode,
    ).to(layer.reconstruct().dtype)
    with torch.no_grad():
        ref.weight.copy_(layer.reconstruct())
        if layer.bias is not None:
            ref.bias.copy_(layer.bias)
    return ref


def _rank(fmt, rank, dim):
    if fmt == "tucker" and isinstance(rank, tuple):
        return rank[: 2 + dim]
    return rank


@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize("fmt,rank", FORMAT_RANKS)
@pytest.mark.parametrize("cfg", CONFIGS)
def test_equals_torch_conv_with_reconstructed_kernel(dim, fmt, rank, cfg):
    stride, padding, mode, dilation, bias = (_cut(v, dim) for v in cfg)
    k = (3, 2) if dim == 2 else (3, 2, 3)
    if padding == "same":  # torch allows 'same' with even kernels: asymmetric padding, tested here
        k = (3, 4) if dim == 2 else (2, 3, 3)
    g = torch.Generator().manual_seed(0)
    layer = CLS[dim](
        3,
        5,
        k,
        stride=stride,
        padding=padding,
        dilation=dilation,
        bias=bias,
        padding_mode=mode,
        format=fmt,
        rank=_rank(fmt, rank, dim),
        generator=g,
    )
    x = torch.randn(2, 3, *(9, 10, 11)[:dim], generator=g)
    y = layer(x)
    ref = _reference(layer, dim)(x)
    assert y.shape == ref.shape
    torch.testing.assert_close(y, ref, atol=1e-5, rtol=1e-5)
    # F.convNd directly on the reconstructed kernel (zeros padding only; the nn reference covers the modes)
    if mode == "zeros" and padding != "same":
        conv = F.conv2d if dim == 2 else F.conv3d
        direct = conv(
            x,
            layer.reconstruct(),
            layer.bias,
            stride=layer.stride,
            padding=layer.padding,
            dilation=layer.dilation,
        )
        torch.testing.assert_close(y, direct, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize("cfg", CONFIGS[:4])
def test_separable_grouped_route_and_layouts_agree(dim, cfg):
    stride, padding, mode, dilation, bias = (_cut(v, dim) for v in cfg)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, *(8, 9, 7)[:dim], generator=g)
    kw = dict(stride=stride, padding=padding, dilation=dilation, bias=bias, padding_mode=mode)
    a = CLS[dim](3, 4, 3, format="separable", rank=2, separable_impl="reconstruct", **kw)
    b = CLS[dim](3, 4, 3, format="separable", rank=2, separable_impl="grouped", **kw)
    b.load_state_dict(a.state_dict())
    torch.testing.assert_close(a(x), b(x), atol=1e-5, rtol=1e-5)
    for fmt in ("cp", "tucker"):
        c = CLS[dim](3, 4, 3, format=fmt, rank=3, channels_last=True, **kw)
        d = CLS[dim](3, 4, 3, format=fmt, rank=3, channels_last=False, **kw)
        d.load_state_dict(c.state_dict())
        torch.testing.assert_close(c(x), d(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize("cfg", CONFIGS)
def test_cp_fused_and_per_axis_routes_agree_values_and_gradients(dim, cfg):
    """The fused depthwise route, the one-1-D-conv-per-axis route and recomputation give the same numbers."""
    stride, padding, mode, dilation, bias = (_cut(v, dim) for v in cfg)
    g = torch.Generator().manual_seed(3)
    kw = dict(stride=stride, padding=padding, dilation=dilation, bias=bias, padding_mode=mode, format="cp",
              rank=3, dtype=torch.float64)
    k = (3, 2) if dim == 2 else (3, 2, 3)
    layers = [CLS[dim](3, 4, k, cp_impl=impl, recompute=rec, **kw)
              for impl, rec in [("fused", True), ("fused", False), ("axes", True), ("axes", False)]]
    for other in layers[1:]:
        other.load_state_dict(layers[0].state_dict())
    x0 = torch.randn(2, 3, *(8, 9, 7)[:dim], generator=g, dtype=torch.float64)
    outs, grads = [], []
    for layer in layers:
        x = x0.clone().requires_grad_()
        y = layer(x)
        (y * torch.linspace(-1, 1, y.numel(), dtype=y.dtype).reshape(y.shape)).sum().backward()
        outs.append(y.detach())
        grads.append([x.grad, *[p.grad for p in layer.parameters()]])
    ref = _reference(layers[0], dim).to(torch.float64)(x0)
    for y, gs in zip(outs, grads, strict=True):
        torch.testing.assert_close(y, ref, atol=1e-10, rtol=1e-10)
        for a, b in zip(gs, grads[0], strict=True):
            torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10)


def test_auto_route_fuses_only_small_kernels():
    """auto: fused when every k <= 3 (3x3, 3x3x3: one depthwise call beats three), per axis from 5 on."""
    assert TensorizedConv2d(4, 4, 3, format="cp", rank=2).cp_impl == "fused"
    assert TensorizedConv2d(4, 4, (3, 1), format="cp", rank=2).cp_impl == "fused"
    assert TensorizedConv2d(4, 4, 5, format="cp", rank=2).cp_impl == "axes"
    assert TensorizedConv2d(4, 4, (5, 3), format="cp", rank=2).cp_impl == "axes"
    assert TensorizedConv3d(4, 4, 3, format="cp", rank=2).cp_impl == "fused"
    with pytest.raises(ConfigError, match="cp_impl"):
        TensorizedConv2d(4, 4, 3, format="cp", rank=2, cp_impl="fast")


def test_recompute_keeps_only_the_input_for_backward():
    """In training, a recomputing cp layer saves no R-channel intermediates: what autograd keeps is the input
    and the (small) factors; without recomputation it also keeps the two R-channel activations."""
    saved: list[int] = []

    def pack(t):
        saved.append(t.numel())
        return t

    x = torch.randn(2, 6, 16, 16, requires_grad=True)
    sizes = {}
    for rec in (True, False):
        layer = TensorizedConv2d(6, 6, 3, padding=1, format="cp", rank=10, recompute=rec, channels_last=False)
        saved.clear()
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            layer(x)
        sizes[rec] = [n for n in saved if n >= 2 * 16 * 16]  # activations, not factors
    assert sizes[True] == [x.numel()]
    # 1x1 keeps x; the depthwise conv keeps its R-channel input; the last 1x1 keeps its R-channel input
    assert sorted(sizes[False]) == sorted([x.numel(), 2 * 10 * 256, 2 * 10 * 256])


def test_auto_recompute_only_when_the_intermediates_outweigh_the_input():
    """The default recomputes exactly when the two R-channel tensors it would keep hold more than the input
    (2R > in): the layer never keeps more activation memory for backward than the dense conv (its input)."""
    for cin, rank, want in [(32, 8, False), (32, 16, False), (32, 17, True), (6, 10, True)]:
        assert TensorizedConv2d(cin, 8, 3, format="cp", rank=rank).recompute is want
    assert TensorizedConv2d(32, 8, 3, format="tucker", rank=(20, 4, 3, 3)).recompute is True
    assert TensorizedConv2d(32, 8, 3, format="dense").recompute is False


def test_fractional_cp_rank_is_the_largest_within_the_budget():
    for cin, cout, k, f in [(16, 16, (3, 3), 0.1), (64, 32, (3, 3), 0.099), (5, 16, (3, 3, 3), 0.05)]:
        dense = cin * cout * math.prod(k)
        layer = CLS[len(k)](cin, cout, k, format="cp", rank=f, bias=False)
        r = layer.rank
        assert r * (cin + cout + sum(k)) <= f * dense < (r + 1) * (cin + cout + sum(k)) or r == 1
        assert layer.count_parameters() == count_parameters("cp", cin, cout, k, f, bias=False)
    assert CLS[2](2, 2, 3, format="cp", rank=0.01).rank == 1  # never below 1
    for bad in (0.0, 1.0, 1.5, -0.1):
        with pytest.raises(ConfigError, match="fraction"):
            CLS[2](4, 4, 3, format="cp", rank=bad)


def test_layer_params_gives_every_layer_the_same_factor_budget():
    from wavesurrogate.nn import registry

    budget = 500
    model = registry.build("cnn2d", {"n_in": 4, "n_out": 1, "width": 8, "depth": 2, "kernel_size": 3,
                                     "conv": {"format": "cp", "layer_params": budget}})
    layers = [m for m in model.modules() if isinstance(m, TensorizedConv2d)]
    assert len(layers) == 15
    for m in layers:
        per_rank = m.in_channels + m.out_channels + 6
        assert m.rank == budget // per_rank  # the largest rank within the budget
        assert m.rank * per_rank <= budget < (m.rank + 1) * per_rank
    ranks = {(m.in_channels, m.out_channels): m.rank for m in layers}
    assert ranks[(8, 8)] == 500 // 22 and ranks[(32, 32)] == 500 // 70  # narrow layers get larger ranks
    with pytest.raises(ConfigError, match="only the cp format"):
        TensorizedConv2d(4, 4, 3, format="tucker", rank=2, layer_params=100)
    with pytest.raises(ConfigError, match="either rank or layer_params"):
        registry.build("cnn2d", {"conv": {"format": "cp", "rank": 3, "layer_params": 100}})
    with pytest.raises(ConfigError, match="not dense"):
        registry.build("cnn2d", {"conv": {"format": "dense", "layer_params": 100}})
    with pytest.raises(ConfigError, match="true, false or 'auto'"):
        registry.build("cnn2d", {"conv": {"format": "cp", "rank": 3, "recompute": "false"}})


@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize("fmt,rank", [("dense", None), ("cp", 3), ("separable", 2), ("tucker", 2)])
def test_gradcheck_float64(dim, fmt, rank):
    g = torch.Generator().manual_seed(2)
    layer = CLS[dim](
        2,
        2,
        (3, 2, 2)[:dim],
        stride=(2, 1, 1)[:dim],
        padding=1,
        padding_mode="reflect",
        format=fmt,
        rank=rank,
        dtype=torch.float64,
        generator=g,
    )
    x = torch.randn(1, 2, *(5, 4, 3)[:dim], dtype=torch.float64, generator=g, requires_grad=True)
    names = [n for n, _ in layer.named_parameters()]

    def f(x, *ps):
        return torch.func.functional_call(layer, dict(zip(names, ps, strict=True)), (x,))

    inputs = (x, *[p.detach().clone().requires_grad_() for p in layer.parameters()])
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-6, fast_mode=True)


@pytest.mark.parametrize("dim", [2, 3])
def test_parameter_counts_match_closed_forms(dim):
    o, i, r = 7, 5, 3
    k = (3, 5, 2)[:dim]
    kk, ks = math.prod(k), sum(k)
    expected = {
        ("dense", None): o * i * kk,
        ("cp", r): r * (o + i + ks),
        ("separable", r): o * i * r * ks,
        ("tucker", r): r * r * kk + o * r + i * r + sum(kd * kd for kd in k),
        ("tucker", (2, 4, 1, 2, 1)[: 2 + dim]): 2 * 4 * math.prod((1, 2, 1)[:dim])
        + o * 2
        + i * 4
        + sum(kd * rd for kd, rd in zip(k, (1, 2, 1), strict=False)),
    }
    for (fmt, rank), n in expected.items():
        for bias in (True, False):
            layer = CLS[dim](i, o, k, format=fmt, rank=rank, bias=bias)
            want = n + (o if bias else 0)
            assert layer.count_parameters() == want, (fmt, rank, bias)
            assert count_parameters(fmt, i, o, k, rank, bias) == want


def test_default_variance_formula_is_pytorchs():
    conv = nn.Conv2d(16, 8, 5)  # PyTorch's own default init
    torch.testing.assert_close(conv.weight.var().item(), default_kernel_variance(16 * 25), rtol=0.05, atol=0)


@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize(
    "fmt,rank", [("dense", None), ("cp", 4), ("cp", 16), ("separable", 1), ("separable", 3), ("tucker", 3)]
)
def test_init_variance_matches_pytorch_default(dim, fmt, rank):
    in_ch, k, n_seeds = 6, 3, 200
    target = default_kernel_variance(in_ch * k**dim)
    second_moments = []
    for seed in range(n_seeds):
        g = torch.Generator().manual_seed(seed)
        layer = CLS[dim](in_ch, 5, k, format=fmt, rank=rank, generator=g)
        with torch.no_grad():
            second_moments.append(layer.reconstruct().pow(2).mean().item())
    assert sum(second_moments) / n_seeds == pytest.approx(target, rel=0.1)
    # every factor's own variance equals the closed form (uniform: var = bound^2 / 3)
    for name, var in factor_variances(fmt, in_ch, 5, (k,) * dim, rank).items():
        p = dict(layer.named_parameters())[name]
        assert p.abs().max().item() <= math.sqrt(3 * var) + 1e-7


def test_bias_init_like_pytorch():
    layer = TensorizedConv2d(10, 64, 3, format="cp", rank=4, generator=torch.Generator().manual_seed(0))
    bound = 1 / math.sqrt(90)
    assert layer.bias.abs().max().item() <= bound
    assert layer.bias.abs().max().item() > 0.8 * bound


@pytest.mark.parametrize("dim", [2, 3])
def test_from_dense_full_rank_reproduces_dense_layer(dim):
    g = torch.Generator().manual_seed(3)
    torch.manual_seed(3)
    conv = REF[dim](3, 4, 3, padding=1, padding_mode="reflect", stride=(1, 2, 1)[:dim]).double()
    x = torch.randn(2, 3, *(7, 8, 6)[:dim], dtype=torch.float64, generator=g)
    ref = conv(x)
    full = {
        "dense": None,
        "separable": 3 if dim == 2 else 9,
        "tucker": (4, 3, 3, 3, 3)[: 2 + dim],
        "cp": math.prod((4, 3) + (3,) * dim) // 4,  # prod(dims) / max(dims): an upper bound of the CP rank
    }
    for fmt, rank in full.items():
        layer = from_dense(conv, rank, fmt, generator=g)
        assert isinstance(layer, CLS[dim]) and layer.padding_mode == "reflect"
        torch.testing.assert_close(layer(x), ref, atol=1e-6, rtol=1e-6, msg=fmt)


def test_from_dense_cp_recovers_an_exact_low_rank_kernel():
    g = torch.Generator().manual_seed(4)
    conv = nn.Conv2d(6, 5, 3, padding=1).double()
    factors = [torch.randn(n, 3, dtype=torch.float64, generator=g) for n in (5, 6, 3, 3)]
    with torch.no_grad():
        conv.weight.copy_(torch.einsum("or,ir,yr,xr->oiyx", *factors))
    layer = from_dense(conv, 3, "cp")
    rel = torch.linalg.norm(layer.reconstruct() - conv.weight) / torch.linalg.norm(conv.weight)
    assert rel < 1e-6


def test_from_dense_error_decreases_with_rank():
    torch.manual_seed(5)
    conv = nn.Conv3d(2, 3, 3).double()
    for fmt, ranks in (("separable", (1, 3, 6, 9)), ("tucker", (1, 2, 3)), ("cp", (2, 8, 54))):
        errs = []
        for r in ranks:
            w = from_dense(conv, r, fmt).reconstruct()
            errs.append((torch.linalg.norm(w - conv.weight) / torch.linalg.norm(conv.weight)).item())
        assert all(b < a for a, b in zip(errs, errs[1:], strict=False)), (fmt, errs)
        assert errs[-1] < 1e-6, (fmt, errs)


def test_bad_arguments_raise_config_errors():
    with pytest.raises(ConfigError, match="format"):
        TensorizedConv2d(2, 2, 3, format="tt", rank=2)
    with pytest.raises(ConfigError, match="rank"):
        TensorizedConv2d(2, 2, 3, format="cp", rank=0)
    with pytest.raises(ConfigError, match="groups"):
        TensorizedConv2d(2, 2, 3, groups=2)
    with pytest.raises(ConfigError, match="padding_mode"):
        TensorizedConv2d(2, 2, 3, padding_mode="mirror")
    with pytest.raises(ConfigError, match="same"):
        TensorizedConv2d(2, 2, 3, stride=2, padding="same")
    with pytest.raises(ConfigError, match="from_dense"):
        from_dense(nn.Linear(2, 2), 2)


@pytest.mark.parametrize("dim", [2, 3])
def test_cp_equals_tltorch_factorized_conv_with_same_factors(dim):
    tltorch = pytest.importorskip("tltorch", reason="tensorly-torch not installed or fails to import")
    g = torch.Generator().manual_seed(6)
    ours = CLS[dim](
        4, 6, 3, stride=(2, 1, 1)[:dim], padding=1, dilation=(1, 2, 1)[:dim], format="cp", rank=5, generator=g
    )
    theirs = tltorch.FactorizedConv(
        4,
        6,
        3,
        order=dim,
        rank=5,
        factorization="cp",
        implementation="factorized",
        stride=(2, 1, 1)[:dim],
        padding=1,
        dilation=(1, 2, 1)[:dim],
        bias=True,
    )
    with torch.no_grad():
        theirs.weight.weights.fill_(1.0)
        theirs.weight.factors[0].copy_(ours.out_factor)
        theirs.weight.factors[1].copy_(ours.in_factor)
        for f, p in zip(theirs.weight.factors[2:], ours.spatial_factors, strict=True):
            f.copy_(p)
        theirs.bias.copy_(ours.bias)
    x = torch.randn(2, 4, *(9, 8, 7)[:dim], generator=g)
    torch.testing.assert_close(ours(x), theirs(x), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours.reconstruct(), theirs.weight.to_tensor(), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("fmt", ["separable", "tucker"])
def test_inference_kernel_cache_follows_parameter_updates(fmt):
    g = torch.Generator().manual_seed(7)
    layer = TensorizedConv2d(3, 4, 3, padding=1, format=fmt, rank=2, generator=g)
    x = torch.randn(2, 3, 6, 6, generator=g)
    opt = torch.optim.SGD(layer.parameters(), lr=0.5)
    with torch.no_grad():
        before = layer(x)
        torch.testing.assert_close(layer(x), before)  # second call served from the cache
    layer(x).pow(2).sum().backward()
    opt.step()  # in-place update of every factor
    with torch.inference_mode():
        after = layer(x)
    assert not torch.allclose(after, before)
    torch.testing.assert_close(after, _reference(layer, 2)(x), atol=1e-5, rtol=1e-5)
    layer.load_state_dict(TensorizedConv2d(3, 4, 3, padding=1, format=fmt, rank=2).state_dict())
    with torch.no_grad():
        torch.testing.assert_close(layer(x), _reference(layer, 2)(x), atol=1e-5, rtol=1e-5)

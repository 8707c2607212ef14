"""Graph norm–activation layers (nn/layers/normact.py): built-ins against their direct formulas, refusals."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from wavesurrogate.errors import ConfigError
from wavesurrogate.nn import registry
from wavesurrogate.nn.layers.normact import BUILTIN, NormAct, parse_graph

EPS = 1e-5


def _layer(name: str, c: int, seed: int = 0) -> NormAct:
    """The built-in ``name`` with random per-channel parameters (so that γ, β and v1 matter)."""
    na = NormAct(BUILTIN[name], c)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in na.params.values():
            p.copy_(torch.randn(c, generator=g) * 0.5 + 1.0)
    return na


def _pc(p: torch.Tensor, nd: int) -> torch.Tensor:
    return p.reshape(1, -1, *[1] * (nd - 2))


@pytest.mark.parametrize("shape", [(4, 16, 9, 7), (3, 8, 4, 5, 6)])
def test_evonorm_b0_matches_its_formula(shape: tuple[int, ...]) -> None:
    """B0: x / max(√(var_batch(x) + ε), v1·x + √(var_instance(x) + ε)) · γ + β; eval uses the running var."""
    x = torch.randn(*shape, dtype=torch.float64) * 3 + 1
    na = _layer("evonorm_b0", shape[1]).double()
    sp = tuple(range(2, x.ndim))
    vb = x.var((0, *sp), unbiased=False, keepdim=True)
    vi = x.var(sp, unbiased=False, keepdim=True)
    p = {k: _pc(v, x.ndim) for k, v in na.params.items()}

    def direct(var_b: torch.Tensor) -> torch.Tensor:
        den = torch.maximum(torch.sqrt(var_b + EPS), p["v1"] * x + torch.sqrt(vi + EPS))
        return x / den * p["gamma"] + p["beta"]

    torch.testing.assert_close(na.train()(x), direct(vb), rtol=1e-12, atol=1e-12)
    running = 0.9 * 1.0 + 0.1 * vb  # momentum 0.1 from the initial running variance 1
    torch.testing.assert_close(na.eval()(x), direct(running), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("c", [16, 12])
def test_evonorm_s0_matches_its_formula(c: int) -> None:
    """S0: x·σ(v1·x) / √(group_var(x) + ε) · γ + β, groups gcd(8, C)."""
    x = torch.randn(3, c, 6, 5, dtype=torch.float64) * 2 - 0.5
    na = _layer("evonorm_s0", c).double()
    g = {16: 8, 12: 4}[c]
    var_g = x.reshape(3, g, -1).var(-1, unbiased=False)  # [B, g]
    var_c = var_g.repeat_interleave(c // g, dim=1)[:, :, None, None]
    p = {k: _pc(v, 4) for k, v in na.params.items()}
    want = x * torch.sigmoid(p["v1"] * x) / torch.sqrt(var_c + EPS) * p["gamma"] + p["beta"]
    torch.testing.assert_close(na(x), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape", [(2, 16, 8, 8), (2, 6, 3, 4, 5)])
def test_gn_gelu_graph_is_torch_groupnorm_then_gelu(shape: tuple[int, ...]) -> None:
    c = shape[1]
    na = _layer("gn_gelu", c)
    gn = torch.nn.GroupNorm(min(8, c) if c % 8 == 0 else 2, c)
    with torch.no_grad():
        gn.weight.copy_(na.params["gamma"])
        gn.bias.copy_(na.params["beta"])
    x = torch.randn(*shape) * 4 + 2
    torch.testing.assert_close(na(x), F.gelu(gn(x)), rtol=1e-5, atol=2e-6)


def test_identity_and_none_gelu() -> None:
    x = torch.randn(2, 4, 5, 5)
    assert torch.equal(NormAct(BUILTIN["identity"], 4)(x), x)
    assert torch.equal(NormAct(BUILTIN["none_gelu"], 4)(x), F.gelu(x))
    assert not list(NormAct(BUILTIN["identity"], 4).parameters())


def test_conv_block_with_a_graph_norm_is_conv_normact_conv_normact_plus_skip() -> None:
    """cnn2d's block with gn_gelu computes x + GELU(GN(conv2(GELU(GN(conv1 x))))) (independent wiring)."""
    torch.manual_seed(0)
    m = registry.build("cnn2d", {"width": 8, "depth": 0, "norm": "gn_gelu"})
    block = m.enc[0]
    x = torch.randn(2, 8, 10, 10)
    c1, n1, c2, n2 = block.body

    def gn(na: NormAct, h: torch.Tensor) -> torch.Tensor:
        return F.gelu(F.group_norm(h, 8, na.params["gamma"], na.params["beta"], EPS))

    torch.testing.assert_close(block(x), x + gn(n2, c2(gn(n1, c1(x)))), rtol=1e-5, atol=1e-5)


def test_string_norms_keep_their_modules() -> None:
    """Existing runs (norm none / group / batch) build exactly the modules they did: same keys, same init."""
    torch.manual_seed(3)
    m = registry.build("cnn2d", {"width": 8, "depth": 1, "norm": "group"})
    body = m.enc[0].body
    assert [type(b).__name__ for b in body] == ["Conv2d", "GroupNorm", "Activation", "Conv2d", "GroupNorm"]
    torch.manual_seed(3)
    lift = torch.nn.Conv2d(5, 8, 3, padding=1)  # the first module built: the same draw as before
    assert torch.equal(lift.weight, m.lift[0].weight)
    torch.manual_seed(3)
    m2 = registry.build("cnn2d", {"width": 8, "depth": 1, "norm": "group"})
    pairs = zip(m.state_dict().values(), m2.state_dict().values(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)
    assert not any("running" in k or "params" in k for k in m.state_dict())


def test_field_decoder_without_norm_is_unchanged_and_takes_a_graph() -> None:
    kw = {"n_params": 2, "n_frames": 3, "ny": 16, "nx": 16, "width": 8, "n_up": 2}
    torch.manual_seed(0)
    old = registry.build("field_decoder", kw)
    assert old.norms is None and old.init_kwargs["norm"] is None
    torch.manual_seed(0)
    s0 = registry.build("field_decoder", {**kw, "norm": "evonorm_s0"})
    assert torch.equal(old.embed.weight, s0.embed.weight)  # same init order before the new layers
    assert tuple(s0.field(torch.randn(5, 2)).shape) == (5, 3, 16, 16)


GOOD = copy.deepcopy(BUILTIN["evonorm_s0"])


@pytest.mark.parametrize("mutate, words", [
    (lambda g: g["nodes"]["sg"].update(op="log"), ["unknown primitive", "'log'"]),
    (lambda g: g["nodes"]["v1x"].update({"in": ["v1", "num"]}), ["cycle", "v1x -> num -> sg -> v1x"]),
    (lambda g: g.update(out="vg"), ["shape mismatch", "'vg'", "[B, C, 1]"]),
    (lambda g: g["nodes"].update(cm={"op": "mean", "in": ["x"], "axes": "channel"},
                                 gv={"op": "var", "in": ["cm"], "axes": "group"},
                                 out2={"op": "add", "in": ["out", "gv"]}) or g.update(out="out2"),
     ["shape mismatch", "'gv'", "[B, 1, *S]"]),
    (lambda g: g["nodes"]["sg"].update({"in": ["v1x", "x"]}), ["'sigmoid' takes 1 inputs"]),
    (lambda g: g["nodes"]["sg"].update({"in": ["nowhere"]}), ["undefined input", "'nowhere'"]),
    (lambda g: g["nodes"]["vg"].update(axes="time"), ["axes must be one of"]),
    (lambda g: g["nodes"]["vg"].update(eps=1e-5), ["unknown attributes", "eps"]),
    (lambda g: g["nodes"]["sg"].update({"in": [["x"]]}), ["inputs are names"]),
    (lambda g: g.update(out=["out"]), ["must be strings"]),
])  # fmt: skip
def test_bad_graphs_are_refused_with_one_line(mutate, words) -> None:  # noqa: ANN001
    g = copy.deepcopy(GOOD)
    mutate(g)
    with pytest.raises(ConfigError) as exc:
        parse_graph(g)
    msg = str(exc.value)
    assert "\n" not in msg and all(w in msg for w in words), msg


def test_groups_must_divide_the_channels() -> None:
    g = copy.deepcopy(GOOD)
    g["nodes"]["vg"]["groups"] = 3
    NormAct(g, 12)
    with pytest.raises(ConfigError, match="3 groups, which do not divide 8 channels"):
        NormAct(g, 8)

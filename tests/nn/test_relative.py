"""``relative_operator``: exact translation invariance, its features against the definitions, the DeepONet
split written out, gradients, grid = pointwise, kwargs round trip, bad kwargs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wavesurrogate.errors import ConfigError, UserError
from wavesurrogate.nn import registry

# identity map from normalised params to the scaled frame: source x, y scaled = params[:, 1], params[:, 0]
UNIT = dict(coord_min=[-1.0, -1.0, 0.0], coord_max=[1.0, 1.0, 2.0], source_params=[1, 0],
            param_mean=[0.0, 0.0, 0.0], param_std=[1.0, 1.0, 1.0], c_ref_mps=1.0, f_max_hz=2.0)
PHYS = dict(coord_min=[0.0, 0.5, 0.0], coord_max=[4.0, 2.5, 0.02], source_params=[0, 2],
            param_mean=[2.0, 700.0, 1.5], param_std=[0.5, 100.0, 0.4], c_ref_mps=343.0, f_max_hz=500.0)


def dyadic(*shape, gen):
    """Values on a 1/64 grid in [-0.5, 0.5]: sums and differences of them are exact in float32."""
    return torch.randint(-32, 33, shape, generator=gen).float() / 64


@pytest.mark.parametrize(
    "kw", [{}, {"fourier": "physical", "n_fourier": 9, "activation": "sine", "modified": True},
           {"n_basis": 1}]
)
def test_shifting_source_and_points_together_leaves_the_output_identical(kw):
    torch.manual_seed(0)
    m = registry.build("relative_operator", dict(n_params=3, geometry=UNIT, **kw))
    g = torch.Generator().manual_seed(1)
    params, coords = dyadic(4, 3, gen=g), dyadic(4, 50, 3, gen=g)
    d = dyadic(4, 2, gen=g)  # per-sample shift (x, y)
    shifted_p = params.clone()
    shifted_p[:, 1] += d[:, 0]
    shifted_p[:, 0] += d[:, 1]
    shifted_c = coords.clone()
    shifted_c[..., :2] += d.unsqueeze(1)
    assert torch.equal(m(params, coords), m(shifted_p, shifted_c))
    other = params.clone()
    other[:, 2] += 0.5  # the non-source parameter does change the field
    assert not torch.allclose(m(params, coords), m(other, coords))
    absolute = registry.build("relative_operator", dict(n_params=3, geometry=UNIT, absolute=True, **kw))
    assert not torch.allclose(absolute(params, coords), absolute(shifted_p, shifted_c))


def test_features_and_output_match_the_definitions():
    torch.manual_seed(1)
    m = registry.build("relative_operator", dict(n_params=3, geometry=PHYS, absolute=True, fourier="physical",
                                                 n_fourier=3)).double()
    params, coords = torch.randn(2, 3, dtype=torch.float64), torch.rand(2, 6, 3, dtype=torch.float64) * 2 - 1
    phys = params.numpy() * [0.5, 100.0, 0.4] + [2.0, 700.0, 1.5]
    src = np.stack([(phys[:, 0] - 0.0) / 2.0 - 1, (phys[:, 2] - 0.5) / 1.0 - 1], 1)  # scaled frame
    c = coords.numpy()
    rel = np.concatenate([c[..., :2] - src[:, None], c[..., 2:]], -1)
    k = 250.0 / 343.0  # f_max / 2 over c, cycles per metre; half extents 2 m, 1 m, 0.01 s (c·t: 3.43 m)
    phase = 2 * np.pi * np.stack([k * 2.0 * rel[..., 0], k * 1.0 * rel[..., 1], k * 3.43 * rel[..., 2]], -1)
    want = np.concatenate([rel, c[..., :2], np.cos(phase), np.sin(phase)], -1)
    feats = m.features(coords, m.source(params))
    np.testing.assert_allclose(feats.numpy(), want, atol=2e-6)  # the frequency buffer is float32
    with torch.no_grad():
        tau = m.trunk(feats)  # [B, Q, p]
        b = m.branch(params[:, [1]])  # the non-source parameter only
        manual = (tau * b[:, None, :]).sum(-1) + m.bias
        assert torch.allclose(m(params, coords), manual, rtol=1e-12, atol=1e-12)


def test_constant_branch_with_one_basis_is_a_plain_mlp_of_relative_coordinates():
    torch.manual_seed(2)
    m = registry.build("relative_operator", dict(n_params=2, geometry={**UNIT, "source_params": [0, 1],
                       "param_mean": [0.0, 0.0], "param_std": [1.0, 1.0]}, n_basis=1))
    assert m.branch is None and m.coeffs.shape == (1,)
    p, c = torch.randn(3, 2), torch.rand(3, 9, 3)
    rel = torch.cat([c[..., :2] - p.unsqueeze(1), c[..., 2:]], -1)
    with torch.no_grad():
        assert torch.allclose(m(p, c), m.trunk(rel)[..., 0] * m.coeffs[0] + m.bias, atol=1e-6)


def test_gradients_reach_every_parameter_and_grid_equals_pointwise():
    torch.manual_seed(3)
    m = registry.build("relative_operator", dict(n_params=3, geometry=PHYS, fourier="gaussian", n_fourier=8))
    params, coords = torch.randn(2, 3), torch.rand(2, 40, 3) * 2 - 1
    m(params, coords).square().mean().backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and bool(p.grad.abs().sum() > 0), name
    x, y, t = torch.linspace(-1, 1, 5), torch.linspace(-1, 1, 4), torch.linspace(-1, 1, 3)
    with torch.no_grad():
        grid = m.predict_grid(params, x, y, t, chunk=7)
        tt, yy, xx = torch.meshgrid(t, y, x, indexing="ij")
        pts = torch.stack([xx, yy, tt], -1).reshape(-1, 3)
        assert grid.shape == (2, 3, 4, 5)
        assert torch.allclose(grid.reshape(2, -1), m(params, pts), atol=1e-6)


def test_kwargs_round_trip_through_the_registry():
    torch.manual_seed(4)
    m = registry.build("relative_operator", dict(n_params=3, geometry=PHYS, absolute=True, activation="sine",
                                                 init="siren", fourier="physical", n_fourier=6))
    again = registry.build("relative_operator", registry.describe(m)["kwargs"])
    again.load_state_dict(m.state_dict())
    p, c = torch.randn(2, 3), torch.rand(11, 3)
    assert torch.equal(m(p, c), again(p, c))
    assert registry.entry("relative_operator").capabilities["geometry"] is True
    assert registry.entry("relative_operator").interface == registry.POINTS


@pytest.mark.parametrize("kw, field", [
    ({"geometry": None}, "model.geometry"),
    ({"absolute": 1}, "model.absolute"),
    ({"fourier": "random"}, "model.fourier"),
    ({"width": 0}, "model.width"),
    ({"fourier": "physical", "n_fourier": 4}, "model.n_fourier"),
    ({"activation": "swish"}, "model.activation"),
])  # fmt: skip
def test_bad_kwargs_are_one_line_config_errors(kw, field):
    """Each is one line naming the field: the model's own check (``model.<field>``), or, for a value of the
    wrong type, the registry's check against the constructor's annotations (``kwargs.<field>``)."""
    with pytest.raises(UserError) as err:
        registry.build("relative_operator", {"n_params": 3, "geometry": PHYS, **kw})
    msg, key = str(err.value), field.split(".", 1)[1]
    assert msg.startswith(field) or f"(kwargs.{key}: " in msg, msg
    assert "\n" not in msg


def test_radial_inputs_give_the_distance_in_metres_and_rotation_invariance():
    torch.manual_seed(2)
    m = registry.build("relative_operator", dict(n_params=3, geometry=PHYS, inputs="radial")).double()
    params, coords = torch.randn(2, 3, dtype=torch.float64), torch.rand(2, 5, 3, dtype=torch.float64) * 2 - 1
    phys = params.numpy() * [0.5, 100.0, 0.4] + [2.0, 700.0, 1.5]
    c = coords.numpy()
    xm, ym = (c[..., 0] + 1) * 2.0, (c[..., 1] + 1) * 1.0 + 0.5  # half extents 2 m and 1 m
    r = np.hypot(xm - phys[:, :1], ym - phys[:, 2:]) / 2.0 - 1.0  # over the larger half-extent, minus 1
    want = np.stack([r, c[..., 2]], -1)
    np.testing.assert_allclose(m.features(coords, m.source(params)).numpy(), want, atol=1e-6)
    sq = registry.build("relative_operator", dict(n_params=3, geometry=UNIT, inputs="radial"))
    g = torch.Generator().manual_seed(3)
    p, q = dyadic(3, 3, gen=g), dyadic(3, 40, 3, gen=g)
    src = torch.stack([p[:, 1], p[:, 0]], 1).unsqueeze(1)
    d = q[..., :2] - src
    rot = q.clone()  # each point turned by 90 degrees about its source
    rot[..., 0], rot[..., 1] = src[..., 0] - d[..., 1], src[..., 1] + d[..., 0]
    assert torch.allclose(sq(p, q), sq(p, rot), atol=1e-6)
    with pytest.raises(ConfigError, match="model.inputs"):
        registry.build("relative_operator", dict(n_params=3, geometry=UNIT, inputs="polar"))


def test_radial_table_matches_the_operator_at_nodes_and_between_them():
    from wavesurrogate.nn.models.relative import RadialTable

    torch.manual_seed(4)
    op = registry.build("relative_operator", dict(n_params=2, geometry=dict(UNIT, source_params=[0, 1],
                        param_mean=[0.0, 0.0], param_std=[1.0, 1.0]), inputs="radial", n_basis=1, width=16,
                        activation="sine", init="siren")).eval()
    table = RadialTable(op, n_r=4097, n_t=2049)
    g = torch.Generator().manual_seed(5)
    params, coords = torch.rand(3, 2, generator=g) - 0.5, torch.rand(3, 200, 3, generator=g) * 2 - 1
    with torch.no_grad():
        want, got = op(params, coords), table(params, coords)
    # bilinear interpolation error ≤ h²/8 · max|f''| per axis: small against the field's scale (~1)
    assert (got - want).abs().max() < 2e-3 * want.abs().max()
    # on a node of the lattice (source at the origin, point on the x axis at a node radius and node time)
    p0 = torch.zeros(1, 2)
    r_node, t_node = table.r_max * 100 / 4096, -1.0 + 2.0 * 7 / 2048
    node = torch.tensor([[[r_node, 0.0, t_node]]])
    with torch.no_grad():
        assert torch.allclose(table(p0, node), op(p0, node), atol=1e-5)
    with pytest.raises(ValueError, match="radial_table"):
        RadialTable(registry.build("relative_operator", dict(n_params=3, geometry=UNIT)))

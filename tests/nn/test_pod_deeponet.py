"""``pod_deeponet``: a basis from ``pod_modes`` of synthetic fields plus least-squares branch weights
reproduces fields of the span; interpolation is exact at nodes and trilinear between them; set_basis checks
shapes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wavesurrogate.errors import ConfigError
from wavesurrogate.metrics.pod import pod_modes
from wavesurrogate.nn import registry

NT, NY, NX, N, R = 5, 6, 7, 12, 4


def _fields(gen):
    """N fields = mean + Σ_{j<R} a_ij φ_j: a rank-R span around a mean."""
    mean = torch.randn(NT, NY, NX, generator=gen, dtype=torch.float64)
    phi = torch.randn(R, NT * NY * NX, generator=gen, dtype=torch.float64)
    a = torch.randn(N, R, generator=gen, dtype=torch.float64)
    return mean, (a @ phi).reshape(N, NT, NY, NX) + mean


def _fit_last_layer(model, params, targets):
    """Least squares for the branch's output layer: hidden features [H, 1] W = targets."""
    seen = {}
    hook = model.branch.out.register_forward_hook(lambda m, inp, out: seen.update(h=inp[0]))
    with torch.no_grad():
        model.branch(params)
    hook.remove()
    h = torch.cat([seen["h"], torch.ones(params.shape[0], 1, dtype=params.dtype)], 1)
    w = torch.linalg.lstsq(h, targets).solution  # [width+1, p]
    with torch.no_grad():
        model.branch.out.weight.copy_(w[:-1].T)
        model.branch.out.bias.copy_(w[-1])


def _model(p=R, **kw):
    torch.manual_seed(0)
    return registry.build("pod_deeponet", dict(n_params=3, n_frames=NT, ny=NY, nx=NX, n_basis=p,
                                               branch_width=16, **kw)).double()


def test_basis_from_pod_modes_and_least_squares_branch_reproduce_fields_in_the_span():
    g = torch.Generator().manual_seed(0)
    _, fields = _fields(g)
    mean = fields.mean(0)
    sigma, v = pod_modes((fields - mean).reshape(N, -1))
    assert v.shape[1] == R  # centred, the span has rank R
    m = _model()
    m.set_basis(mean, v.T.reshape(R, NT, NY, NX))
    params = torch.randn(N, 3, generator=g, dtype=torch.float64)
    coeffs = (fields - mean).reshape(N, -1) @ v  # exact coordinates of each field in the basis
    _fit_last_layer(m, params, coeffs)  # 17 unknowns per mode, 12 equations: an exact fit
    with torch.no_grad():
        pred = m.predict_grid(params)
        assert torch.allclose(pred, fields, rtol=0, atol=1e-9)
        t, y, x = (torch.linspace(-1, 1, n, dtype=torch.float64) for n in (NT, NY, NX))
        assert torch.allclose(m.predict_grid(params, x, y, t), fields, atol=1e-9)  # nodes read exactly
        tt, yy, xx = torch.meshgrid(t, y, x, indexing="ij")
        nodes = torch.stack([xx, yy, tt], -1).reshape(-1, 3)
        assert torch.allclose(m(params, nodes), fields.reshape(N, -1), atol=1e-9)
        assert torch.allclose(m(params[:2], nodes.expand(2, -1, -1)), fields[:2].reshape(2, -1), atol=1e-9)


def test_off_node_values_are_trilinear_interpolation():
    g = torch.Generator().manual_seed(1)
    mean, fields = _fields(g)
    m = _model(p=2)
    modes = torch.randn(2, NT, NY, NX, generator=g, dtype=torch.float64)
    m.set_basis(mean, modes)
    params = torch.randn(3, 3, generator=g, dtype=torch.float64)
    pts = torch.rand(40, 3, generator=g, dtype=torch.float64) * 2 - 1
    with torch.no_grad():
        got = m(params, pts).numpy()
        grid = m.predict_grid(params).numpy()  # [B, nt, ny, nx]
    for q, (x, y, t) in enumerate(pts.numpy()):
        fx, fy, ft = (x + 1) / 2 * (NX - 1), (y + 1) / 2 * (NY - 1), (t + 1) / 2 * (NT - 1)
        ix, iy, it = (min(int(np.floor(f)), n - 2) for f, n in ((fx, NX), (fy, NY), (ft, NT)))
        wx, wy, wt = fx - ix, fy - iy, ft - it
        want = 0.0
        for dt_, at in ((0, 1 - wt), (1, wt)):
            for dy_, ay in ((0, 1 - wy), (1, wy)):
                for dx_, ax in ((0, 1 - wx), (1, wx)):
                    want = want + at * ay * ax * grid[:, it + dt_, iy + dy_, ix + dx_]
        np.testing.assert_allclose(got[:, q], want, rtol=1e-10, atol=1e-12)


def test_basis_travels_with_the_state_dict_and_kwargs_rebuild():
    m = _model(p=2)
    g = torch.Generator().manual_seed(2)
    m.set_basis(torch.randn(NT, NY, NX, generator=g), torch.randn(2, NT, NY, NX, generator=g))
    again = registry.build("pod_deeponet", registry.describe(m)["kwargs"]).double()
    again.load_state_dict(m.state_dict())
    p, c = torch.randn(2, 3, dtype=torch.float64), torch.rand(9, 3, dtype=torch.float64)
    assert torch.equal(m(p, c), again(p, c))
    assert {"mean", "modes"} <= set(m.state_dict())
    assert registry.entry("pod_deeponet").capabilities["onnx"] is False


def test_set_basis_and_kwargs_are_checked():
    m = _model(p=2)
    with pytest.raises(ValueError, match=r"expected mean \[5, 6, 7\] and modes \[2, 5, 6, 7\]"):
        m.set_basis(torch.zeros(NT, NY, NX), torch.zeros(3, NT, NY, NX))
    with pytest.raises(ValueError, match="finite"):
        m.set_basis(torch.full((NT, NY, NX), float("nan")), torch.zeros(2, NT, NY, NX))
    with pytest.raises(ConfigError, match=r"^model.nx"):
        registry.build("pod_deeponet", dict(n_params=3, n_frames=NT, ny=NY, nx=1))
    with pytest.raises(ConfigError, match=r"^model.n_basis"):
        registry.build("pod_deeponet", dict(n_params=3, n_frames=NT, ny=NY, nx=NX, n_basis=0))


def test_the_stacked_basis_is_built_once_and_follows_changes():
    from wavesurrogate.nn import registry

    m = registry.build("pod_deeponet", dict(n_params=2, n_frames=3, ny=4, nx=5, n_basis=2))
    g = torch.Generator().manual_seed(0)
    m.set_basis(torch.randn(3, 4, 5, generator=g), torch.randn(2, 3, 4, 5, generator=g))
    v = m.basis_volume()
    assert m.basis_volume() is v  # no copy per query
    assert torch.equal(v[0, 0], m.mean) and torch.equal(v[0, 1:], m.modes)
    m.set_basis(torch.zeros(3, 4, 5), torch.ones(2, 3, 4, 5))  # in place: the cache follows
    assert torch.equal(m.basis_volume()[0, 1:], torch.ones(2, 3, 4, 5))
    other = registry.build("pod_deeponet", dict(n_params=2, n_frames=3, ny=4, nx=5, n_basis=2))
    assert torch.equal(other.basis_volume(), torch.zeros(1, 3, 3, 4, 5))  # built before loading
    other.load_state_dict(m.state_dict())
    assert torch.equal(other.basis_volume()[0, 1:], torch.ones(2, 3, 4, 5))
    assert m.double().basis_volume().dtype == torch.float64

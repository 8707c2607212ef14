"""The volumetric field_decoder (nz given): exact at grid nodes and time samples, linear in between, CP
kernels as 3k one-way filters (TensorizedConv3d), and the 2-D decoder unchanged."""

from __future__ import annotations

import torch

from wavesurrogate.nn.layers.tensorized.conv import TensorizedConv3d
from wavesurrogate.nn.models.decoders import FieldDecoder


def _node_coords(ix, iy, iz, it, n, nt):
    s = lambda i, m: -1.0 + 2.0 * i / (m - 1)  # noqa: E731
    return torch.tensor([[s(ix, n[2]), s(iy, n[1]), s(iz, n[0]), s(it, nt)]], dtype=torch.float32)


def test_volumetric_decoder_samples_its_field_exactly_at_nodes_and_linearly_in_time():
    torch.manual_seed(0)
    m = FieldDecoder(3, n_frames=5, ny=6, nx=7, nz=4, width=4, latent=2, n_up=1).eval()
    p = torch.randn(2, 3)
    with torch.no_grad():
        f = m.field(p)
        assert f.shape == (2, 5, 4, 6, 7)
        c = torch.cat([_node_coords(6, 2, 3, 4, (4, 6, 7), 5), _node_coords(0, 5, 1, 1, (4, 6, 7), 5)])
        got = m(p, c)
        torch.testing.assert_close(got, torch.stack([f[:, 4, 3, 2, 6], f[:, 1, 1, 5, 0]], dim=1))
        half = c.clone()
        half[:, 3] = half[:, 3] - 1.0 / (5 - 1)  # halfway between time samples 3 and 4 (and 0 and 1)
        want = 0.5 * (f[:, 3, 3, 2, 6] + f[:, 4, 3, 2, 6]), 0.5 * (f[:, 0, 1, 5, 0] + f[:, 1, 1, 5, 0])
        torch.testing.assert_close(m(p, half), torch.stack(want, dim=1))


def test_cp_decoder_uses_one_way_filters_and_fewer_weights():
    dense = FieldDecoder(3, n_frames=8, ny=8, nx=8, nz=8, width=16, latent=2, n_up=2)
    cp = FieldDecoder(3, n_frames=8, ny=8, nx=8, nz=8, width=16, latent=2, n_up=2,
                      conv={"format": "cp", "rank": 4})
    convs = [mod for mod in cp.modules() if isinstance(mod, TensorizedConv3d)]
    assert len(convs) == 4
    for c in convs:  # rank R: R (in + out) + 3 k R numbers instead of in out k^3
        assert [tuple(f.shape) for f in c.spatial_factors] == [(3, 4)] * 3
        assert c.count_parameters() == 4 * (c.in_channels + c.out_channels + 3 * 3) + c.out_channels
    n = lambda mod: sum(p.numel() for p in mod.parameters())  # noqa: E731
    assert n(cp) < n(dense)
    out = cp(torch.zeros(1, 3), torch.zeros(5, 4))
    assert out.shape == (1, 5) and torch.isfinite(out).all()
    assert FieldDecoder(3, n_frames=5, ny=6, nx=7).field(torch.zeros(1, 3)).shape == (1, 5, 6, 7)


def test_separable_operator_product_equals_pointwise_forward_in_3d():
    from wavesurrogate.nn.models.separable import SeparableOperator

    geo = {"coord_min": [0.0, 0.0, 0.0, 0.0], "coord_max": [5.0, 4.0, 3.0, 0.4], "source_params": [0, 1, 2],
           "param_mean": [2.5, 2.0, 1.5], "param_std": [1.0, 1.0, 0.7], "c_ref_mps": 343.0, "f_max_hz": 500.0}
    torch.manual_seed(0)
    m = SeparableOperator(3, geo, n_basis=8, width=16, depth=2, trunk_width=16, trunk_depth=2, n_fourier_t=8)
    p, rec, t = torch.randn(2, 3), torch.rand(5, 3) * 2 - 1, torch.linspace(-1, 1, 7)
    coords = torch.cat([rec[:, None, :].expand(-1, 7, -1), t[None, :, None].expand(5, -1, -1)], -1)
    with torch.no_grad():
        want = m(p, coords.reshape(-1, 4)).reshape(2, 5, 7)
        torch.testing.assert_close(m.forward_product(p, rec, t), want, rtol=1e-5, atol=1e-6)
        m.eval()
        first = m.forward_product(p, rec, t)  # the trunk at these times is cached in inference ...
        with torch.no_grad():
            for q in m.trunk.parameters():
                q.add_(0.1)  # ... until a trunk weight changes
        torch.testing.assert_close(m.forward_product(p, rec, t), m(p, coords.reshape(-1, 4)).reshape(2, 5, 7),
                                   rtol=1e-5, atol=1e-6)
        assert not torch.allclose(first, m.forward_product(p, rec, t))
    # the source enters through the geometry: moving it changes the output, translating both does too
    # (walls break translation invariance, so the absolute positions are inputs)
    with torch.no_grad():
        assert not torch.allclose(m(p + 0.5, coords.reshape(-1, 4)), m(p, coords.reshape(-1, 4)))

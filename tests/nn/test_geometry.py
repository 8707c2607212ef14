"""The geometry contract (nn/models/geometry.py) and the paper options of ``deeponet`` built on it
(``branch_input="pulse"``, ``fourier="physical"``), checked against NumPy computations written out here."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from wavesurrogate.errors import ConfigError
from wavesurrogate.nn import registry
from wavesurrogate.nn.models.geometry import parse_geometry

C, FMAX = 343.0, 1000.0


def geometry(**over):
    g = dict(coord_min=[-0.5, 0.25, 0.0], coord_max=[1.5, 1.25, 0.008], source_params=[2, 0],
             param_mean=[0.7, 440.0, 0.5], param_std=[0.2, 50.0, 0.3], c_ref_mps=C, f_max_hz=FMAX)
    g.update(over)
    return g


@pytest.mark.parametrize("bad, field", [
    ({"coord_min": [0, 0]}, "model.geometry.coord_min"),
    ({"coord_max": [1.5, 1.25, -1.0]}, "model.geometry.coord_max"),
    ({"param_std": [0.2, 0.0, 0.3]}, "model.geometry.param_std"),
    ({"param_mean": [0.7, float("nan"), 0.5]}, "model.geometry.param_mean"),
    ({"source_params": [2, 2]}, "model.geometry.source_params"),
    ({"source_params": [0, 3]}, "model.geometry.source_params"),
    ({"c_ref_mps": -343.0}, "model.geometry.c_ref_mps"),
    ({"f_max_hz": True}, "model.geometry.f_max_hz"),
    ({"extra": 1}, "model.geometry"),
])  # fmt: skip
def test_bad_geometry_is_one_line_config_error_naming_the_field(bad, field):
    with pytest.raises(ConfigError) as err:
        parse_geometry(geometry(**bad))
    assert str(err.value).startswith(field) and "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="model.geometry"):
        parse_geometry([1, 2])
    with pytest.raises(ConfigError, match="param_mean: has 3 entries, the model takes 4"):
        parse_geometry(geometry(), n_params=4)


def test_source_position_in_the_scaled_frame_matches_the_definitions():
    g = parse_geometry(geometry())
    p = torch.randn(5, 3, dtype=torch.float64)
    mean, std = np.array([0.7, 440.0, 0.5]), np.array([0.2, 50.0, 0.3])
    phys = p.numpy() * std + mean  # denormalised parameters
    xs, ys = phys[:, 2], phys[:, 0]
    want = np.stack([2 * (xs + 0.5) / 2.0 - 1, 2 * (ys - 0.25) / 1.0 - 1], axis=1)
    np.testing.assert_allclose(g.source_m(p).numpy(), np.stack([xs, ys], 1), rtol=1e-14)
    np.testing.assert_allclose(g.source_scaled(p).numpy(), want, rtol=1e-12, atol=1e-14)
    assert g.half_extent == (1.0, 0.5, 0.004)
    assert g.to_scaled(0.25, 1) == 0.5 and g.to_scaled(0.002, 2) == 0.5


def test_physical_fourier_features_are_the_papers_wavenumbers_in_metres():
    torch.manual_seed(0)
    m = registry.build("deeponet", dict(n_params=3, fourier="physical", n_fourier=9, include_coords=False,
                                        branch_width=8, trunk_width=8, geometry=geometry()))
    rng = np.random.default_rng(0)
    xs = rng.uniform(-1, 1, (50, 3))
    feat = m.encode(torch.tensor(xs, dtype=torch.float32)).double().numpy()  # [cos(2πBc), sin(2πBc)]
    # physical coordinates relative to the domain centre; time as c·t in metres
    x = (xs[:, 0] + 1) * 1.0 - 0.5 - 0.5
    y = (xs[:, 1] + 1) * 0.5 + 0.25 - 0.75
    ct = C * ((xs[:, 2] + 1) * 0.004 - 0.004)
    cols = []
    for u in (x, y, ct):
        for f in (FMAX / 2, FMAX / 4, FMAX / 6):
            cols.append(2 * math.pi * f / C * u)
    phase = np.stack(cols, axis=1)
    np.testing.assert_allclose(feat, np.concatenate([np.cos(phase), np.sin(phase)], 1), atol=2e-5)


def test_pulse_branch_input_is_the_gaussian_on_a_two_points_per_wavelength_grid():
    m = registry.build("deeponet", dict(n_params=3, branch_input="pulse", branch_width=8, trunk_width=8,
                                        geometry=geometry()))
    x, y = m.pulse_x.double().numpy(), m.pulse_y.double().numpy()
    dx_max = C / (2 * FMAX)  # 2 points per shortest wavelength
    for axis, lo, hi in ((x, -0.5, 1.5), (y, 0.25, 1.25)):
        assert axis[0] == pytest.approx(lo) and axis[-1] == pytest.approx(hi)
        step = np.diff(axis)
        assert step.max() <= dx_max * (1 + 1e-6) and step.max() > dx_max * (len(axis) - 2) / (len(axis) - 1)
    p = torch.randn(4, 3)
    feats = m.branch_features(p).double().numpy()
    phys = p.double().numpy() * [0.2, 50.0, 0.3] + [0.7, 440.0, 0.5]
    sigma = C / (math.pi * FMAX / 2)
    for b in range(4):
        yy, xx = np.meshgrid(y, x, indexing="ij")
        want = np.exp(-((xx - phys[b, 2]) ** 2 + (yy - phys[b, 0]) ** 2) / sigma**2).ravel()
        np.testing.assert_allclose(feats[b, :-1], want, atol=1e-5)
        assert feats[b, -1] == pytest.approx(float(p[b, 1]))  # the non-source parameter follows the pulse
    assert m.branch.hidden[0].in_features == len(x) * len(y) + 1


def test_paper_options_rebuild_from_kwargs_and_defaults_are_unchanged_by_geometry():
    kw = dict(n_params=3, branch_input="pulse", fourier="physical", n_fourier=9, init="siren",
              branch_width=16, trunk_width=16, geometry=geometry())
    torch.manual_seed(3)
    m = registry.build("deeponet", kw)
    again = registry.build("deeponet", m.init_kwargs)
    again.load_state_dict(m.state_dict())
    p, c = torch.randn(2, 3), torch.rand(2, 7, 3) * 2 - 1
    assert torch.equal(m(p, c), again(p, c))
    assert set(m.state_dict()) == set(registry.build("deeponet", dict(n_params=3)).state_dict())
    torch.manual_seed(4)
    plain = registry.build("deeponet", dict(n_params=3, branch_width=16, trunk_width=16))
    torch.manual_seed(4)
    with_geo = registry.build(
        "deeponet", dict(n_params=3, branch_width=16, trunk_width=16, geometry=geometry())
    )
    assert torch.equal(plain(p, c), with_geo(p, c))  # geometry alone changes nothing
    assert registry.entry("deeponet").capabilities["geometry"] is True


@pytest.mark.parametrize("kw, field", [
    ({"fourier": "physical", "n_fourier": 9}, "model.geometry"),
    ({"branch_input": "pulse"}, "model.geometry"),
    ({"branch_input": "image"}, "model.branch_input"),
    ({"fourier": "physical", "n_fourier": 64, "geometry": geometry()}, "model.n_fourier"),
    ({"branch_input": "pulse", "pulse_ppw": 0, "geometry": geometry()}, "model.pulse_ppw"),
])  # fmt: skip
def test_paper_options_reject_bad_kwargs(kw, field):
    with pytest.raises(ConfigError) as err:
        registry.build("deeponet", dict(n_params=3, **kw))
    assert str(err.value).startswith(field)

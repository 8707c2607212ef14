"""Nested sub-networks (nn.elastic): a sliced network equals an independently built smaller one."""

from __future__ import annotations

import pytest
import torch

from wavesurrogate.errors import ConfigError
from wavesurrogate.nn import elastic, registry
from wavesurrogate.nn.layers.tensorized.conv import TensorizedConv2d


def _copy_cp(dst: TensorizedConv2d, src: TensorizedConv2d, r: int) -> None:
    """Copy the first ``r`` CP columns (and the bias) of ``src`` into the rank-r layer ``dst``."""
    with torch.no_grad():
        dst.in_factor.copy_(src.in_factor[:, :r])
        dst.out_factor.copy_(src.out_factor[:, :r])
        for a, b in zip(dst.spatial_factors, src.spatial_factors, strict=True):
            a.copy_(b[:, :r])
        dst.bias.copy_(src.bias)


@pytest.mark.parametrize("cp_impl", ["fused", "axes"])
def test_cp_layer_first_r_terms_are_a_rank_r_layer(cp_impl):
    g = torch.Generator().manual_seed(0)
    big = TensorizedConv2d(5, 7, 3, padding=1, rank=9, cp_impl=cp_impl, generator=g)
    small = TensorizedConv2d(5, 7, 3, padding=1, rank=4, cp_impl=cp_impl, generator=g)
    _copy_cp(small, big, 4)
    x = torch.randn(3, 5, 11, 10, generator=g)
    big.active_rank = 4
    with torch.no_grad():
        torch.testing.assert_close(big(x), small(x), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(big.reconstruct(), small.reconstruct(), rtol=1e-5, atol=1e-6)
    # the dense kernel of the first r terms, by the CP formula written out (independent of the layer)
    w = torch.einsum("or,ir,hr,wr->oihw", big.out_factor[:, :4], big.in_factor[:, :4],
                     big.spatial_factors[0][:, :4], big.spatial_factors[1][:, :4])
    torch.testing.assert_close(big.reconstruct(), w, rtol=1e-5, atol=1e-6)
    # training (recomputed backward): same loss, gradients only on the first r columns, equal to small's
    big.train(), small.train()
    big(x).square().sum().backward()
    small(x).square().sum().backward()
    torch.testing.assert_close(big.in_factor.grad[:, :4], small.in_factor.grad, rtol=1e-4, atol=1e-5)
    assert float(big.in_factor.grad[:, 4:].abs().max()) == 0.0
    big.active_rank = None
    with torch.no_grad():
        assert float((big(x) - small(x)).abs().max()) > 1e-3  # all 9 terms differ from 4


def _elastic_cnn(**kw):
    torch.manual_seed(1)
    return registry.build("elastic_cnn2d", {"n_in": 2, "n_out": 1, "width": 6, "blocks": 3, "rank": 8,
                                            "n_extra": 1, **kw})


@pytest.mark.parametrize("pair", [(1, 2), (2, 4), (3, 8), (2, 8)])
def test_sliced_network_equals_an_independently_built_one(pair):
    b, r = pair
    full = _elastic_cnn().eval()
    sub = registry.build("elastic_cnn2d", {"n_in": 2, "n_out": 1, "width": 6, "blocks": b, "rank": r,
                                           "n_extra": 1}).eval()
    with torch.no_grad():  # copy by hand: lift, head, then the first b blocks' first r CP columns
        for name in ("lift.0.weight", "lift.0.bias", "head.weight", "head.bias"):
            sub.get_parameter(name).copy_(full.get_parameter(name))
        for i in range(b):
            for j in (0, 3):
                _copy_cp(sub.blocks[i].body[j], full.blocks[i].body[j], r)
    x = torch.randn(2, 4, 12, 13)
    with torch.no_grad(), elastic.active(full, b, r):
        y = full(x)
    with torch.no_grad():
        torch.testing.assert_close(y, sub(x), rtol=1e-5, atol=1e-6)
        cut = registry.build("elastic_cnn2d", full.elastic_kwargs(b, r)).eval()
        cut.load_state_dict(elastic.sliced_state(full.state_dict(), cut.state_dict()))
        torch.testing.assert_close(cut(x), y, rtol=0, atol=0)
    assert elastic.params_at(full, b, r) == sum(p.numel() for p in sub.parameters())
    # restored after the with block
    assert full.active_blocks is None and all(m.active_rank is None for m in elastic.cp_layers(full))


def test_field_decoder_stages_and_ranks_are_nested():
    torch.manual_seed(2)
    kw = {"n_params": 3, "n_frames": 4, "ny": 16, "nx": 16, "width": 6, "latent": 2, "n_up": 3,
          "conv": {"format": "cp", "rank": 6}}
    full = registry.build("field_decoder", kw).eval()
    assert elastic.full_size(full) == (3, 6)
    p, q = torch.randn(2, 3), torch.rand(2, 50, 3) * 2 - 1
    sub = registry.build("field_decoder", full.elastic_kwargs(2, 3)).eval()
    assert sub.init_kwargs["n_up"] == 2 and sub.init_kwargs["conv"]["rank"] == 3
    sub.load_state_dict(elastic.sliced_state(full.state_dict(), sub.state_dict()))
    with torch.no_grad(), elastic.active(full, 2, 3):
        y = full(p, q)
    with torch.no_grad():
        torch.testing.assert_close(sub(p, q), y, rtol=1e-5, atol=1e-6)
    kw3 = {**kw, "nz": 8, "n_frames": 2}  # the volumetric decoder nests the same way
    full3 = registry.build("field_decoder", kw3).eval()
    sub3 = registry.build("field_decoder", full3.elastic_kwargs(1, 2)).eval()
    sub3.load_state_dict(elastic.sliced_state(full3.state_dict(), sub3.state_dict()))
    q3 = torch.rand(2, 30, 4) * 2 - 1
    with torch.no_grad(), elastic.active(full3, 1, 2):
        y3 = full3(p, q3)
    with torch.no_grad():
        torch.testing.assert_close(sub3(p, q3), y3, rtol=1e-5, atol=1e-6)
        assert float((full3(p, q3) - y3).abs().max()) > 1e-4
    dense = registry.build("field_decoder", {**kw, "conv": None})
    with pytest.raises(ConfigError, match="no nested blocks"):
        elastic.full_size(dense)


def test_pairs_must_fit_and_include_the_full_model():
    m = _elastic_cnn()
    assert elastic.check_pairs(m, [(1, 2), (3, 8)]) == (3, 8)
    with pytest.raises(ConfigError, match="does not fit"):
        elastic.check_pairs(m, [(4, 2), (3, 8)])
    with pytest.raises(ConfigError, match="must include the full model"):
        elastic.check_pairs(m, [(1, 2), (2, 4)])
    with pytest.raises(ConfigError, match="does not fit"), elastic.active(m, 1, 9):
        pass
    with pytest.raises(ConfigError, match="no nested blocks"):
        elastic.full_size(registry.build("cnn2d", {"n_in": 2, "conv": {"format": "cp", "rank": 4}}))

"""Elastic FNO / TFNO (nn.elastic, axes (modes, rank)): a sliced network equals an independently built one."""

from __future__ import annotations

import pytest
import torch

from wavesurrogate.errors import ConfigError
from wavesurrogate.nn import elastic, registry

neuralop = pytest.importorskip("neuralop", reason="neuralop (optional extra .[operators]) not installed")

M = 8  # full modes per axis: y rows of the fft-shifted spectrum, x columns M // 2 + 1 of the real FFT
KW = {"n_in": 2, "n_out": 1, "n_modes": [M, M], "hidden_channels": 4, "n_layers": 2}


def _full(name: str, **extra):
    torch.manual_seed(3)
    return registry.build(name, {**KW, **extra}).eval()


def _independent(full, m: int, r: int | None) -> torch.nn.Module:
    """neuraloperator's own FNO at m modes (and CP rank r), built directly, its weights copied by hand:
    every non-spectral tensor as is, each spectral weight's low-frequency block (y rows centred on the zero
    frequency, the first m // 2 + 1 x columns) and the first r CP terms."""
    fno = full.fno
    cp = r is not None
    small = neuralop.models.FNO(
        n_modes=(m, m), in_channels=3, out_channels=1, hidden_channels=4, n_layers=2,
        positional_embedding="grid", factorization="cp" if cp else None, rank=r if cp else 1.0).eval()
    y0, nx = (M - m) // 2, m // 2 + 1
    sd = {}
    for k, t in fno.state_dict().items():
        if not isinstance(t, torch.Tensor):
            continue
        if k.endswith("weight.tensor"):  # [in, out, my, mx]
            t = t[:, :, y0:y0 + m, :nx]
        elif ".weight.factors.factor_" in k:  # [in | out | my | mx, R]
            i = int(k.rsplit("_", 1)[1])
            t = t[y0:y0 + m, :r] if i == 2 else t[:nx, :r] if i == 3 else t[:, :r]
        elif k.endswith(".weight.weights"):
            t = t[:r]
        sd[k] = t.clone()
    small.load_state_dict(sd, strict=False)
    missing = {k for k, v in small.state_dict().items() if isinstance(v, torch.Tensor)} - set(sd)
    assert not missing, missing
    return small


@pytest.mark.parametrize(("name", "extra", "pairs"), [
    ("fno", {}, [(4, 1), (6, 1), (8, 1)]),
    ("tfno", {"factorization": "cp", "rank": 6}, [(4, 2), (6, 3), (8, 6), (4, 6)]),
])
def test_sliced_fno_equals_an_independent_fno_with_the_corner_weights(name, extra, pairs):
    full = _full(name, **extra)
    assert elastic.is_elastic(full) and elastic.axes(full) == ("modes", "rank")
    assert elastic.full_size(full) == (M, extra.get("rank", 1))
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y_full = full(x)
    for m, r in pairs:
        with torch.no_grad(), elastic.active(full, m, r):
            y = full(x)
        with torch.no_grad():
            want = _independent(full, m, r if "rank" in extra else None)(x)
            torch.testing.assert_close(y, want, rtol=1e-5, atol=1e-6)
            cut = registry.build(name, full.elastic_kwargs(m, r)).eval()  # what `slice` writes
            cut_sd = elastic.sliced_state(full.state_dict(), cut.state_dict(), full.elastic_centred)
            cut.load_state_dict(cut_sd)
            torch.testing.assert_close(cut(x), y, rtol=0, atol=0)
        assert elastic.params_at(full, m, r) == registry.count_trainable(cut)
        if (m, r) != elastic.full_size(full):
            assert float((y - y_full).abs().max()) > 1e-4  # a smaller network computes something else
    with torch.no_grad():  # restored after each with block
        torch.testing.assert_close(full(x), y_full, rtol=0, atol=0)


def test_training_a_slice_moves_only_its_block():
    full = _full("tfno", factorization="cp", rank=6).train()
    x = torch.randn(2, 3, 16, 16)
    with elastic.active(full, 4, 2):
        full(x).square().sum().backward()
    conv = full.fno.fno_blocks.convs[0].weight
    g_y, g_x, g_w = conv.factors[2].grad, conv.factors[3].grad, conv.weights.grad
    assert float(g_w[:2].abs().max()) > 0 and float(g_w[2:].abs().max()) == 0.0
    assert float(g_y[2:6, :2].abs().max()) > 0  # the centred 4 y modes of the first 2 terms
    assert float(g_y[:2].abs().max()) == float(g_y[6:].abs().max()) == float(g_y[:, 2:].abs().max()) == 0.0
    assert float(g_x[3:].abs().max()) == 0.0  # 4 // 2 + 1 = 3 x modes


def test_unnested_sizes_and_factorizations_are_refused():
    full = _full("fno")
    with pytest.raises(ConfigError, match="difference must be even"):
        elastic.check_pairs(full, [(5, 1), (8, 1)])
    with pytest.raises(ConfigError, match="does not fit"):
        elastic.check_pairs(full, [(8, 2)])
    with pytest.raises(ConfigError, match="does not fit"), elastic.active(full, 10, 1):
        pass
    tucker = _full("tfno")  # neuraloperator's default: Tucker, rank a fraction
    assert not elastic.is_elastic(tucker)
    with pytest.raises(ConfigError, match="factorization cp with an integer rank"):
        elastic.full_size(tucker)
    with pytest.raises(ConfigError, match="CP rank >= 1"):
        registry.build("tfno", {**KW, "factorization": "cp", "rank": 0})

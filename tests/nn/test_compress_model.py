"""nn.layers.tensorized.compress_model: a whole network compressed a posteriori, layer by layer."""

from __future__ import annotations

import pytest
import torch

from wavesurrogate.errors import ConfigError
from wavesurrogate.nn import registry
from wavesurrogate.nn.layers.tensorized import TensorizedConvNd, compress_model

BASE = {"n_in": 2, "n_out": 1, "width": 4, "depth": 1, "kernel_size": 3}


def test_full_rank_cp_reproduces_the_dense_network_and_copies_the_rest():
    torch.manual_seed(0)
    dense = registry.build("cnn2d", BASE).double()
    target = registry.build("cnn2d", {**BASE, "conv": {"format": "cp", "rank": 60}}).double()
    got = compress_model(dense, target)
    assert got is target and any(isinstance(m, TensorizedConvNd) for m in got.modules())
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(got(x), dense(x), atol=1e-6, rtol=1e-5)
    tensorized = [n for n, m in got.named_modules() if isinstance(m, TensorizedConvNd)]
    for k, v in got.state_dict().items():
        if not any(k.startswith(t + ".") for t in tensorized):
            assert torch.equal(v, dense.state_dict()[k]), k


def test_low_rank_is_approximate_and_other_architectures_are_refused():
    torch.manual_seed(0)
    dense = registry.build("cnn2d", BASE)
    low = compress_model(dense, registry.build("cnn2d", {**BASE, "conv": {"format": "cp", "rank": 2}}))
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        assert not torch.allclose(low(x), dense(x))
    with pytest.raises(ConfigError, match="architectures differ"):
        compress_model(registry.build("cnn2d", {**BASE, "width": 6}),
                       registry.build("cnn2d", {**BASE, "depth": 2, "conv": {"format": "cp", "rank": 2}}))

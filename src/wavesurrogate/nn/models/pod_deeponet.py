"""``pod_deeponet``: POD-DeepONet (Lu et al., CMAME 2022, arXiv 2111.05512), interface ``POINTS``.

The trunk is not learned: it is the proper orthogonal decomposition of the training fields, stored as buffers
``mean [nt, ny, nx]`` and ``modes [p, nt, ny, nx]`` (normalised field units) on the data grid, whose nodes are
``linspace(-1, 1, n)`` per axis of the scaled frame. A branch MLP maps the params to the p coefficients; the
field is ``mean + Σ_k b_k mode_k``, read at arbitrary (x, y, t) by trilinear interpolation (``grid_sample``,
``align_corners=True``: grid nodes are exact, the border value is kept outside). ``set_basis(mean, modes)``
fills the buffers; a task calls it before training from ``metrics.pod.pod_modes`` of its training fields, and
the weights file carries them. See docs/operators.md.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wavesurrogate.nn.layers.blocks import MLP, positive_int
from wavesurrogate.nn.registry import POINTS, register

__all__ = ["PODDeepONet"]


@register("pod_deeponet", interface=POINTS)
class PODDeepONet(nn.Module):
    """``forward(params [B, P], coords [B, Q, 3] or [Q, 3])`` → ``[B, Q]``: mean + branch(params) · POD
    modes."""

    capabilities = {"onnx": False}  # 5-D grid_sample, which torch's ONNX exporter lacks
    onnx_note = "a 5-D grid_sample, which ONNX export lacks"

    def __init__(
        self, n_params: int, n_frames: int, ny: int, nx: int, n_basis: int = 32, branch_width: int = 128,
        branch_depth: int = 3, activation: str = "gelu", modified: bool = False, init: str = "glorot",
    ) -> None:  # fmt: skip
        super().__init__()
        self.n_params = positive_int("n_params", n_params)
        for name, n in (("n_frames", n_frames), ("ny", ny), ("nx", nx)):
            positive_int(name, n, minimum=2)  # trilinear interpolation needs two nodes per axis
        positive_int("n_basis", n_basis)
        positive_int("branch_width", branch_width)
        positive_int("branch_depth", branch_depth)
        self.grid_shape = (n_frames, ny, nx)
        self.register_buffer("mean", torch.zeros(self.grid_shape))
        self.register_buffer("modes", torch.zeros(n_basis, *self.grid_shape))
        self.branch = MLP(n_params, branch_width, branch_depth, n_basis, activation, modified, init)

    @torch.no_grad()
    def set_basis(self, mean: Tensor, modes: Tensor) -> None:
        """Store the POD basis: ``mean [nt, ny, nx]`` and ``modes [p, nt, ny, nx]`` (ValueError if not)."""
        mean, modes = torch.as_tensor(mean), torch.as_tensor(modes)
        if tuple(mean.shape) != self.grid_shape or tuple(modes.shape) != tuple(self.modes.shape):
            raise ValueError(f"pod_deeponet.set_basis: expected mean {list(self.grid_shape)} and modes "
                             f"{list(self.modes.shape)}, got {list(mean.shape)} and {list(modes.shape)}")
        if not (torch.isfinite(mean).all() and torch.isfinite(modes).all()):
            raise ValueError("pod_deeponet.set_basis: mean and modes must be finite")
        self.mean.copy_(mean)
        self.modes.copy_(modes)

    def branch_coeffs(self, params: Tensor) -> Tensor:
        """Coefficients ``[B, n_basis]`` from params ``[B, n_params]``."""
        if params.ndim != 2 or params.shape[1] != self.n_params:
            raise ValueError(f"pod_deeponet: expected params [B, {self.n_params}], got {list(params.shape)}")
        return self.branch(params)

    def basis_volume(self) -> Tensor:
        """``[1, 1 + p, nt, ny, nx]``: mean and modes stacked once, rebuilt only when a buffer changed (in
        place, e.g. ``set_basis`` or loading weights: tensor versions), moved or cast; a query copies
        nothing."""
        key = (self.mean._version, self.modes._version, self.mean.data_ptr(), self.modes.data_ptr(),
               self.modes.device, self.modes.dtype)
        if getattr(self, "_volume_key", None) != key:
            with torch.no_grad():
                self._volume = torch.cat([self.mean.unsqueeze(0), self.modes]).unsqueeze(0)
            self._volume_key = key
        return self._volume

    def sample_basis(self, coords: Tensor) -> Tensor:
        """Mean and modes at ``coords [..., 3]`` (x, y, t in [-1, 1]) → ``[..., 1 + n_basis]`` (trilinear)."""
        if coords.shape[-1] != 3:
            raise ValueError(f"pod_deeponet: expected coords [..., 3] (x, y, t), got {list(coords.shape)}")
        volume = self.basis_volume()
        # grid_sample's last axis is (x, y, z) = (x, y, t)
        grid = coords.reshape(1, 1, 1, -1, 3).to(volume.dtype)
        out = F.grid_sample(volume, grid, mode="bilinear", padding_mode="border", align_corners=True)
        return out.reshape(volume.shape[1], -1).T.reshape(*coords.shape[:-1], volume.shape[1])

    def forward(self, params: Tensor, coords: Tensor) -> Tensor:
        """Field ``[B, Q]`` at ``coords`` ``[B, Q, 3]`` (or ``[Q, 3]`` shared by the batch)."""
        coeffs = self.branch_coeffs(params)
        if coords.ndim not in (2, 3) or (coords.ndim == 3 and coords.shape[0] != params.shape[0]):
            raise ValueError(f"pod_deeponet: expected coords [{params.shape[0]}, Q, 3] or [Q, 3], got "
                             f"{list(coords.shape)}")
        basis = self.sample_basis(coords)
        if basis.ndim == 2:
            return basis[:, 0] + coeffs @ basis[:, 1:].T
        return basis[..., 0] + torch.einsum("bk,bqk->bq", coeffs, basis[..., 1:])

    def predict_grid(
        self, params: Tensor, x: Tensor | None = None, y: Tensor | None = None, t: Tensor | None = None
    ) -> Tensor:
        """Field ``[B, nt, ny, nx]``: on the stored grid (no coords: ``mean + coeffs · modes`` exactly), or on
        the tensor-product grid of 1-D scaled coords x ``[nx]``, y ``[ny]``, t ``[nt]`` by interpolation."""
        coeffs = self.branch_coeffs(params)
        if x is None and y is None and t is None:
            return self.mean + torch.einsum("bk,kthw->bthw", coeffs, self.modes)
        if x is None or y is None or t is None or x.ndim != 1 or y.ndim != 1 or t.ndim != 1:
            raise ValueError("pod_deeponet.predict_grid: give all of x, y, t as 1-D tensors, or none of them")
        tt, yy, xx = torch.meshgrid(t, y, x, indexing="ij")
        basis = self.sample_basis(torch.stack([xx, yy, tt], dim=-1).reshape(-1, 3))
        out = basis[:, 0] + coeffs @ basis[:, 1:].T
        return out.reshape(params.shape[0], t.numel(), y.numel(), x.numel())

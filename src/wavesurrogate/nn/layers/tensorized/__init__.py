"""Convolutions whose kernels carry a compressed format chosen before training (Boukraichi et al. 2023).

``TensorizedConv2d`` / ``TensorizedConv3d`` are drop-in replacements of ``nn.Conv2d`` / ``nn.Conv3d``
(groups 1) whose kernel ``W[o, i, *s]`` (``s``: 2 or 3 spatial axes) is stored in one of four formats:

- ``dense``: ``W`` itself (a passthrough, so one factory builds every format);
- ``cp``: ``W[o,i,y,x] = sum_r A[o,r] B[i,r] Y[y,r] X[x,r]``: one-way filters shared by all channels,
  evaluated as a 1x1 conv (in -> R), one depthwise 1-D conv per spatial axis, and a 1x1 conv (R -> out);
- ``separable``: each (o, i) kernel is its own rank-R sum of outer products of 1-D filters,
  ``W[o,i,y,x] = sum_r Y[o,i,r,y] X[o,i,r,x]`` (the paper's SVD route; 3-D analogously);
- ``tucker``: ``W = G x_o U_o x_i U_i x_y U_y x_x U_x`` (core plus one factor matrix per mode).

Closed-form parameter counts (``k_d`` the kernel size along spatial axis d, ``+ out`` if bias):
dense ``out*in*prod(k_d)``; cp ``R*(out + in + sum(k_d))``; separable ``out*in*R*sum(k_d)``;
tucker ``R_o*R_i*prod(R_d) + out*R_o + in*R_i + sum(k_d*R_d)``.

Initialisation gives the reconstructed kernel the variance of PyTorch's default conv init,
kaiming_uniform(a=sqrt(5)): ``Var W = 1 / (3 fan_in)``, ``fan_in = in*prod(k_d)`` (docs/tensorized.md).
"""

from wavesurrogate.nn.layers.tensorized.conv import TensorizedConv2d, TensorizedConv3d, TensorizedConvNd
from wavesurrogate.nn.layers.tensorized.decompose import compress_model, cp_als, from_dense
from wavesurrogate.nn.layers.tensorized.ranks import (
                                                      FORMATS,
                                                      count_parameters,
                                                      cp_rank_for_fraction,
                                                      cp_rank_for_params,
                                                      default_kernel_variance,
                                                      factor_variances,
                                                      resolve_rank,
)

__all__ = ["FORMATS", "TensorizedConv2d", "TensorizedConv3d", "TensorizedConvNd", "count_parameters",
           "compress_model", "cp_als", "cp_rank_for_fraction", "cp_rank_for_params",
           "default_kernel_variance", "factor_variances", "from_dense", "resolve_rank"]

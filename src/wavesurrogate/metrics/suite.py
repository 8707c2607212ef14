"""TEMPORARY shim."""
import math
from typing import Any

import torch
from torch import Tensor

from wavesurrogate.eval import metrics as M


def summarise(pred: list[Tensor], true: list[Tensor], n_spatial_dims: int = 2) -> dict[str, Any]:
    rel, e2, t2, ms, mx, bands = [], 0.0, 0.0, [], 0.0, []
    for p, t in zip(pred, true, strict=True):
        rel.append(M.rel_l2(p, t))
        d = (p.double() - t.double())
        e2 += float(d.pow(2).sum())
        t2 += float(t.double().pow(2).sum())
        ms.append(M.rmse(p, t).pow(2))
        mx = max(mx, float(M.max_error(p, t).max()))
        bands.append(M.frmse(p, t).pow(2))
    r = torch.cat(rel)
    finite = r[~torch.isnan(r)]
    band = torch.cat(bands).mean(dim=0).sqrt()
    return {
        "n_samples": int(r.numel()),
        "rel_l2": float(finite.mean()) if finite.numel() else None,
        "rel_l2_pooled": math.sqrt(e2 / t2) if t2 > 0 else None,
        "rmse": float(torch.cat(ms).mean().sqrt()),
        "max_error": mx,
        "frmse": {name: float(v) for name, v in zip(M.BANDS, band, strict=True)},
        "n_zero_truth": int(torch.isnan(r).sum()),
    }

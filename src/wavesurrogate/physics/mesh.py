"""Meshes for the FE solver: structured rectangles (P1 triangles or Q1 quadrilaterals) and mesh files."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from skfem import Mesh, MeshQuad, MeshTri

from wavesurrogate.errors import ConfigError

Element = Literal["p1", "q1"]


def rectangle_boundary_order(nx: int, ny: int) -> np.ndarray:
    """Flat indices j·nx + i of a rectangle's edge nodes, counter-clockwise from the lower-left, each once."""
    bottom = np.arange(nx)
    right = np.arange(1, ny) * nx + (nx - 1)
    top = (ny - 1) * nx + np.arange(nx - 2, -1, -1)
    left = np.arange(ny - 2, 0, -1) * nx
    return np.concatenate([bottom, right, top, left])


def rectangle_mesh(nx: int, ny: int, dx: float, dy: float, element: Element = "p1", x0_m: float = 0.0,
                   y0_m: float = 0.0) -> Mesh:
    """Structured mesh, node j·nx + i at (x0 + i·dx, y0 + j·dy) m; P1 cuts cells along (i,j)-(i+1,j+1)."""
    if nx < 2 or ny < 2:
        raise ConfigError(f"grid: need at least 2 × 2 nodes for a mesh, got nx={nx}, ny={ny}")
    X, Y = np.meshgrid(x0_m + np.arange(nx) * dx, y0_m + np.arange(ny) * dy)
    p = np.vstack([X.ravel(), Y.ravel()])
    idx = np.arange(nx * ny).reshape(ny, nx)
    n00, n10 = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel()
    n11, n01 = idx[1:, 1:].ravel(), idx[1:, :-1].ravel()
    if element == "p1":
        return MeshTri(p, np.hstack([np.vstack([n00, n10, n11]), np.vstack([n00, n11, n01])]))
    if element == "q1":
        return MeshQuad(p, np.vstack([n00, n10, n11, n01]))
    raise ConfigError(f"element: expected 'p1' or 'q1', got {element!r}")


def load_mesh(path: str | Path) -> Mesh:
    """A triangle or quadrilateral mesh from any file meshio reads (coordinates in metres)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"mesh: file not found: {path}")
    try:
        mesh = Mesh.load(str(path))
    except (Exception, SystemExit) as exc:  # meshio raises many kinds, and exits on unknown formats
        raise ConfigError(f"mesh: cannot read {path}: {type(exc).__name__}: {exc}") from None
    if not isinstance(mesh, MeshTri | MeshQuad) or mesh.t.shape[0] not in (3, 4):
        raise ConfigError(f"mesh: {path} is not a linear 2-D triangle or quadrilateral mesh")
    return mesh

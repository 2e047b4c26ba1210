"""Constructed scenes for the Proto-SaGa tests: flat squares of opaque splats with a known owner,
seen by small frontal cameras (64x48), so a test can plant exactly the masks it needs."""

from __future__ import annotations

import numpy as np
import torch

from gs_core.camera import Camera
from gs_core.engine import Gaussians, project
from gs_core.labelmaps import render_labels


def square(x0: float, x1: float, half_height: float, spacing: float, z: float = 0.0) -> np.ndarray:  # -> [K, 3]
    """Splat centres on a grid of ``spacing`` over x in [x0, x1], y in [-half_height, half_height], at depth z."""
    xs = np.arange(x0, x1 + 1e-9, spacing)
    ys = np.arange(-half_height, half_height + 1e-9, spacing)
    a, b = np.meshgrid(xs, ys, indexing="ij")
    return np.stack([a.ravel(), b.ravel(), np.full(a.size, z)], 1)


def scene(*parts: tuple[np.ndarray, float]) -> tuple[Gaussians, np.ndarray]:
    """Opaque isotropic splats, ``(centres [K, 3], spacing)`` per part (scale 0.7 spacing); returns
    the Gaussians and their owner [N] (part index)."""
    means = torch.as_tensor(np.concatenate([p for p, _ in parts]), dtype=torch.float32)
    scales = np.concatenate([np.full(len(p), 0.7 * s) for p, s in parts])
    n = len(means)
    g = Gaussians(means=means, quats=torch.tensor([[1.0, 0, 0, 0]]).repeat(n, 1),
                  scales=torch.as_tensor(scales, dtype=torch.float32)[:, None].repeat(1, 3),
                  opacities=torch.full((n,), 0.95))
    return g, np.concatenate([np.full(len(p), k) for k, (p, _) in enumerate(parts)])


def camera(x: float = 0.0, y: float = 0.0, distance: float = 3.0) -> Camera:
    """A frontal camera at (x, y, distance) looking down -z at (x, y, 0)."""
    return Camera.look_at((x, y, distance), (x, y, 0.0), fov_x_deg=40, width=64, height=48)


def owner_map(g: Gaussians, owner: np.ndarray, cam: Camera) -> np.ndarray:  # -> [H, W] int64, -1 = background
    return render_labels(project(g, cam), owner)

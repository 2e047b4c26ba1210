"""Small random scenes, made in milliseconds, with the awkward cases the engine must survive."""

from __future__ import annotations

import torch

from gs_core.camera import Camera
from gs_core.engine import Gaussians


def random_gaussians(n: int, kind: str = "3dgs", seed: int = 0, spread: float = 0.8) -> Gaussians:
    """Gaussians around the origin with log-normal scales spanning tiny to huge splats."""
    gen = torch.Generator().manual_seed(seed)
    means = torch.randn(n, 3, generator=gen) * spread
    scales = torch.exp(torch.randn(n, 3, generator=gen) * 1.2 - 3.5)
    scales[: max(1, n // 50)] *= 40.0  # a few very large splats covering many tiles
    scales[-max(1, n // 50):] *= 0.01  # a few sub-pixel ones
    if kind == "2dgs":
        scales[:, 2] = 0.0
    quats = torch.nn.functional.normalize(torch.randn(n, 4, generator=gen), dim=-1)
    opac = torch.rand(n, generator=gen)
    opac[: n // 10] = 0.999  # opaque ones exercise early termination
    return Gaussians(means=means, quats=quats, scales=scales, opacities=opac, kind=kind)


def camera(width: int = 53, height: int = 37, eye=(0.3, -3.0, 0.6)) -> Camera:
    """An odd-sized view (partial edge tiles) from outside the cloud; some Gaussians fall behind it
    when ``eye`` is inside the cloud."""
    return Camera.look_at(eye, (0.0, 0.0, 0.0), fov_x_deg=70, width=width, height=height, name="test")

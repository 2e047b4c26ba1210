"""Small random scenes, made in milliseconds, with the awkward cases the engine must survive."""

from __future__ import annotations

import dataclasses

import numpy as np

import torch

from gs_core.camera import Camera
from gs_core.engine import Gaussians


UNIT_ROUNDOFF = 2.0 ** -24  # float32's u: a correctly rounded operation errs by at most u relative


def rounding_perturbation(t: torch.Tensor, seed: int) -> torch.Tensor:
    """``t`` (any float dtype) in float64, each element moved by a random relative amount in [-u, u]:
    what rounding every input once to float32 can do. Evaluating a float64 reference at a few such
    perturbations measures how strongly the computed quantity amplifies float32-sized errors (its
    condition), independently of the CPU, so tolerances can be derived from it."""
    gen = torch.Generator().manual_seed(seed)
    t = t.double()
    return t * (1 + UNIT_ROUNDOFF * (2 * torch.rand(t.shape, generator=gen, dtype=torch.float64) - 1))


def rounding_perturbed_camera(cam: Camera, seed: int) -> Camera:
    """``cam`` with its pose and intrinsics moved like :func:`rounding_perturbation` (a float32 kernel
    rounds them too: points near the camera lose digits in ``R p + t``)."""
    w2c = cam.world_to_camera.copy()
    w2c[:3] = rounding_perturbation(torch.from_numpy(w2c[:3]), seed).numpy()
    fx, fy, cx, cy = rounding_perturbation(torch.tensor([cam.fx, cam.fy, cam.cx, cam.cy]), seed + 1).tolist()
    return dataclasses.replace(cam, fx=fx, fy=fy, cx=cx, cy=cy, world_to_camera=w2c)


def float32_camera(cam: Camera) -> Camera:
    """``cam`` with its pose and intrinsics rounded to float32, as a float32 kernel receives them: a
    float64 reference of that camera measures the kernel's own error, not the camera's rounding."""
    w2c = cam.world_to_camera.astype(np.float32).astype(np.float64)
    fx, fy, cx, cy = (float(np.float32(v)) for v in (cam.fx, cam.fy, cam.cx, cam.cy))
    return dataclasses.replace(cam, fx=fx, fy=fy, cx=cx, cy=cy, world_to_camera=w2c)


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


def awkward_gaussians(kind: str, cam: Camera, seed: int = 0) -> Gaussians:
    """:func:`random_gaussians` (some behind ``cam`` when it is inside the cloud) plus Gaussians on the
    image border, far outside the view but wide enough to reach it (the projection's frustum clamp),
    with degenerate scales (zero, one axis zero, needle-thin), and unnormalised quaternions."""
    gen = torch.Generator().manual_seed(100 + seed)
    base = random_gaussians(400, kind, seed=seed)
    K = torch.tensor(cam.K, dtype=torch.float32)
    c2w = torch.tensor(cam.camera_to_world, dtype=torch.float32)

    def at_pixels(u, v, z):  # [n] pixel coordinates and depths -> world points [n, 3]
        x, y = (u - K[0, 2]) / K[0, 0] * z, (v - K[1, 2]) / K[1, 1] * z
        return torch.stack([x, y, z], 1) @ c2w[:3, :3].T + c2w[:3, 3]

    W, H = float(cam.width), float(cam.height)
    n = 40
    t = torch.rand(n, generator=gen)
    side = torch.arange(n) % 4  # left, right, top, bottom edge
    u = torch.where(side == 0, 0.0, torch.where(side == 1, W, t * W))
    v = torch.where(side == 2, 0.0, torch.where(side == 3, H, t * H))
    border = at_pixels(u, v, 0.5 + 2.5 * torch.rand(n, generator=gen))
    border_s = torch.exp(torch.randn(n, 3, generator=gen) * 0.5 - 4.0)
    u = (torch.rand(n, generator=gen) * 5 - 2) * W  # -2W .. 3W: beyond the clamp's 1.3x frustum
    v = (torch.rand(n, generator=gen) * 5 - 2) * H
    outside = at_pixels(u, v, 1.0 + 2.0 * torch.rand(n, generator=gen))
    outside_s = 0.3 + 0.7 * torch.rand(n, 3, generator=gen)
    m = 24
    degen = at_pixels(torch.rand(m, generator=gen) * W, torch.rand(m, generator=gen) * H,
                      1.0 + torch.rand(m, generator=gen))
    degen_s = torch.exp(torch.randn(m, 3, generator=gen) * 0.5 - 3.0)
    degen_s[0::4] = 0.0  # a point: 3DGS keeps only the eps2d low-pass
    degen_s[1::4, 0] = 0.0  # flat
    degen_s[2::4, :2] = torch.tensor([1e-7, 0.05])  # a needle
    degen_s[3::4] *= 1e-4  # sub-pixel
    scales = torch.cat([base.scales, border_s, outside_s, degen_s])
    if kind == "2dgs":
        scales[:, 2] = 0.0
    k = len(base) + 2 * n + m
    quats = torch.nn.functional.normalize(torch.randn(k, 4, generator=gen), dim=-1)
    quats = quats * (0.3 + 2.7 * torch.rand(k, 1, generator=gen))  # not unit length
    opac = torch.cat([base.opacities, torch.rand(2 * n + m, generator=gen)])
    return Gaussians(means=torch.cat([base.means, border, outside, degen]), quats=quats, scales=scales,
                     opacities=opac, kind=kind)


def frustum_clamped(g: Gaussians, cam: Camera) -> torch.Tensor:  # -> [N] bool
    """Gaussians whose tx/tz lies beyond the projection's clamp (1.3x the horizontal field of view):
    their Jacobian is taken at the clamped point."""
    w2c = torch.tensor(cam.world_to_camera, dtype=torch.float32)
    tc = g.means.float() @ w2c[:3, :3].T + w2c[:3, 3]
    fx, cx, slack = cam.K[0, 0], cam.K[0, 2], 0.15 * cam.width / cam.K[0, 0]
    u = tc[:, 0] / tc[:, 2]
    return (tc[:, 2] > 0) & ((u > (cam.width - cx) / fx + slack) | (u < -(cx / fx + slack)))

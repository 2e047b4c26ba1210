"""The benchmark scenes and workloads: the real *garden* COLMAP points with gsplat's test attributes,
random clouds, Voronoi label maps standing in for SAM patches, and one training step's engine work
(shared by ``bench engine``, its ``--contended`` and ``--isa`` modes, ``bench git`` and ``bench gpu``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..camera import Camera
from ..engine import Gaussians, project, render

GARDEN = Path(__file__).resolve().parents[1] / "data" / "garden_points_3cams.npz"


def garden_scene(path: Path, seed: int = 0) -> tuple[Gaussians, Tensor, list[Camera]]:
    """Garden points with gsplat's test attributes; returns (gaussians, colours [N, 3], cameras)."""
    data = np.load(path, allow_pickle=False)
    means = torch.from_numpy(data["means3d"]).float()
    colors = torch.from_numpy(data["colors"] / 255.0).float()
    sel = ((means >= -2) & (means <= 2)).all(dim=-1)
    means, colors = means[sel], colors[sel]
    gen = torch.Generator().manual_seed(seed)
    n = means.shape[0]
    g = Gaussians(means=means, quats=torch.nn.functional.normalize(torch.randn(n, 4, generator=gen), dim=-1),
                  scales=torch.rand(n, 3, generator=gen) * 0.02, opacities=torch.rand(n, generator=gen))
    width, height = int(data["width"]), int(data["height"])
    cams = []
    for i, (vm, K) in enumerate(zip(data["viewmats"], data["Ks"])):
        cams.append(Camera(fx=float(K[0, 0]), fy=float(K[1, 1]), cx=float(K[0, 2]), cy=float(K[1, 2]),
                           width=width, height=height, world_to_camera=vm.astype(np.float64), name=f"garden{i}"))
    return g, colors, cams


def random_scene(count: int, seed: int = 0, width: int = 1280, height: int = 720):
    """``count`` random Gaussians in a 4 m box seen by one camera 6 m away."""
    gen = torch.Generator().manual_seed(seed)
    means = (torch.rand(count, 3, generator=gen) - 0.5) * 4.0
    g = Gaussians(means=means, quats=torch.nn.functional.normalize(torch.randn(count, 4, generator=gen), dim=-1),
                  scales=torch.exp(torch.randn(count, 3, generator=gen) * 0.5 - 4.5),
                  opacities=torch.rand(count, generator=gen))
    cam = Camera.look_at([0.0, -6.0, 1.0], [0.0, 0.0, 0.0], fov_x_deg=50, width=width, height=height, name="box")
    return g, torch.rand(count, 3, generator=gen), [cam]


def tile_evaluations(proj) -> int:
    """Upper bound on Gaussian-pixel evaluations of a full frame: sum_t pixels(t) * Gaussians(t)."""
    ts = proj.tile_size
    per_tile = (proj.tile_offsets[1:] - proj.tile_offsets[:-1]).reshape(proj.tiles_y, proj.tiles_x)
    w = torch.full((proj.tiles_x,), ts)
    w[-1] = proj.width - ts * (proj.tiles_x - 1)
    h = torch.full((proj.tiles_y,), ts)
    h[-1] = proj.height - ts * (proj.tiles_y - 1)
    return int((per_tile * h[:, None] * w[None, :]).sum())


def region_labels(height: int, width: int, regions: int, seed: int = 0) -> torch.Tensor:  # -> [H, W]
    """A Voronoi label map with ``regions`` cells, standing in for SAM patches."""
    gen = torch.Generator().manual_seed(seed)
    seeds = torch.rand(regions, 2, generator=gen) * torch.tensor([width, height])
    ys, xs = torch.meshgrid(torch.arange(height) + 0.5, torch.arange(width) + 0.5, indexing="ij")
    d = (xs[..., None] - seeds[:, 0]) ** 2 + (ys[..., None] - seeds[:, 1]) ** 2
    return d.argmin(-1).to(torch.int32)


PARAMS = ("means", "quats", "scales", "opacities")


def forward_backward(gaussians: Gaussians, colors, cam: Camera, backend: str, grad_out, pixels=None) -> None:
    """project + render + the backward of ``sum(render * grad_out)`` w.r.t. every parameter
    (means, quats, scales, opacities, colours): one photometric training step's engine work."""
    leaves = {k: getattr(gaussians, k).detach().clone().requires_grad_(True) for k in PARAMS}
    c = colors.detach().clone().requires_grad_(True)
    out = render(project(Gaussians(**leaves, kind=gaussians.kind), cam, backend=backend), c, pixels=pixels,
                 backend=backend)
    out.features.backward(grad_out)

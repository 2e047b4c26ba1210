"""Projection of Gaussians into one camera, and their binning into 16x16 screen tiles.

One :class:`Projection` per (scene, camera) is computed once and reused by every render and trace
of that view (the roadmap's GIT and lifting passes run many traces per view). It mirrors gsplat's
``fully_fused_projection`` (3DGS: EWA with ``eps2d``) and ``fully_fused_projection_2dgs`` (2DGS:
ray-splat transforms) and its ``isect_tiles`` (sort by tile, then depth), so all backends agree.

The torch functions here are the readable reference and the tests' oracle. For float32 CPU tensors
:func:`project` runs the native kernel (``cuda/raster_cpu.cpp``: the same float32 formulas and tile
lists in one OpenMP parallel region, and their vector-Jacobian product as the backward), because
the reference's dozens of small parallel ops each wait for sleeping threads under passive OpenMP waits.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from ..camera import Camera
from .gaussians import Gaussians

TILE_SIZE = 16
EPS2D = 0.3  # low-pass filter added to the 2D covariance (3DGS), as gsplat
RADIUS_SIGMAS = 3.33  # screen extent in standard deviations, as gsplat
NEAR_PLANE = 0.01
FAR_PLANE = 1e10


@dataclass
class Projection:
    """The screen-space form of N Gaussians in one camera. Invisible Gaussians have radius 0."""

    camera: Camera
    kind: str  # "3dgs" | "2dgs"
    means2d: Tensor  # [N, 2] pixel coordinates
    depths: Tensor  # [N] camera-space z
    radii: Tensor  # [N, 2] int32 screen half-extent; 0 = culled
    conics: Tensor | None  # [N, 3] inverse 2D covariance (a, b, c) for 3DGS
    ray_transforms: Tensor | None  # [N, 3, 3] 2DGS pixel-ray -> splat-plane transform (gsplat's M)
    opacities: Tensor  # [N]
    tile_offsets: Tensor  # [tiles_y * tiles_x + 1] int64: intersections of tile t are
    flat_ids: Tensor  # [M] int32      flat_ids[tile_offsets[t]:tile_offsets[t+1]], front to back
    tile_size: int = TILE_SIZE

    @property
    def num_gaussians(self) -> int:
        return self.means2d.shape[0]

    @property
    def width(self) -> int:
        return self.camera.width

    @property
    def height(self) -> int:
        return self.camera.height

    @property
    def tiles_x(self) -> int:
        return (self.width + self.tile_size - 1) // self.tile_size

    @property
    def tiles_y(self) -> int:
        return (self.height + self.tile_size - 1) // self.tile_size

    @property
    def num_intersections(self) -> int:
        return int(self.flat_ids.shape[0])

    @property
    def visible(self) -> Tensor:  # [N] bool
        return (self.radii > 0).all(dim=-1)

    def with_opacities(self, opacities: Tensor) -> "Projection":  # [N]
        """The same geometry and tile lists with other per-Gaussian opacities (e.g. polarised).

        Tile lists do not depend on opacity (the screen extent is 3.33 sigma), so this is free.

        Args:
            opacities: [N] the new per-Gaussian opacities.
        """
        return replace(self, opacities=opacities.to(self.opacities).contiguous())

    @property
    def requires_grad(self) -> bool:
        """True when a screen-space tensor carries autograd history (a differentiable projection)."""
        shape = self.conics if self.kind == "3dgs" else self.ray_transforms
        return any(t is not None and t.requires_grad for t in (self.means2d, shape, self.opacities, self.depths))

    def detach(self) -> "Projection":
        """The same projection without autograd history."""
        def d(t):
            return None if t is None else t.detach()

        return replace(self, means2d=d(self.means2d), depths=d(self.depths), conics=d(self.conics),
                       ray_transforms=d(self.ray_transforms), opacities=d(self.opacities))


def _quat_to_rotmat(quats: Tensor) -> Tensor:  # [N, 4] wxyz -> [N, 3, 3]
    w, x, y, z = torch.unbind(torch.nn.functional.normalize(quats, dim=-1), dim=-1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], dim=-1).reshape(quats.shape[:-1] + (3, 3))


def camera_tensors(camera: Camera, device, dtype=torch.float32) -> tuple[Tensor, Tensor]:
    viewmat = torch.as_tensor(camera.world_to_camera, dtype=dtype, device=device)
    K = torch.as_tensor(camera.K, dtype=dtype, device=device)
    return viewmat, K


def _project_3dgs(g: Gaussians, viewmat: Tensor, K: Tensor, width: int, height: int):
    """EWA splatting (gsplat ``_fully_fused_projection`` with a pinhole camera)."""
    R, t = viewmat[:3, :3], viewmat[:3, 3]
    means_c = g.means @ R.T + t  # [N, 3]
    rot = _quat_to_rotmat(g.quats)  # [N, 3, 3]
    M = rot * g.scales[:, None, :]
    covars = M @ M.transpose(1, 2)  # [N, 3, 3]
    covars_c = R @ covars @ R.T
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    tx, ty, tz = means_c.unbind(-1)
    tan_fovx, tan_fovy = 0.5 * width / fx, 0.5 * height / fy
    lim_x_pos = (width - cx) / fx + 0.3 * tan_fovx
    lim_x_neg = cx / fx + 0.3 * tan_fovx
    lim_y_pos = (height - cy) / fy + 0.3 * tan_fovy
    lim_y_neg = cy / fy + 0.3 * tan_fovy
    txc = tz * torch.clamp(tx / tz, min=-lim_x_neg, max=lim_x_pos)
    tyc = tz * torch.clamp(ty / tz, min=-lim_y_neg, max=lim_y_pos)
    zero = torch.zeros_like(tz)
    J = torch.stack([fx / tz, zero, -fx * txc / tz**2, zero, fy / tz, -fy * tyc / tz**2], -1).reshape(-1, 2, 3)
    cov2d = J @ covars_c @ J.transpose(1, 2) + EPS2D * torch.eye(2, device=g.device, dtype=g.means.dtype)
    means2d = torch.stack([fx * tx / tz + cx, fy * ty / tz + cy], dim=-1)
    det = (cov2d[:, 0, 0] * cov2d[:, 1, 1] - cov2d[:, 0, 1] * cov2d[:, 1, 0])
    valid = (det > 0) & (tz > NEAR_PLANE) & (tz < FAR_PLANE)
    det = det.clamp(min=1e-10)
    conics = torch.stack([cov2d[:, 1, 1] / det, -(cov2d[:, 0, 1] + cov2d[:, 1, 0]) / 2 / det,
                          cov2d[:, 0, 0] / det], dim=-1)
    with torch.no_grad():
        radius = torch.ceil(RADIUS_SIGMAS * torch.sqrt(torch.stack([cov2d[:, 0, 0], cov2d[:, 1, 1]], -1)))
    return means2d, tz, radius, valid, conics, None


def _project_2dgs(g: Gaussians, viewmat: Tensor, K: Tensor, width: int, height: int):
    """Ray-splat transforms (gsplat ``_fully_fused_projection_2dgs``)."""
    R, t = viewmat[:3, :3], viewmat[:3, 3]
    means_c = g.means @ R.T + t  # [N, 3]
    RS_cl = R @ (_quat_to_rotmat(g.quats) * g.scales[:, None, :])  # [N, 3, 3]
    T_cl = torch.cat([RS_cl[:, :, :2], means_c[:, :, None]], dim=-1)  # [N, 3, 3]
    M = (K @ T_cl).transpose(1, 2)  # [N, 3, 3] gsplat's M = (WH)^T; column 2 is the screen row
    test = torch.tensor([1.0, 1.0, -1.0], device=g.device, dtype=g.means.dtype)
    d = (M[:, :, 2] * M[:, :, 2] * test).sum(-1, keepdim=True)  # [N, 1]
    ok = torch.abs(d) > 0
    f = torch.where(ok, test / torch.where(ok, d, torch.ones_like(d)), torch.zeros_like(test))[:, :, None]
    means2d = (M[:, :, :2] * M[:, :, 2:3] * f).sum(dim=-2)  # [N, 2]
    tz = means_c[:, 2]
    valid = ok[:, 0] & (tz > NEAR_PLANE) & (tz < FAR_PLANE)
    with torch.no_grad():
        extents = torch.sqrt((means2d**2 - (M[:, :, :2] * M[:, :, :2] * f).sum(dim=-2)).clamp_min(1e-4))
        radius = torch.ceil(RADIUS_SIGMAS * extents)
    return means2d, tz, radius, valid, None, M.transpose(1, 2).contiguous()


def bin_tiles(means2d: Tensor, radii: Tensor, depths: Tensor, width: int, height: int,
              tile_size: int = TILE_SIZE) -> tuple[Tensor, Tensor]:
    """Tile lists: every visible Gaussian listed in each tile its extent touches, front to back.

    means2d: [N, 2], radii: [N, 2] int (0 = culled), depths: [N]. Returns ``tile_offsets``
    [tiles+1] int64 and ``flat_ids`` [M] int32, sorted by tile then depth (ties by index), as
    gsplat's ``isect_tiles`` + ``isect_offset_encode``.

    Args:
        means2d: [N, 2] pixel coordinates.
        radii: [N, 2] int screen half-extent, 0 = culled.
        depths: [N] camera-space z.
    """
    device = means2d.device
    tiles_x = (width + tile_size - 1) // tile_size
    tiles_y = (height + tile_size - 1) // tile_size
    n = means2d.shape[0]
    tm = means2d / tile_size
    tr = radii.to(means2d.dtype) / tile_size
    lo = torch.floor(tm - tr).long()
    hi = torch.ceil(tm + tr).long()
    lo[:, 0].clamp_(0, tiles_x); hi[:, 0].clamp_(0, tiles_x)
    lo[:, 1].clamp_(0, tiles_y); hi[:, 1].clamp_(0, tiles_y)
    span = (hi - lo).clamp(min=0)
    count = span[:, 0] * span[:, 1] * (radii > 0).all(dim=-1)
    ids = torch.nonzero(count > 0).squeeze(1)
    count = count[ids]
    gauss = torch.repeat_interleave(ids, count)  # [M]
    start = torch.cumsum(count, 0) - count
    local = torch.arange(gauss.shape[0], device=device) - torch.repeat_interleave(start, count)
    w = span[gauss, 0]
    tile = (lo[gauss, 1] + local // w) * tiles_x + (lo[gauss, 0] + local % w)  # [M]
    rank = torch.empty(n, dtype=torch.long, device=device)
    rank[torch.sort(depths, stable=True).indices] = torch.arange(n, device=device)
    order = torch.sort(tile * n + rank[gauss]).indices
    flat_ids = gauss[order].to(torch.int32)
    per_tile = torch.bincount(tile, minlength=tiles_x * tiles_y)
    tile_offsets = torch.zeros(tiles_x * tiles_y + 1, dtype=torch.long, device=device)
    tile_offsets[1:] = torch.cumsum(per_tile, 0)
    return tile_offsets, flat_ids


def project_reference(gaussians: Gaussians, camera: Camera, tile_size: int = TILE_SIZE) -> Projection:
    """The torch reference of :func:`gs_core.engine.project`: project ``gaussians`` into ``camera`` and
    bin them into tiles, on any device and dtype.

    Differentiable by torch autograd through the EWA / ray-transform formulas; the test oracle of the
    native projection (``cpu_backend.project``).
    """
    viewmat, K = camera_tensors(camera, gaussians.device, gaussians.means.dtype)
    fn = _project_2dgs if gaussians.kind == "2dgs" else _project_3dgs
    means2d, depths, radius, valid, conics, ray_transforms = fn(
        gaussians, viewmat, K, camera.width, camera.height)
    with torch.no_grad():
        inside = ((means2d[:, 0] + radius[:, 0] > 0) & (means2d[:, 0] - radius[:, 0] < camera.width)
                  & (means2d[:, 1] + radius[:, 1] > 0) & (means2d[:, 1] - radius[:, 1] < camera.height))
        keep = valid & inside & torch.isfinite(means2d).all(-1)
        radii = torch.where(keep[:, None], radius, torch.zeros_like(radius)).to(torch.int32)
        tile_offsets, flat_ids = bin_tiles(means2d, radii, depths, camera.width, camera.height, tile_size)
    return Projection(camera=camera, kind=gaussians.kind, means2d=means2d.contiguous(),
                      depths=depths.contiguous(), radii=radii, conics=conics, ray_transforms=ray_transforms,
                      opacities=gaussians.opacities.contiguous(), tile_offsets=tile_offsets,
                      flat_ids=flat_ids, tile_size=tile_size)


def pixel_grid(width: int, height: int, device="cpu") -> Tensor:  # -> [H*W, 2] int64 (x, y)
    ys, xs = torch.meshgrid(torch.arange(height, device=device), torch.arange(width, device=device),
                            indexing="ij")
    return torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=-1)


def group_pixels_by_tile(pixels: Tensor, proj: Projection) -> tuple[Tensor, Tensor]:
    """Order pixels [P, 2] (x, y) by tile, and by row inside a tile (the native kernels evaluate a
    Gaussian only on the rows it reaches). Returns ``order`` [P] (pixel rows, tile-major) and
    ``pixel_offsets`` [tiles+1]: tile t owns ``order[pixel_offsets[t]:pixel_offsets[t+1]]``.

    Args:
        pixels: [P, 2] int64 (x, y).
    """
    return _group(pixels, proj.tile_size, proj.tiles_x, proj.tiles_y)


def _group(pixels: Tensor, tile_size: int, tiles_x: int, tiles_y: int) -> tuple[Tensor, Tensor]:
    tile = (pixels[:, 1] // tile_size) * tiles_x + pixels[:, 0] // tile_size
    order = torch.sort(tile * tile_size + pixels[:, 1] % tile_size, stable=True).indices
    offsets = torch.zeros(tiles_x * tiles_y + 1, dtype=torch.long, device=pixels.device)
    offsets[1:] = torch.cumsum(torch.bincount(tile, minlength=tiles_x * tiles_y), 0)
    return order, offsets


@functools.lru_cache(maxsize=8)
def _frame_pixels(width: int, height: int, tile_size: int, device: str):
    grid = pixel_grid(width, height, device)
    tiles_x = (width + tile_size - 1) // tile_size
    tiles_y = (height + tile_size - 1) // tile_size
    return (grid, *_group(grid, tile_size, tiles_x, tiles_y))


def frame_pixels(proj: Projection) -> tuple[Tensor, Tensor, Tensor]:
    """All pixels of the view [H*W, 2] (x, y) in row-major order with their tile grouping, as
    :func:`group_pixels_by_tile` returns it. Cached per image size: treat the tensors as read-only."""
    return _frame_pixels(proj.width, proj.height, proj.tile_size, str(proj.means2d.device))

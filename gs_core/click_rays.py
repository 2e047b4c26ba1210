"""A click's weights without torch: the Gaussians that blend into a few pixels and their ``w = alpha T``
there, computed in numpy (float64) from a 3DGS scene and any pinhole camera.

A click from the shell needs one pixel's column of the blending matrix, not a frame: projecting every
Gaussian in numpy takes less time than starting torch. The formulas are the engine's, term for term
(:func:`gs_core.engine.projection.project_reference`: EWA with ``eps2d``, the frustum clamp, the
3.33-sigma screen extent and its 16x16 tile lists; :mod:`gs_core.engine.torch_backend`: the alpha
clamp and cut-offs and front-to-back compositing), and the tests hold this module to the torch
reference run in float64. 2DGS scenes take the engine's path.
"""

from __future__ import annotations

import numpy as np

from .camera import Camera
from .errors import UserError

TILE_SIZE = 16  # the engine's constants (gs_core.engine.projection / torch_backend)
EPS2D = 0.3
RADIUS_SIGMAS = 3.33
NEAR_PLANE, FAR_PLANE = 0.01, 1e10
ALPHA_MAX, ALPHA_MIN, T_MIN = 0.999, 1.0 / 255.0, 1e-4


def check_pixels(pixels: np.ndarray, width: int, height: int) -> np.ndarray:  # -> [P, 2] int64
    """Pixels [P, 2] (x, y) inside a ``width`` x ``height`` view, or a UserError naming the first outside."""
    pixels = np.asarray(pixels, np.int64).reshape(-1, 2)
    bad = (pixels[:, 0] < 0) | (pixels[:, 0] >= width) | (pixels[:, 1] < 0) | (pixels[:, 1] >= height)
    if bad.any():
        x, y = pixels[np.argmax(bad)]
        raise UserError(f"pixel ({x}, {y}) is outside the {width}x{height} view")
    return pixels


def _screen(means, quats, log_scales, opacity_logits, camera: Camera):
    """EWA projection of every Gaussian (Eq. 29-31 of Zwicker et al.; gsplat's pinhole form): pixel
    means [N, 2], depths [N], conics [N, 3], radii [N, 2] (0 = culled), opacities [N]."""
    R, t = camera.world_to_camera[:3, :3], camera.world_to_camera[:3, 3]
    means_c = means.astype(np.float64) @ R.T + t  # [N, 3]
    q = quats.astype(np.float64)
    w, x, y, z = (q / np.linalg.norm(q, axis=1, keepdims=True)).T
    rot = np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
                    2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
                    2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1).reshape(-1, 3, 3)
    M = rot * np.exp(log_scales.astype(np.float64))[:, None, :]
    RM = R @ M  # [N, 3, 3]: covariance in camera space is RM RM^T
    fx, fy, cx, cy, W, H = camera.fx, camera.fy, camera.cx, camera.cy, camera.width, camera.height
    tx, ty, tz = means_c.T
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        lim_x_pos, lim_x_neg = (W - cx) / fx + 0.15 * W / fx, cx / fx + 0.15 * W / fx
        lim_y_pos, lim_y_neg = (H - cy) / fy + 0.15 * H / fy, cy / fy + 0.15 * H / fy
        txc = tz * np.clip(tx / tz, -lim_x_neg, lim_x_pos)
        tyc = tz * np.clip(ty / tz, -lim_y_neg, lim_y_pos)
        J = np.zeros((len(tz), 2, 3))
        J[:, 0, 0], J[:, 0, 2] = fx / tz, -fx * txc / tz**2
        J[:, 1, 1], J[:, 1, 2] = fy / tz, -fy * tyc / tz**2
        JRM = J @ RM  # [N, 2, 3]
        cov = JRM @ JRM.transpose(0, 2, 1) + EPS2D * np.eye(2)  # [N, 2, 2]
        means2d = np.stack([fx * tx / tz + cx, fy * ty / tz + cy], -1)
        det = cov[:, 0, 0] * cov[:, 1, 1] - cov[:, 0, 1] * cov[:, 1, 0]
        valid = (det > 0) & (tz > NEAR_PLANE) & (tz < FAR_PLANE)
        det = np.maximum(det, 1e-10)
        conics = np.stack([cov[:, 1, 1] / det, -(cov[:, 0, 1] + cov[:, 1, 0]) / 2 / det, cov[:, 0, 0] / det], -1)
        radius = np.ceil(RADIUS_SIGMAS * np.sqrt(np.stack([cov[:, 0, 0], cov[:, 1, 1]], -1)))
        inside = ((means2d[:, 0] + radius[:, 0] > 0) & (means2d[:, 0] - radius[:, 0] < W)
                  & (means2d[:, 1] + radius[:, 1] > 0) & (means2d[:, 1] - radius[:, 1] < H))
        keep = valid & inside & np.isfinite(means2d).all(-1)
        opacities = 1.0 / (1.0 + np.exp(-opacity_logits.astype(np.float64)))
    radii = np.where(keep[:, None], radius, 0).astype(np.int32)
    return means2d, tz, conics, radii, opacities


def pixel_weights(scene, camera: Camera, pixels: np.ndarray,
                  limit: int | None = None) -> list[tuple[np.ndarray, np.ndarray]] | None:
    """Per pixel of ``pixels`` [P, 2] (x, y): the Gaussians of the 3DGS ``scene`` (a
    :class:`~gs_core.scene.GaussianScene`) that blend into it in ``camera`` and their weights
    ``w = alpha T``, as (indices [K] int64, weights [K] float32): :func:`gs_core.query.pixel_weights`'s
    answer, without torch. None when more than ``limit`` Gaussians may reach the pixels (huge splats
    everywhere: the engine's native projection is then faster than numpy)."""
    if scene.kind != "3dgs":
        raise ValueError("click_rays handles 3DGS scenes; 2DGS goes through the engine")
    pixels = check_pixels(pixels, camera.width, camera.height)
    near = np.flatnonzero(_may_reach(scene.means, scene.log_scales, camera, pixels))
    if limit is not None and len(near) > limit:
        return None
    means2d, depths, conics, radii, opacities = _screen(scene.means[near], scene.quats[near], scene.log_scales[near],
                                                        scene.opacity_logits[near], camera)
    tiles_x = (camera.width + TILE_SIZE - 1) // TILE_SIZE
    tiles_y = (camera.height + TILE_SIZE - 1) // TILE_SIZE
    tm, tr = means2d / TILE_SIZE, radii / TILE_SIZE
    with np.errstate(invalid="ignore"):
        lo = np.floor(tm - tr)
        hi = np.ceil(tm + tr)
    lo[:, 0], hi[:, 0] = np.clip(lo[:, 0], 0, tiles_x), np.clip(hi[:, 0], 0, tiles_x)
    lo[:, 1], hi[:, 1] = np.clip(lo[:, 1], 0, tiles_y), np.clip(hi[:, 1], 0, tiles_y)
    listed = (radii > 0).all(-1)
    out = []
    for px, py in pixels:
        tx, ty = px // TILE_SIZE, py // TILE_SIZE  # the tile lists this pixel's blend walks
        ids = np.flatnonzero(listed & (lo[:, 0] <= tx) & (tx < hi[:, 0]) & (lo[:, 1] <= ty) & (ty < hi[:, 1]))
        ids = ids[np.argsort(depths[ids], kind="stable")]  # front to back, ties by index
        dx, dy = px + 0.5 - means2d[ids, 0], py + 0.5 - means2d[ids, 1]
        a, b, c = conics[ids].T
        sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
        alpha = np.minimum(opacities[ids] * np.exp(-sigma), ALPHA_MAX)
        alpha = np.where((sigma >= 0) & (alpha >= ALPHA_MIN), alpha, 0.0)
        T_after = np.cumprod(1.0 - alpha)
        T_before = np.concatenate([[1.0], T_after[:-1]])
        w = np.where((alpha > 0) & (T_after > T_MIN), alpha * T_before, 0.0)
        hit = w > 0
        order = np.argsort(ids[hit])
        out.append((near[ids[hit][order]].astype(np.int64), w[hit][order].astype(np.float32)))
    return out


def _may_reach(means, log_scales, camera: Camera, pixels: np.ndarray) -> np.ndarray:  # -> [N] bool
    """A cheap superset of the Gaussians listed in the clicked pixels' tiles: the screen radius bounded
    through ``||J||_F^2 max(scale)^2 + eps2d`` (the 2D covariance's diagonal is at most its largest
    eigenvalue, at most that), so only these need the full projection (a 1M-splat scene: a few thousand)."""
    R, t = camera.world_to_camera[:3, :3], camera.world_to_camera[:3, 3]
    means_c = means.astype(np.float64) @ R.T + t
    tx, ty, tz = means_c.T
    fx, fy, cx, cy, W, H = camera.fx, camera.fy, camera.cx, camera.cy, camera.width, camera.height
    lim_x = max((W - cx) / fx, cx / fx) + 0.15 * W / fx  # the frustum clamp's largest |tx / tz|
    lim_y = max((H - cy) / fy, cy / fy) + 0.15 * H / fy
    front = tz > NEAR_PLANE
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        jf2 = (fx * fx * (1 + lim_x * lim_x) + fy * fy * (1 + lim_y * lim_y)) / (tz * tz)
        smax = np.exp(np.max(log_scales.astype(np.float64), axis=1))
        bound = np.ceil(RADIUS_SIGMAS * np.sqrt(jf2 * smax * smax + EPS2D)) + 1.0
        x, y = fx * tx / tz + cx, fy * ty / tz + cy
        keep = np.zeros(len(means), bool)
        for tile_x, tile_y in {(int(px) // TILE_SIZE, int(py) // TILE_SIZE) for px, py in pixels}:
            x0, y0 = tile_x * TILE_SIZE, tile_y * TILE_SIZE  # the tile's pixel box, widened by the bound
            keep |= ((x + bound >= x0 - 1) & (x - bound <= x0 + TILE_SIZE + 1)
                     & (y + bound >= y0 - 1) & (y - bound <= y0 + TILE_SIZE + 1))
    return (front & keep) | (front & ~np.isfinite(bound))

"""Screen-space splats for one pinhole camera in numpy: the per-splat math of the Blender add-on's
viewport shader, and its blending as a reference picture.

numpy only: vendored into the add-on (``build_addon.py``), whose GLSL vertex shader
(``blender_addon/splat_draw.py``) runs :func:`project` line for line and whose fragment stage is
:func:`composite`. The tests compare :func:`composite` of :func:`project` with gs_core's own
``render`` (:mod:`gs_core.engine`) for the same splats and camera; the final render uses the engine
itself, with the colours of :func:`view_colors`.

Each splat object keeps its splats in its own frame and a world matrix ``A, t`` (Blender's
``matrix_world``). Per splat (3DGS, Zwicker et al.'s EWA splatting as gsplat's
``fully_fused_projection``):

* world mean ``A x + t``, world covariance ``A R S S^T R^T A^T``;
* the camera-space covariance through the Jacobian of the perspective map at the mean, clamped to
  1.3x the field of view, plus the ``eps2d = 0.3`` pixel low-pass; its inverse (the conic) and a
  screen radius of ``ceil(3.33 sigma)`` per axis;
* colour ``max(0, sum_k c_k Y_k(d) + 0.5)`` with ``d`` the unit direction from the camera to the mean
  *in the object's frame* (``A^-1 (mean - camera)``): the SH stay as stored, for any invertible ``A``;
  for a similarity this equals rotating every SH band (:func:`gs_core.sh.rotate_rest`).

Blending is back to front over all objects together (one depth order by camera-space z, ties by
splat order), premultiplied: ``C = alpha c + (1 - alpha) C`` with ``alpha = min(0.999, o exp(-s))``,
``s = (a dx^2 + c dy^2) / 2 + b dx dy`` at pixel centres (+0.5), skipped when ``s < 0`` or ``alpha <
1/255``. The engine blends front to back and stops a pixel before its transmittance would drop to
1e-4; a back-to-front draw cannot stop, so the two differ only at pixels whose engine transmittance
ends at or below 0.1, by at most that transmittance times the brightest colour.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import os

from . import sh
from .io.atomic import atomic_write
from .splat_transform import quat_to_matrix

EPS2D = 0.3  # gsplat's screen-space low-pass (gs_core.engine.projection.EPS2D)
RADIUS_SIGMAS = 3.33
NEAR_PLANE = 0.01
FAR_PLANE = 1e10
ALPHA_MAX = 0.999
ALPHA_MIN = 1.0 / 255.0
FOV_CLAMP = 0.3  # the Jacobian is taken inside 1 + 0.3 of the half field of view


@dataclass
class ObjectSplats:
    """One splat object: its splats in its own frame and its world matrix."""

    means: np.ndarray  # [N, 3]
    quats: np.ndarray  # [N, 4] wxyz, unit
    scales: np.ndarray  # [N, 3] standard deviations (2DGS: the third is 0)
    opacities: np.ndarray  # [N] in (0, 1)
    sh: np.ndarray  # [N, K, 3] coefficients, DC first, K = (degree + 1)^2
    matrix: np.ndarray  # [4, 4] object -> world

    def __len__(self) -> int:
        return len(self.means)

    def subset(self, keep: np.ndarray) -> "ObjectSplats":  # keep: [N] bool or indices
        return ObjectSplats(self.means[keep], self.quats[keep], self.scales[keep], self.opacities[keep],
                            self.sh[keep], self.matrix)


FIELDS = ("means", "quats", "scales", "opacities", "sh")  # what a splat file holds (not the matrix)


def save_splats(path: str | os.PathLike, obj: ObjectSplats) -> None:
    """Write ``obj``'s splats (not its matrix) as an uncompressed float32 ``.npz``, atomically: how the
    add-on hands a splat object to the backend's final render (:mod:`gs_core.render_layer`)."""
    with atomic_write(path, "wb") as fh:
        np.savez(fh, **{k: np.ascontiguousarray(getattr(obj, k), np.float32) for k in FIELDS})


@dataclass
class ScreenSplats:
    """All objects' splats in one view, concatenated in object order; invisible ones have radius 0."""

    means2d: np.ndarray  # [N, 2] pixels (x right, y down, pixel centres at +0.5)
    conics: np.ndarray  # [N, 3] (a, b, c) of the inverse 2D covariance
    radii: np.ndarray  # [N, 2] int, 0 = culled
    depths: np.ndarray  # [N] camera-space z
    colors: np.ndarray  # [N, 3]
    opacities: np.ndarray  # [N]
    width: int
    height: int

    @property
    def visible(self) -> np.ndarray:  # [N] bool
        return (self.radii > 0).all(axis=1)

    def back_to_front(self) -> np.ndarray:  # [V] indices of the visible splats, farthest first
        """The draw order: the engine's front-to-back order (z, ties by index), reversed."""
        visible = np.flatnonzero(self.visible)
        return visible[np.argsort(self.depths[visible], kind="stable")][::-1]


def camera_fields(camera) -> tuple[float, float, float, float, int, int, np.ndarray]:
    """(fx, fy, cx, cy, width, height, world_to_camera [4, 4]) of a protocol camera dict
    (``blender_addon.view_camera.pinhole_camera``) or a :class:`gs_core.camera.Camera`."""
    get = camera.get if isinstance(camera, dict) else lambda k: getattr(camera, k)
    w2c = np.asarray(get("world_to_camera"), np.float64).reshape(4, 4)
    return (float(get("fx")), float(get("fy")), float(get("cx")), float(get("cy")), int(get("width")),
            int(get("height")), w2c)


def world_covariances(obj: ObjectSplats) -> np.ndarray:  # -> [N, 3, 3]
    """``A R S S^T R^T A^T``: each splat's covariance in world space."""
    M = np.asarray(obj.matrix, np.float64)[:3, :3] @ (quat_to_matrix(obj.quats) * obj.scales[:, None, :])
    return M @ M.transpose(0, 2, 1)


def world_means(obj: ObjectSplats) -> np.ndarray:  # -> [N, 3]
    A = np.asarray(obj.matrix, np.float64)
    return np.asarray(obj.means, np.float64) @ A[:3, :3].T + A[:3, 3]


def view_colors(obj: ObjectSplats, camera_position) -> np.ndarray:  # -> [N, 3]
    """SH colours seen from ``camera_position`` [3] (world), the direction taken in the object's frame."""
    A = np.asarray(obj.matrix, np.float64)
    eye = np.linalg.solve(A[:3, :3], np.asarray(camera_position, np.float64) - A[:3, 3])
    dirs = np.asarray(obj.means, np.float64) - eye
    with np.errstate(invalid="ignore", divide="ignore"):
        dirs = dirs / np.linalg.norm(dirs, axis=1, keepdims=True)
    dirs = np.nan_to_num(dirs)
    return np.maximum(sh.evaluate(np.asarray(obj.sh, np.float64), dirs) + 0.5, 0.0)


def project(objects: list[ObjectSplats], camera) -> ScreenSplats:
    """Every splat of ``objects`` as a screen-space ellipse in ``camera`` (see the module docstring)."""
    eye = np.linalg.inv(camera_fields(camera)[6])[:3, 3]
    empty = np.zeros((0, 3))
    return project_world(np.concatenate([world_means(o) for o in objects] or [empty]),
                         np.concatenate([world_covariances(o) for o in objects] or [np.zeros((0, 3, 3))]),
                         np.concatenate([view_colors(o, eye) for o in objects] or [empty]),
                         np.concatenate([np.asarray(o.opacities, np.float64) for o in objects] or [np.zeros(0)]),
                         camera)


def project_world(means, covs, colors, opacities, camera) -> ScreenSplats:
    """EWA projection of world-space splats: means [N, 3], covariances [N, 3, 3], colours [N, 3],
    opacities [N] (the second half of :func:`project`)."""
    fx, fy, cx, cy, width, height, w2c = camera_fields(camera)
    means, covs = np.asarray(means, np.float64), np.asarray(covs, np.float64)
    R, t = w2c[:3, :3], w2c[:3, 3]
    tx, ty, tz = (means @ R.T + t).T
    cov_c = R @ covs @ R.T
    lim_x_pos = (width - cx) / fx + FOV_CLAMP * 0.5 * width / fx
    lim_x_neg = cx / fx + FOV_CLAMP * 0.5 * width / fx
    lim_y_pos = (height - cy) / fy + FOV_CLAMP * 0.5 * height / fy
    lim_y_neg = cy / fy + FOV_CLAMP * 0.5 * height / fy
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        txc = tz * np.clip(tx / tz, -lim_x_neg, lim_x_pos)
        tyc = tz * np.clip(ty / tz, -lim_y_neg, lim_y_pos)
        zero = np.zeros_like(tz)
        J = np.stack([fx / tz, zero, -fx * txc / tz**2, zero, fy / tz, -fy * tyc / tz**2], -1).reshape(-1, 2, 3)
        cov2d = J @ cov_c @ J.transpose(0, 2, 1) + EPS2D * np.eye(2)
        means2d = np.stack([fx * tx / tz + cx, fy * ty / tz + cy], axis=-1)
        det = cov2d[:, 0, 0] * cov2d[:, 1, 1] - cov2d[:, 0, 1] * cov2d[:, 1, 0]
        valid = (det > 0) & (tz > NEAR_PLANE) & (tz < FAR_PLANE)
        det = np.maximum(det, 1e-10)
        conics = np.stack([cov2d[:, 1, 1] / det, -(cov2d[:, 0, 1] + cov2d[:, 1, 0]) / 2 / det,
                           cov2d[:, 0, 0] / det], axis=-1)
        radius = np.ceil(RADIUS_SIGMAS * np.sqrt(np.stack([cov2d[:, 0, 0], cov2d[:, 1, 1]], -1)))
        inside = ((means2d[:, 0] + radius[:, 0] > 0) & (means2d[:, 0] - radius[:, 0] < width)
                  & (means2d[:, 1] + radius[:, 1] > 0) & (means2d[:, 1] - radius[:, 1] < height))
        keep = valid & inside & np.isfinite(means2d).all(-1)
    radii = np.where(keep[:, None], np.nan_to_num(radius), 0).astype(np.int64)
    return ScreenSplats(means2d, conics, radii, tz, np.asarray(colors, np.float64),
                        np.asarray(opacities, np.float64), width, height)


def composite(splats: ScreenSplats, background=None) -> tuple[np.ndarray, np.ndarray]:
    """The picture the viewport shader draws: every visible splat as a quad over its radius box,
    back to front, premultiplied (see the module docstring). Returns colour [H, W, 3] (over
    ``background`` [3], default black) and alpha [H, W]. A plain loop over splats, for tests and
    small pictures."""
    H, W = splats.height, splats.width
    color = np.zeros((H, W, 3))
    if background is not None:
        color[:] = np.asarray(background, np.float64)
    alpha = np.zeros((H, W))
    for g in splats.back_to_front():
        (mx, my), (rx, ry) = splats.means2d[g], splats.radii[g]
        x0, x1 = max(int(np.floor(mx - rx)), 0), min(int(np.ceil(mx + rx)), W)
        y0, y1 = max(int(np.floor(my - ry)), 0), min(int(np.ceil(my + ry)), H)
        if x0 >= x1 or y0 >= y1:
            continue
        dx = (np.arange(x0, x1) + 0.5)[None, :] - mx
        dy = (np.arange(y0, y1) + 0.5)[:, None] - my
        a, b, c = splats.conics[g]
        s = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
        al = np.minimum(splats.opacities[g] * np.exp(-s), ALPHA_MAX)
        al = np.where((s >= 0) & (al >= ALPHA_MIN), al, 0.0)
        color[y0:y1, x0:x1] = al[..., None] * splats.colors[g] + (1 - al[..., None]) * color[y0:y1, x0:x1]
        alpha[y0:y1, x0:x1] = al + (1 - al) * alpha[y0:y1, x0:x1]
    return color, alpha

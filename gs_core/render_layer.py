"""Splat objects rendered by the engine into an RGBA + depth layer: the final render of the Blender
add-on (F12 and animations), composited with Blender's own render by depth.

The add-on writes each splat object once as an ``.npz`` of its splats in its own frame
(:func:`gs_core.splat_view.save_splats`; rewritten only when the splats change) and asks the backend for a frame with
the objects' world matrices and the scene camera (``render_splats`` in :mod:`gs_core.server`). Per
object the world transform is baked into the geometry (:func:`gs_core.splat_transform.transform_splats`,
any invertible matrix) and the colours are the SH seen from the camera in the object's frame
(:func:`gs_core.splat_view.view_colors`); then all objects are projected and blended together by the
engine (:func:`gs_core.engine.render`), one depth order over every splat.

The layer is premultiplied colour, alpha and the expected camera-space depth ``sum w z / alpha``
(``inf`` where nothing is drawn), which Blender's Z Combine node compares with its Z pass.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .errors import UserError
from .io.atomic import atomic_write
from .splat_transform import Splats, transform_splats
from .splat_view import FIELDS, ObjectSplats, view_colors, world_means

EMPTY_DEPTH = np.inf


def load_object(path: str | os.PathLike, matrix) -> ObjectSplats:
    """The splats :func:`gs_core.splat_view.save_splats` wrote, with world matrix ``matrix`` [4, 4]; a bad file is a UserError."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in FIELDS}
    except (OSError, KeyError, ValueError) as exc:
        raise UserError(f"{path}: not a splat layer file ({exc})") from None
    n = len(arrays["means"])
    shapes_ok = (arrays["means"].shape == (n, 3) and arrays["quats"].shape == (n, 4)
                 and arrays["scales"].shape == (n, 3) and arrays["opacities"].shape == (n,)
                 and arrays["sh"].ndim == 3 and arrays["sh"].shape[0] == n and arrays["sh"].shape[2] == 3)
    if not shapes_ok:
        raise UserError(f"{path}: splat arrays of inconsistent shapes")
    return ObjectSplats(matrix=object_matrix(path, matrix), **arrays)


def object_matrix(path, matrix) -> np.ndarray:  # -> [4, 4] float64
    """The world matrix sent with layer file ``path``, checked (finite, 4x4, invertible linear part)."""
    try:
        matrix = np.asarray(matrix, np.float64)
    except (TypeError, ValueError):
        matrix = np.zeros(0)
    if matrix.shape != (4, 4) or not np.isfinite(matrix).all() or abs(np.linalg.det(matrix[:3, :3])) < 1e-12:
        raise UserError(f"{path}: the object matrix must be a finite, invertible 4x4")
    return matrix


def world_gaussians(objects: list[ObjectSplats], dtype=None):
    """The engine's Gaussians (float32 unless ``dtype``) of all objects in world space, in order."""
    import torch

    from .engine import Gaussians

    means, quats, scales, opac = [], [], [], []
    for o in objects:
        with np.errstate(divide="ignore"):
            log_scales = np.log(np.asarray(o.scales, np.float64))
        moved = transform_splats(o.matrix, Splats(np.asarray(o.means, np.float64), np.asarray(o.quats, np.float64),
                                                  log_scales, np.zeros((len(o), 0, 3))))
        means.append(world_means(o))
        quats.append(moved.quats)
        scales.append(np.exp(moved.log_scales))
        opac.append(o.opacities)

    def t(parts, width):
        return torch.as_tensor(np.concatenate(parts) if parts else np.zeros((0, width)), dtype=dtype or torch.float32)

    q = torch.nn.functional.normalize(t(quats, 4), dim=-1)
    return Gaussians(t(means, 3).contiguous(), q.contiguous(), t(scales, 3).contiguous(),
                     t([np.asarray(o, np.float64)[:, None] for o in opac], 1)[:, 0].contiguous())


def render_layer(objects: list[ObjectSplats], camera, backend: str = "auto", dtype=None) -> np.ndarray:
    """All ``objects`` seen by ``camera`` (a :class:`gs_core.camera.Camera`): [H, W, 5] of premultiplied
    r, g, b, alpha and depth (see the module docstring); float32, or ``dtype`` (a torch dtype: float64
    with the torch backend is the tests' reference precision)."""
    import torch

    from .engine import project, render

    H, W = camera.height, camera.width
    out = np.zeros((H, W, 5), np.float64 if dtype == torch.float64 else np.float32)
    out[..., 4] = EMPTY_DEPTH
    if not objects or sum(len(o) for o in objects) == 0:
        return out
    gaussians = world_gaussians(objects, dtype)
    colors = np.concatenate([view_colors(o, camera.position) for o in objects])
    with torch.no_grad():
        proj = project(gaussians, camera, backend=backend)
        result = render(proj, torch.as_tensor(colors, dtype=gaussians.means.dtype), backend=backend)
    alpha = result.alpha.numpy()
    out[..., :3] = result.features.numpy()
    out[..., 3] = alpha
    with np.errstate(divide="ignore", invalid="ignore"):
        out[..., 4] = np.where(alpha > 0, result.depth.numpy() / alpha, EMPTY_DEPTH)
    return out


def save_layer(path: str | os.PathLike, layer: np.ndarray) -> Path:
    """Write the [H, W, 5] layer as ``.npy``, atomically."""
    with atomic_write(path, "wb") as fh:
        np.save(fh, np.ascontiguousarray(layer, np.float32), allow_pickle=False)
    return Path(path)

"""Blender views <-> the backend's pinhole cameras (Blender-free: numpy only).

Blender's 3D view gives a view matrix (world -> view, OpenGL axes: x right, y up, looking down -z)
and a perspective window matrix; the backend's camera (``gs_core.camera.Camera``, the protocol of
``gs_core/server.py``) is OpenCV/COLMAP: intrinsics ``fx fy cx cy``, pixel centres at +0.5, y down,
z forward, and a world-to-camera matrix. The backend's "world" is the prepared scene's own frame,
i.e. the splat object's local space, so the object's matrix is folded into the extrinsics: a moved,
rotated or scaled object is clicked where it is shown.

From an OpenGL perspective matrix ``P`` of a ``W x H`` region: ``x_ndc = P00 x/(-z) - P02`` and
``u = W (x_ndc + 1) / 2``, so ``fx = W P00 / 2``, ``cx = W (1 - P02) / 2``; rows count from the top,
so ``fy = H P11 / 2``, ``cy = H (1 + P12) / 2``.
"""

from __future__ import annotations

import numpy as np

GL_TO_CV = np.diag([1.0, -1.0, -1.0, 1.0])  # flips y and z: OpenGL view axes <-> OpenCV camera axes


class ViewError(ValueError):
    """A view the backend cannot query (orthographic, degenerate); the message says what to do."""


def pinhole_camera(view_matrix, window_matrix, width: int, height: int, object_matrix=None) -> dict:
    """The protocol camera of a perspective Blender view of size ``width x height`` pixels, in the
    local frame of an object with world matrix ``object_matrix`` [4, 4] (default: identity)."""
    view = np.asarray(view_matrix, np.float64).reshape(4, 4)
    proj = np.asarray(window_matrix, np.float64).reshape(4, 4)
    obj = np.eye(4) if object_matrix is None else np.asarray(object_matrix, np.float64).reshape(4, 4)
    if abs(proj[3, 3]) > 1e-9 or abs(proj[3, 2] + 1.0) > 1e-6:
        raise ViewError("the view is orthographic: switch to a perspective view (numpad 5) to click on splats")
    if width <= 0 or height <= 0 or proj[0, 0] <= 0 or proj[1, 1] <= 0:
        raise ViewError(f"degenerate view ({width}x{height} pixels)")
    if abs(np.linalg.det(obj[:3, :3])) < 1e-12:
        raise ViewError("the splat object's scale is zero on some axis")
    w2c = GL_TO_CV @ view @ obj
    return {"fx": width * proj[0, 0] / 2, "fy": height * proj[1, 1] / 2,
            "cx": width * (1 - proj[0, 2]) / 2, "cy": height * (1 + proj[1, 2]) / 2,
            "width": int(width), "height": int(height), "world_to_camera": w2c.tolist()}


def view_matrices(camera: dict, object_matrix=None, near: float = 0.01, far: float = 1000.0):
    """The inverse of :func:`pinhole_camera`: (view matrix, window matrix) [4, 4] of a Blender view
    showing ``camera`` (e.g. a dataset camera) with the object at ``object_matrix``."""
    obj = np.eye(4) if object_matrix is None else np.asarray(object_matrix, np.float64).reshape(4, 4)
    w2c = np.asarray(camera["world_to_camera"], np.float64).reshape(4, 4)
    view = GL_TO_CV @ w2c @ np.linalg.inv(obj)
    width, height = camera["width"], camera["height"]
    proj = np.zeros((4, 4))
    proj[0, 0], proj[0, 2] = 2 * camera["fx"] / width, 1 - 2 * camera["cx"] / width
    proj[1, 1], proj[1, 2] = 2 * camera["fy"] / height, 2 * camera["cy"] / height - 1
    proj[2, 2], proj[2, 3] = -(far + near) / (far - near), -2 * far * near / (far - near)
    proj[3, 2] = -1.0
    return view, proj


def click_pixel(region_x: int, region_y: int, height: int) -> tuple[int, int]:
    """Blender's region coordinates (origin bottom left) -> the pixel (x, y) counted from the top."""
    return int(region_x), int(height - 1 - region_y)

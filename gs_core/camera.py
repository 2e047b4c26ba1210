"""A pinhole camera: intrinsics, world-to-camera extrinsics and image size.

Conventions follow gsplat and COLMAP: camera looks down +z, x right, y down, pixel centres at
(i + 0.5, j + 0.5). ``world_to_camera`` is the 4x4 matrix that maps world points to camera space.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace

import numpy as np


MAX_IMAGE_SIDE = 1 << 15  # pixels: a camera larger than any photo is a mistake


@dataclass(frozen=True)
class Camera:
    """One undistorted pinhole view."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int
    world_to_camera: np.ndarray = field(repr=False)  # [4, 4] float64
    name: str = ""

    def __post_init__(self):
        w2c = np.asarray(self.world_to_camera, dtype=np.float64)
        if w2c.shape != (4, 4):
            raise ValueError(f"camera {self.name!r}: world_to_camera must be 4x4, got {w2c.shape}")
        if not np.isfinite(w2c).all():
            raise ValueError(f"camera {self.name!r}: world_to_camera has non-finite values")
        object.__setattr__(self, "world_to_camera", w2c)
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"camera {self.name!r}: image size {self.width}x{self.height} is not positive")

    @property
    def K(self) -> np.ndarray:  # [3, 3]
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @property
    def camera_to_world(self) -> np.ndarray:  # [4, 4]
        return np.linalg.inv(self.world_to_camera)

    @property
    def position(self) -> np.ndarray:  # [3]
        return self.camera_to_world[:3, 3]

    def scaled(self, factor: float) -> "Camera":
        """The same view at ``factor`` times the resolution (e.g. 0.5 halves width and height).

        The image size is rounded; focal lengths and the principal point follow the exact ratio of
        the new to the old size so pixels still cover the same rays.
        """
        width = max(1, int(round(self.width * factor)))
        height = max(1, int(round(self.height * factor)))
        sx, sy = width / self.width, height / self.height
        return replace(self, fx=self.fx * sx, fy=self.fy * sy, cx=self.cx * sx, cy=self.cy * sy,
                       width=width, height=height)

    def to_dict(self) -> dict:
        """The camera as JSON-ready values (the work folder's ``cameras.json`` rows, the server's
        camera object)."""
        return {"name": self.name, "fx": self.fx, "fy": self.fy, "cx": self.cx, "cy": self.cy,
                "width": self.width, "height": self.height, "world_to_camera": self.world_to_camera.tolist()}

    @staticmethod
    def from_dict(data, name: str = "") -> "Camera":
        """A camera from intrinsics and pose ``{fx, fy, cx, cy, width, height, world_to_camera}``
        (4x4, OpenCV axes, optional ``name``), as :meth:`to_dict` writes it and the add-on sends it.
        Raises ValueError with one line saying what is wrong."""
        keys = ("fx", "fy", "cx", "cy", "width", "height", "world_to_camera")
        if not isinstance(data, dict):
            raise ValueError("expected an object {" + ", ".join(keys) + "}")
        missing = [k for k in keys if k not in data]
        if missing:
            raise ValueError(f"missing {', '.join(missing)}")
        for key in keys[:6]:
            if isinstance(data[key], bool) or not isinstance(data[key], (int, float)):
                raise ValueError(f"{key} must be a number, got {json.dumps(data[key])[:40]}")
        try:
            values = [float(data[k]) for k in ("fx", "fy", "cx", "cy")]
            w2c = np.asarray(data["world_to_camera"], np.float64)
        except (TypeError, ValueError, OverflowError) as exc:
            raise ValueError(str(exc)) from None
        if not np.isfinite(values).all() or values[0] <= 0 or values[1] <= 0:
            raise ValueError(f"focal lengths must be positive and finite, got fx={values[0]}, fy={values[1]}")
        width, height = data["width"], data["height"]
        if not all(1 <= v <= MAX_IMAGE_SIDE and float(v).is_integer() for v in (width, height)):
            raise ValueError(f"width and height must be whole numbers of pixels in [1, {MAX_IMAGE_SIDE}], "
                             f"got {width!r}x{height!r}")
        return Camera(*values, int(width), int(height), w2c, str(data.get("name", name))[:200])

    @staticmethod
    def look_at(eye, target, up=(0.0, 0.0, 1.0), *, fov_x_deg: float = 60.0, width: int = 64,
                height: int = 48, name: str = "") -> "Camera":
        """A camera at ``eye`` looking at ``target`` (OpenCV axes: x right, y down, z forward)."""
        eye = np.asarray(eye, dtype=np.float64)
        forward = np.asarray(target, dtype=np.float64) - eye
        forward /= np.linalg.norm(forward)
        right = np.cross(forward, np.asarray(up, dtype=np.float64))
        if np.linalg.norm(right) < 1e-8:  # looking along `up`: pick any perpendicular
            right = np.cross(forward, np.array([1.0, 0.0, 0.0]))
        right /= np.linalg.norm(right)
        down = np.cross(forward, right)
        R = np.stack([right, down, forward])  # rows: camera axes in world
        w2c = np.eye(4)
        w2c[:3, :3] = R
        w2c[:3, 3] = -R @ eye
        fx = 0.5 * width / np.tan(np.radians(fov_x_deg) / 2)
        return Camera(fx=fx, fy=fx, cx=width / 2, cy=height / 2, width=width, height=height,
                      world_to_camera=w2c, name=name)

"""Surface samplers: points spread uniformly by area over simple primitives, with a local frame.

Every sampler returns a :class:`Surface` in the primitive's own coordinates; objects place them
with :meth:`Surface.transformed`. The generator turns each sample into one flat Gaussian lying in
the tangent plane (the frame's third axis is the surface normal).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..splat_transform import quats_from_matrices

MIN_SAMPLES = 24  # thin or tiny surfaces still get a recognisable set of splats


@dataclass
class Surface:
    """Samples on one surface patch."""

    points: np.ndarray  # [n, 3]
    normals: np.ndarray  # [n, 3] unit, outward
    tangents: np.ndarray  # [n, 3] unit, perpendicular to the normals
    spacing: float  # mean distance between neighbouring samples (sqrt(area / n))

    def __len__(self) -> int:
        return len(self.points)

    def subset(self, keep: np.ndarray) -> "Surface":  # keep [n] bool
        return Surface(self.points[keep], self.normals[keep], self.tangents[keep], self.spacing)

    def transformed(self, rotation: np.ndarray, translation: np.ndarray) -> "Surface":
        """``rotation`` [3, 3] then ``translation`` [3] applied to points and frames."""
        return Surface(self.points @ rotation.T + translation, self.normals @ rotation.T,
                       self.tangents @ rotation.T, self.spacing)


def _count(area: float, density: float, feature: float) -> tuple[int, float]:
    """Sample count and spacing; the spacing never exceeds ``feature`` (the surface's thinnest
    dimension), so a thin leg gets splats no wider than itself."""
    n = max(MIN_SAMPLES, int(round(area * density)), int(np.ceil(area / feature**2)))
    return n, float(np.sqrt(area / n))


def _perpendicular(normals: np.ndarray) -> np.ndarray:  # [n, 3] -> [n, 3]
    """A unit vector perpendicular to each normal (any one; stable away from the poles)."""
    helper = np.where(np.abs(normals[:, 2:3]) < 0.9, [[0.0, 0.0, 1.0]], [[1.0, 0.0, 0.0]])
    t = np.cross(helper, normals)
    return t / np.linalg.norm(t, axis=1, keepdims=True)


def rectangle(origin, u, v, density: float, rng: np.random.Generator) -> Surface:
    """The parallelogram ``origin + a u + b v`` (a, b in [0, 1]); normal = u x v (normalised).

    Samples are jittered on a grid, so large flat surfaces have no holes.
    """
    origin, u, v = (np.asarray(x, dtype=np.float64) for x in (origin, u, v))
    normal = np.cross(u, v)
    area = float(np.linalg.norm(normal))
    lu, lv = np.linalg.norm(u), np.linalg.norm(v)
    n, spacing = _count(area, density, min(lu, lv))
    nu = max(1, int(round(np.sqrt(n * lu / lv))))
    nv = max(1, int(np.ceil(n / nu)))
    cells = np.stack(np.meshgrid(np.arange(nu), np.arange(nv), indexing="ij"), -1).reshape(-1, 2)
    cells = cells[rng.permutation(len(cells))[:n]]
    ab = (cells + rng.random((len(cells), 2))) / [nu, nv]
    points = origin + ab[:, :1] * u + ab[:, 1:] * v
    normal = normal / area
    return Surface(points, np.tile(normal, (len(points), 1)), np.tile(u / lu, (len(points), 1)), spacing)


def box(size, density: float, rng: np.random.Generator, *, bottom: bool = True) -> Surface:
    """The six faces (five without ``bottom``) of an axis-aligned box, base centred at the origin."""
    sx, sy, sz = (float(s) for s in size)
    lo = np.array([-sx / 2, -sy / 2, 0.0])
    X, Y, Z = np.array([sx, 0, 0.0]), np.array([0, sy, 0.0]), np.array([0, 0, sz])
    faces = [(lo + Z, X, Y), (lo, Z, Y), (lo + X, Y, Z), (lo, X, Z), (lo + Y, Z, X)]  # top, -x, +x, -y, +y
    if bottom:
        faces.append((lo, Y, X))
    return concat([rectangle(o, a, b, density, rng) for o, a, b in faces])


def disc(radius: float, density: float, rng: np.random.Generator, *, up: bool = True) -> Surface:
    """A disc of ``radius`` in the z = 0 plane, normal +z (or -z)."""
    n, spacing = _count(np.pi * radius**2, density, radius)
    r = radius * np.sqrt(rng.random(n))
    phi = rng.uniform(0, 2 * np.pi, n)
    points = np.stack([r * np.cos(phi), r * np.sin(phi), np.zeros(n)], axis=1)
    normals = np.tile([0.0, 0.0, 1.0 if up else -1.0], (n, 1))
    return Surface(points, normals, np.tile([1.0, 0.0, 0.0], (n, 1)), spacing)


def frustum(r_bottom: float, r_top: float, height: float, density: float, rng: np.random.Generator,
            *, caps: tuple[bool, bool] = (True, True)) -> Surface:
    """The side of a truncated cone along +z from 0 to ``height`` (a cylinder when the radii match),
    with optional bottom/top caps."""
    slant = float(np.hypot(height, r_bottom - r_top))
    area = np.pi * (r_bottom + r_top) * slant
    n, spacing = _count(area, density, max(r_bottom, r_top))
    # the side's area density grows with the radius: invert the CDF of r(h) along the height
    u = rng.random(n)
    if abs(r_top - r_bottom) < 1e-9:
        h = u * height
    else:
        r = np.sqrt(r_bottom**2 + u * (r_top**2 - r_bottom**2))
        h = (r - r_bottom) / (r_top - r_bottom) * height
    radius = r_bottom + (r_top - r_bottom) * h / height
    phi = rng.uniform(0, 2 * np.pi, n)
    radial = np.stack([np.cos(phi), np.sin(phi), np.zeros(n)], axis=1)
    points = radial * radius[:, None] + np.c_[np.zeros((n, 2)), h]
    normals = radial * height / slant + np.array([0.0, 0.0, (r_bottom - r_top) / slant])
    tangents = np.stack([-np.sin(phi), np.cos(phi), np.zeros(n)], axis=1)
    parts = [Surface(points, normals, tangents, spacing)]
    if caps[0] and r_bottom > 0:
        parts.append(disc(r_bottom, density, rng, up=False))
    if caps[1] and r_top > 0:
        top = disc(r_top, density, rng)
        parts.append(top.transformed(np.eye(3), np.array([0.0, 0.0, height])))
    return concat(parts)


def sphere(radius: float, density: float, rng: np.random.Generator) -> Surface:
    """A sphere of ``radius`` resting on the z = 0 plane (centre at z = radius)."""
    n, spacing = _count(4 * np.pi * radius**2, density, radius / 2)
    normals = rng.normal(size=(n, 3))
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    return Surface(normals * radius + [0.0, 0.0, radius], normals, _perpendicular(normals), spacing)


def torus_arc(major: float, minor: float, angle: float, density: float, rng: np.random.Generator) -> Surface:
    """A torus tube of radius ``minor`` around a circle of radius ``major`` in the x-z plane,
    centred at the origin, covering ``-angle/2 .. angle/2`` around +x (a mug handle)."""
    area = angle * major * 2 * np.pi * minor
    n, spacing = _count(area, density, 1.5 * minor)
    theta = rng.uniform(-angle / 2, angle / 2, 4 * n)
    phi = rng.uniform(0, 2 * np.pi, 4 * n)
    # the tube's area element is (major + minor cos phi): rejection-sample it
    keep = rng.random(4 * n) * (major + minor) < major + minor * np.cos(phi)
    theta, phi = theta[keep][:n], phi[keep][:n]
    ring = np.stack([np.cos(theta), np.zeros_like(theta), np.sin(theta)], axis=1)
    normals = ring * np.cos(phi)[:, None] + np.array([0.0, 1.0, 0.0]) * np.sin(phi)[:, None]
    points = ring * major + normals * minor
    tangents = np.stack([-np.sin(theta), np.zeros_like(theta), np.cos(theta)], axis=1)
    return Surface(points, normals, tangents, spacing)


def concat(surfaces: list[Surface]) -> Surface:
    """One surface from several; ``spacing`` is the sample-weighted mean."""
    n = np.array([len(s) for s in surfaces], dtype=np.float64)
    spacing = float((n * [s.spacing for s in surfaces]).sum() / n.sum())
    return Surface(np.concatenate([s.points for s in surfaces]), np.concatenate([s.normals for s in surfaces]),
                   np.concatenate([s.tangents for s in surfaces]), spacing)


def yaw_matrix(yaw: float) -> np.ndarray:  # [3, 3]
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def frames_to_quats(normals: np.ndarray, tangents: np.ndarray) -> np.ndarray:  # [n, 3] x2 -> [n, 4] wxyz
    """Unit quaternions of the rotations whose columns are (tangent, normal x tangent, normal)."""
    t = tangents - (tangents * normals).sum(1, keepdims=True) * normals
    t /= np.linalg.norm(t, axis=1, keepdims=True)
    R = np.stack([t, np.cross(normals, t), normals], axis=2)  # [n, 3, 3], columns = axes
    return quats_from_matrices(R)

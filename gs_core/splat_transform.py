"""Bake a 4x4 affine transform into Gaussian splats: means, quaternions, log-scales, SH coefficients.

numpy only: vendored into the Blender add-on (which bakes object world matrices on export) and used
by gs_core when it writes an edited scene.

Arrays follow :class:`gs_core.scene.GaussianScene`: means [N, 3], quats [N, 4] wxyz (as stored, not
necessarily unit), log_scales [N, 3] (3DGS) or [N, 2] (2DGS, the third axis is the flat normal),
sh_rest [N, K, 3] (non-DC coefficients, coefficient-major). A transform ``x -> A x + t`` maps each
Gaussian's covariance to ``A S A^T`` and its colour function to ``c(A^-1 d)``:

* similarity (``A = s O``, O orthogonal, mirrors allowed): exact. Means ``A x + t``; quaternions
  ``q_R * q`` with R = +-O the proper rotation (the stored quaternion norm is kept); log-scales
  ``+ log|s|``; each SH band multiplied by its band matrix for O (for a mirror that matrix carries
  the parity: odd bands change sign under -I).
* any other invertible ``A`` (non-uniform scale, shear): the covariance is still a Gaussian and is
  re-decomposed exactly (SVD of ``A R diag(scale)``), but a view-dependent colour cannot be
  expressed in the same SH degree, so it is refused unless every SH rest coefficient is zero.
* singular ``A``: refused.

An identity linear part returns quats, log-scales and SH untouched (bit for bit); only means move.
Normals (INRIA files carry ``nx ny nz``) transform as covectors, see :func:`transform_normals`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from . import sh

# Relative spread of A's singular values below which A counts as a uniform scale. Blender's float32
# world matrices carry ~1e-7 relative noise; a deliberate non-uniform scale is far above this.
UNIFORM_SCALE_TOLERANCE = 1e-5


class SplatTransformError(ValueError):
    """A transform that cannot be baked into splats exactly; the message says why and what to do."""


class Splats(NamedTuple):
    """The transform-dependent per-splat arrays (float64 after a transform)."""

    means: np.ndarray  # [N, 3]
    quats: np.ndarray  # [N, 4] wxyz
    log_scales: np.ndarray  # [N, 3] or [N, 2]
    sh_rest: np.ndarray  # [N, K, 3], K = (degree+1)^2 - 1 (may be 0)


class Similarity(NamedTuple):
    """``A = scale * orthogonal``; ``orthogonal`` has det +1 (rotation) or -1 (rotation * mirror)."""

    scale: float  # > 0
    orthogonal: np.ndarray  # [3, 3]

    @property
    def rotation(self) -> np.ndarray:  # [3, 3], det +1: what the covariance sees (-I is invisible to it)
        return self.orthogonal if np.linalg.det(self.orthogonal) > 0 else -self.orthogonal


def as_similarity(linear: np.ndarray, tolerance: float = UNIFORM_SCALE_TOLERANCE) -> Similarity | None:
    """``linear`` [3, 3] as a uniform scale times an orthogonal matrix, or None when it is not one.

    Raises :class:`SplatTransformError` for a singular matrix.
    """
    a = np.asarray(linear, dtype=np.float64)
    u, sigma, vt = np.linalg.svd(a)
    if not np.all(np.isfinite(sigma)) or sigma[-1] <= sigma[0] * 1e-12:
        raise SplatTransformError(f"the transform is singular (scale factors {_fmt(sigma)}); "
                                  "splats cannot be flattened to zero size")
    if sigma[0] - sigma[-1] > tolerance * sigma[0]:
        return None
    return Similarity(float(np.exp(np.mean(np.log(sigma)))), u @ vt)


def quat_from_matrix(rotation: np.ndarray) -> np.ndarray:
    """Unit quaternion wxyz [4] of a proper rotation matrix [3, 3] (w >= 0)."""
    return quats_from_matrices(np.asarray(rotation, dtype=np.float64)[None])[0]


def quat_to_matrix(quats: np.ndarray) -> np.ndarray:
    """Rotation matrices [N, 3, 3] of quaternions wxyz [N, 4] (normalised first; zero -> identity)."""
    q = np.asarray(quats, dtype=np.float64)
    norm = np.linalg.norm(q, axis=-1, keepdims=True)
    q = np.where(norm > 0, q / np.where(norm > 0, norm, 1.0), [1.0, 0.0, 0.0, 0.0])
    w, x, y, z = np.moveaxis(q, -1, 0)
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
        np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
        np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
    ], -2)


def quat_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product ``a * b`` of wxyz quaternions (broadcasting [..., 4])."""
    aw, ax, ay, az = np.moveaxis(np.asarray(a, dtype=np.float64), -1, 0)
    bw, bx, by, bz = np.moveaxis(np.asarray(b, dtype=np.float64), -1, 0)
    return np.stack([aw * bw - ax * bx - ay * by - az * bz,
                     aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx,
                     aw * bz + ax * by - ay * bx + az * bw], axis=-1)


def quats_from_matrices(m: np.ndarray) -> np.ndarray:
    """Unit quaternions wxyz [N, 4] (w >= 0) of proper rotation matrices [N, 3, 3]."""
    # The largest of the four squared components is taken directly, the others from off-diagonal
    # sums or differences divided by it: stable for every rotation.
    trace = m[:, 0, 0] + m[:, 1, 1] + m[:, 2, 2]
    squares = np.stack([1.0 + trace, 1.0 + 2 * m[:, 0, 0] - trace, 1.0 + 2 * m[:, 1, 1] - trace,
                        1.0 + 2 * m[:, 2, 2] - trace], axis=1)
    k = np.argmax(squares, axis=1)
    big = 0.5 * np.sqrt(np.take_along_axis(squares, k[:, None], 1)[:, 0])
    f = 0.25 / big
    d21, d02, d10 = m[:, 2, 1] - m[:, 1, 2], m[:, 0, 2] - m[:, 2, 0], m[:, 1, 0] - m[:, 0, 1]
    s01, s02, s12 = m[:, 0, 1] + m[:, 1, 0], m[:, 0, 2] + m[:, 2, 0], m[:, 1, 2] + m[:, 2, 1]
    candidates = np.stack([
        np.stack([big, d21 * f, d02 * f, d10 * f], 1),
        np.stack([d21 * f, big, s01 * f, s02 * f], 1),
        np.stack([d02 * f, s01 * f, big, s12 * f], 1),
        np.stack([d10 * f, s02 * f, s12 * f, big], 1),
    ], axis=1)  # [N, 4 choices, 4]
    q = np.take_along_axis(candidates, k[:, None, None], 1)[:, 0]
    return np.where(q[:, :1] < 0, -q, q)


def transform_splats(matrix: np.ndarray, splats: Splats,
                     tolerance: float = UNIFORM_SCALE_TOLERANCE) -> Splats:
    """``splats`` after ``x -> matrix @ [x, 1]``; ``matrix`` [4, 4] affine (last row 0 0 0 1).

    Raises :class:`SplatTransformError` for a singular transform, or a non-uniform one applied to
    splats with view-dependent colour.
    """
    m = np.asarray(matrix, dtype=np.float64)
    if m.shape != (4, 4) or not np.allclose(m[3], [0.0, 0.0, 0.0, 1.0]):
        raise SplatTransformError(f"expected a 4x4 affine matrix, got shape {m.shape} / last row {m[-1]}")
    linear, translation = m[:3, :3], m[:3, 3]
    means = np.asarray(splats.means, dtype=np.float64) @ linear.T + translation
    if np.array_equal(linear, np.eye(3)):
        return splats._replace(means=means)
    similarity = as_similarity(linear, tolerance)
    if similarity is not None:
        rest = splats.sh_rest
        if rest.shape[1] + 1 > sh.num_coeffs(sh.MAX_DEGREE):
            raise SplatTransformError(f"rotating SH of degree above {sh.MAX_DEGREE} ({rest.shape[1] + 1} "
                                      "coefficients per channel) is not supported; only translate these splats")
        return Splats(
            means=means,
            quats=quat_multiply(quat_from_matrix(similarity.rotation), splats.quats),
            log_scales=np.asarray(splats.log_scales, dtype=np.float64) + np.log(similarity.scale),
            sh_rest=sh.rotate_rest(rest, similarity.orthogonal) if rest.shape[1] else rest.astype(np.float64),
        )
    if np.any(splats.sh_rest != 0):
        sigma = np.linalg.svd(linear, compute_uv=False)
        degree = sh.degree_for(splats.sh_rest.shape[1] + 1)
        raise SplatTransformError(
            f"the transform scales non-uniformly or shears (scale factors {_fmt(sigma)}) and the splats "
            f"have view-dependent colour (SH degree {degree}), which such a transform cannot keep exact; "
            "use a uniform scale, or apply the non-uniform scale in a tool that refits the colours")
    quats, log_scales = _redecompose(linear, splats.quats, splats.log_scales)
    return Splats(means, quats, log_scales, splats.sh_rest.astype(np.float64))


def _redecompose(linear: np.ndarray, quats: np.ndarray, log_scales: np.ndarray):
    """Exact covariance transform ``A R diag(s)`` -> (new unit quats [N, 4], new log-scales [N, D])."""
    n, dims = log_scales.shape
    scales = np.zeros((n, 3))
    scales[:, :dims] = np.exp(np.asarray(log_scales, dtype=np.float64))  # 2DGS: flat third axis
    factor = linear @ quat_to_matrix(quats) * scales[:, None, :]  # [N, 3, 3], covariance = F F^T
    u, sigma, _ = np.linalg.svd(factor)  # sigma descending: a flat splat's normal is last
    u[:, :, 2] *= np.sign(np.linalg.det(u))[:, None]  # proper rotation
    with np.errstate(divide="ignore"):
        new_log_scales = np.log(sigma[:, :dims])
    return quats_from_matrices(u), new_log_scales


def transform_normals(matrix: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """Normals [N, 3] under ``matrix`` [4, 4]: as covectors (``A^-T n``), each keeping its length, so
    zero normals (INRIA files store zeros) stay zero. float64 [N, 3]."""
    linear = np.asarray(matrix, dtype=np.float64)[:3, :3]
    n = np.asarray(normals, dtype=np.float64)
    moved = n @ np.linalg.inv(linear)  # rows: (A^-T n)^T
    before = np.linalg.norm(n, axis=1, keepdims=True)
    after = np.linalg.norm(moved, axis=1, keepdims=True)
    return moved * np.divide(before, after, out=np.zeros_like(after), where=after > 0)


def _fmt(values) -> str:
    return ", ".join(f"{v:.6g}" for v in values)

"""Real spherical harmonics up to degree 3 in the INRIA 3DGS / gsplat convention, and their rotation.

numpy only: vendored into the Blender add-on, which bakes object transforms into exported splats.

A splat's view-dependent colour is ``c(d) = sum_k coeffs[k] * Y_k(d) + 0.5`` where ``d`` is the
unit direction from the camera to the splat and ``Y_k`` runs over degree 0 (k = 0), degree 1
(k = 1..3), degree 2 (k = 4..8), degree 3 (k = 9..15) with the trainers' signs and order. PLY files
keep k = 0 in ``f_dc_*`` and k >= 1 ("rest") in ``f_rest_*``.

Rotating a scene by an orthogonal matrix ``O`` (a rotation, or a rotation times a mirror) maps the
colour function to ``c'(d) = c(O^T d)``. Each degree's span is closed under ``O``, so the new
coefficients of a band are a ``(2l+1) x (2l+1)`` matrix times the old ones. We get that matrix by
evaluating the band at a fixed set of directions before and after rotating them and solving the
(exactly consistent) least-squares system in float64; that is exact to float64 rounding for any
orthogonal ``O``, mirrors included.
"""

from __future__ import annotations

import numpy as np

MAX_DEGREE = 3

SH_C0 = 0.28209479177387814  # 1 / (2 sqrt(pi))
SH_C1 = 0.4886025119029199  # sqrt(3 / (4 pi))
SH_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792,
         0.5462742152960396)
SH_C3 = (-0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154,
         -0.4570457994644658, 1.445305721320277, -0.5900435899266435)


def num_coeffs(degree: int) -> int:
    """Coefficients per colour channel for ``degree``, DC included: 1, 4, 9, 16."""
    return (degree + 1) ** 2


def band_slice(degree: int) -> slice:
    """Where band ``degree`` sits among all coefficients (DC at index 0)."""
    return slice(degree * degree, (degree + 1) * (degree + 1))


def eval_basis(dirs: np.ndarray, degree: int) -> np.ndarray:
    """The basis functions at unit directions ``dirs`` [..., 3] -> [..., (degree+1)^2] (float64)."""
    d = np.asarray(dirs, dtype=np.float64)
    return np.stack(basis_terms(d[..., 0], d[..., 1], d[..., 2], degree), axis=-1)


def basis_terms(x, y, z, degree: int) -> list:
    """The (degree+1)^2 basis functions at unit directions with components ``x, y, z`` [...], as a list.

    Arithmetic only, so numpy arrays and torch tensors (with autograd: the SH backward) both work;
    :func:`gs_core.engine.colors.sh_colors` is the torch user."""
    if not 0 <= degree <= MAX_DEGREE:
        raise ValueError(f"SH degree {degree} is not supported (0..{MAX_DEGREE})")
    out = [x * 0.0 + SH_C0]
    if degree >= 1:
        out += [-SH_C1 * y, SH_C1 * z, -SH_C1 * x]
    if degree >= 2:
        xx, yy, zz = x * x, y * y, z * z
        out += [SH_C2[0] * x * y, SH_C2[1] * y * z, SH_C2[2] * (2.0 * zz - xx - yy),
                SH_C2[3] * x * z, SH_C2[4] * (xx - yy)]
    if degree >= 3:
        out += [SH_C3[0] * y * (3.0 * xx - yy), SH_C3[1] * x * y * z,
                SH_C3[2] * y * (4.0 * zz - xx - yy), SH_C3[3] * z * (2.0 * zz - 3.0 * xx - 3.0 * yy),
                SH_C3[4] * x * (4.0 * zz - xx - yy), SH_C3[5] * z * (xx - yy),
                SH_C3[6] * x * (xx - 3.0 * yy)]
    return out


def evaluate(coeffs: np.ndarray, dirs: np.ndarray) -> np.ndarray:
    """Colour ``sum_k coeffs[..., k, :] Y_k(d)`` (without the +0.5 offset).

    coeffs [..., K, C] with K = (degree+1)^2 (DC included), dirs [..., 3] unit -> [..., C].
    """
    degree = degree_for(coeffs.shape[-2])
    basis = eval_basis(dirs, degree)  # [..., K]
    return np.einsum("...k,...kc->...c", basis, coeffs)


def degree_for(count: int) -> int:
    """Degree from the coefficient count per channel, DC included (1, 4, 9, 16 -> 0..3)."""
    for degree in range(MAX_DEGREE + 1):
        if num_coeffs(degree) == count:
            return degree
    raise ValueError(f"{count} SH coefficients per channel is not a full set of degree 0..{MAX_DEGREE}")


def _fibonacci_sphere(count: int) -> np.ndarray:  # [count, 3]
    i = np.arange(count) + 0.5
    z = 1.0 - 2.0 * i / count
    r = np.sqrt(1.0 - z * z)
    phi = np.pi * (1.0 + 5.0 ** 0.5) * i
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


# Well-spread directions that make every band's basis matrix full rank and well conditioned.
_SAMPLE_DIRS = _fibonacci_sphere(32)  # [32, 3]


def band_rotation_matrices(orthogonal: np.ndarray, degree: int) -> list[np.ndarray]:
    """For an orthogonal 3x3 ``orthogonal`` (det +1 or -1), matrices ``D_l`` [2l+1, 2l+1], l = 1..degree,
    such that band-l coefficients ``c`` become ``D_l @ c`` for the scene transformed by ``orthogonal``."""
    o = np.asarray(orthogonal, dtype=np.float64)
    if o.shape != (3, 3) or not np.allclose(o @ o.T, np.eye(3), atol=1e-6):
        raise ValueError("band_rotation_matrices needs an orthogonal 3x3 matrix")
    before = eval_basis(_SAMPLE_DIRS, degree)  # [S, K]
    after = eval_basis(_SAMPLE_DIRS @ o, degree)  # rows are o^T d: [S, K]
    matrices = []
    for band in range(1, degree + 1):
        cols = band_slice(band)
        solution, *_ = np.linalg.lstsq(before[:, cols], after[:, cols], rcond=None)
        matrices.append(solution)
    return matrices


def rotate_rest(sh_rest: np.ndarray, orthogonal: np.ndarray) -> np.ndarray:
    """Rotate non-DC coefficients ``sh_rest`` [N, K-1, C] (coefficient-major, like gsplat) by an
    orthogonal 3x3 matrix; returns float64 [N, K-1, C]. The DC term is rotation invariant."""
    rest = np.asarray(sh_rest, dtype=np.float64)
    degree = degree_for(rest.shape[1] + 1)
    out = np.empty_like(rest)
    for band, matrix in enumerate(band_rotation_matrices(orthogonal, degree), start=1):
        cols = slice(band * band - 1, (band + 1) * (band + 1) - 1)  # rest excludes DC
        out[:, cols] = np.einsum("ij,njc->nic", matrix, rest[:, cols])
    return out

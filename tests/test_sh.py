"""gs_core.sh: the basis matches gsplat's reference and is orthonormal; band rotations match
evaluating the SH at rotated directions (rotations and mirrors)."""

import numpy as np
import pytest

from gs_core import sh


def random_dirs(rng, n):  # [n, 3] unit
    d = rng.normal(size=(n, 3))
    return d / np.linalg.norm(d, axis=1, keepdims=True)


def random_orthogonal(rng, mirror=False):  # [3, 3]
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return -q if mirror else q


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_basis_matches_gsplat_reference(degree):
    torch = pytest.importorskip("torch")
    torch_impl = pytest.importorskip("gsplat.cuda._torch_impl")
    rng = np.random.default_rng(degree)
    dirs = random_dirs(rng, 500)
    coeffs = rng.normal(size=(500, sh.num_coeffs(degree), 3))
    ours = sh.evaluate(coeffs, dirs)
    ref = torch_impl._spherical_harmonics(degree, torch.from_numpy(dirs), torch.from_numpy(coeffs)).numpy()
    np.testing.assert_allclose(ours, ref, atol=1e-12)


def test_basis_is_orthonormal_on_the_sphere():
    # Gauss-Legendre in cos(theta) x uniform phi integrates these degree <= 6 products exactly.
    nodes, weights = np.polynomial.legendre.leggauss(8)
    phi = np.linspace(0, 2 * np.pi, 16, endpoint=False)
    z, ph = np.meshgrid(nodes, phi, indexing="ij")
    r = np.sqrt(1 - z * z)
    dirs = np.stack([r * np.cos(ph), r * np.sin(ph), z], -1).reshape(-1, 3)
    w = (weights[:, None] * np.full(phi.shape, 2 * np.pi / len(phi))).reshape(-1)
    basis = sh.eval_basis(dirs, 3)  # [M, 16]
    gram = basis.T @ (basis * w[:, None])
    np.testing.assert_allclose(gram, np.eye(16), atol=1e-12)


@pytest.mark.parametrize("mirror", [False, True])
@pytest.mark.parametrize("degree", [1, 2, 3])
def test_rotated_coefficients_equal_sh_at_rotated_directions(degree, mirror):
    rng = np.random.default_rng(10 * degree + mirror)
    orthogonal = random_orthogonal(rng, mirror)
    rest = rng.normal(size=(64, sh.num_coeffs(degree) - 1, 3))
    dc = rng.normal(size=(64, 1, 3))
    rotated = np.concatenate([dc, sh.rotate_rest(rest, orthogonal)], axis=1)
    original = np.concatenate([dc, rest], axis=1)
    dirs = random_dirs(rng, 64)
    # the transformed scene seen along O d looks like the original seen along d
    np.testing.assert_allclose(sh.evaluate(rotated, dirs @ orthogonal.T), sh.evaluate(original, dirs),
                               atol=1e-10)


def test_band_matrices_are_orthogonal_and_compose():
    rng = np.random.default_rng(3)
    a, b = random_orthogonal(rng), random_orthogonal(rng, mirror=True)
    for d_a, d_b, d_ab in zip(sh.band_rotation_matrices(a, 3), sh.band_rotation_matrices(b, 3),
                              sh.band_rotation_matrices(a @ b, 3)):
        np.testing.assert_allclose(d_a @ d_a.T, np.eye(len(d_a)), atol=1e-12)
        np.testing.assert_allclose(d_a @ d_b, d_ab, atol=1e-12)


def test_identity_and_point_mirror():
    for band, matrix in enumerate(sh.band_rotation_matrices(np.eye(3), 3), start=1):
        np.testing.assert_allclose(matrix, np.eye(2 * band + 1), atol=1e-13)
    for band, matrix in enumerate(sh.band_rotation_matrices(-np.eye(3), 3), start=1):
        np.testing.assert_allclose(matrix, (-1) ** band * np.eye(2 * band + 1), atol=1e-13)


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="orthogonal"):
        sh.band_rotation_matrices(np.diag([1.0, 2.0, 1.0]), 2)
    with pytest.raises(ValueError, match="not a full set"):
        sh.degree_for(5)
    with pytest.raises(ValueError, match="not supported"):
        sh.eval_basis(np.array([[0.0, 0.0, 1.0]]), 4)

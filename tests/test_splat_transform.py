"""gs_core.splat_transform: baking a 4x4 transform keeps every splat's covariance and view-dependent
colour exact for similarities (mirrors included), re-decomposes covariances for non-uniform
transforms without SH, refuses what cannot be exact, and leaves untouched what an identity cannot
change (bit for bit)."""

import numpy as np
import pytest

from gs_core import sh
from gs_core.splat_transform import (Splats, SplatTransformError, as_similarity, quat_from_matrix,
                                     quat_to_matrix, transform_normals, transform_splats)


def random_rotation(rng):  # [3, 3], det +1
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def random_splats(rng, n=200, degree=3, dims=3):
    return Splats(
        means=rng.normal(size=(n, 3)).astype(np.float32),
        quats=(rng.normal(size=(n, 4)) * 2).astype(np.float32),  # not unit, like trained files
        log_scales=rng.uniform(-6, 0, size=(n, dims)).astype(np.float32),
        sh_rest=rng.normal(size=(n, sh.num_coeffs(degree) - 1, 3)).astype(np.float32),
    )


def affine(linear, translation):  # [4, 4]
    m = np.eye(4)
    m[:3, :3], m[:3, 3] = linear, translation
    return m


def covariances(splats):  # [N, 3, 3]
    n, dims = splats.log_scales.shape
    scales = np.zeros((n, 3))
    scales[:, :dims] = np.exp(np.asarray(splats.log_scales, np.float64))
    f = quat_to_matrix(splats.quats) * scales[:, None, :]
    return f @ f.transpose(0, 2, 1)


def colours(splats, dc, dirs):  # [N, 3] seen along dirs [N, 3]
    coeffs = np.concatenate([dc[:, None], np.asarray(splats.sh_rest, np.float64)], axis=1)
    return sh.evaluate(coeffs, dirs)


@pytest.mark.parametrize("mirror", [False, True], ids=["rotation", "mirror"])
def test_similarity_keeps_covariance_and_colour(mirror):
    rng = np.random.default_rng(int(mirror))
    linear = 2.5 * random_rotation(rng) @ (np.diag([1.0, 1.0, -1.0]) if mirror else np.eye(3))
    translation = np.array([1.0, -2.0, 0.5])
    splats = random_splats(rng)
    out = transform_splats(affine(linear, translation), splats)

    np.testing.assert_allclose(out.means, splats.means @ linear.T + translation, atol=1e-12)
    np.testing.assert_allclose(covariances(out), linear @ covariances(splats) @ linear.T,
                               atol=1e-10, rtol=1e-10)
    np.testing.assert_allclose(out.log_scales, splats.log_scales.astype(np.float64) + np.log(2.5), atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(out.quats, axis=1),
                               np.linalg.norm(splats.quats.astype(np.float64), axis=1), rtol=1e-12)
    dc = rng.normal(size=(len(splats.means), 3))
    dirs = rng.normal(size=(len(splats.means), 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    new_dirs = dirs @ linear.T
    new_dirs /= np.linalg.norm(new_dirs, axis=1, keepdims=True)
    np.testing.assert_allclose(colours(out, dc, new_dirs), colours(splats, dc, dirs), atol=1e-5)


def test_identity_and_translation_leave_everything_else_bit_exact():
    splats = random_splats(np.random.default_rng(2))
    same = transform_splats(np.eye(4), splats)
    moved = transform_splats(affine(np.eye(3), [3.0, 0.0, -1.0]), splats)
    for out in (same, moved):
        assert out.quats is splats.quats and out.log_scales is splats.log_scales
        assert out.sh_rest is splats.sh_rest
    assert np.array_equal(same.means.astype(np.float32), splats.means)


@pytest.mark.parametrize("dims", [3, 2], ids=["3dgs", "2dgs"])
def test_non_uniform_scale_without_sh_is_exact(dims):
    rng = np.random.default_rng(dims)
    linear = random_rotation(rng) @ np.diag([1.0, 3.0, 0.5]) @ random_rotation(rng)
    splats = random_splats(rng, degree=0, dims=dims)
    out = transform_splats(affine(linear, [0.0, 1.0, 2.0]), splats)
    assert out.log_scales.shape == (len(splats.means), dims)
    np.testing.assert_allclose(covariances(out), linear @ covariances(splats) @ linear.T,
                               atol=1e-10, rtol=1e-8)
    if dims == 2:  # the flat axis is still the third one: the normal maps by A^-T
        normals = quat_to_matrix(splats.quats)[:, :, 2] @ np.linalg.inv(linear)
        normals /= np.linalg.norm(normals, axis=1, keepdims=True)
        new_normals = quat_to_matrix(out.quats)[:, :, 2]
        np.testing.assert_allclose(np.abs(np.sum(normals * new_normals, axis=1)), 1.0, atol=1e-9)


def test_non_uniform_scale_with_sh_is_refused_clearly():
    splats = random_splats(np.random.default_rng(4), degree=2)
    with pytest.raises(SplatTransformError, match=r"non-uniformly.*SH degree 2.*uniform scale"):
        transform_splats(affine(np.diag([1.0, 2.0, 1.0]), [0, 0, 0]), splats)


def test_singular_and_malformed_matrices_are_refused():
    splats = random_splats(np.random.default_rng(5), degree=1)
    with pytest.raises(SplatTransformError, match="singular"):
        transform_splats(affine(np.diag([1.0, 0.0, 1.0]), [0, 0, 0]), splats)
    bad = np.eye(4)
    bad[3, 0] = 1.0
    with pytest.raises(SplatTransformError, match="affine"):
        transform_splats(bad, splats)


def test_float32_noise_counts_as_uniform():
    rng = np.random.default_rng(6)
    linear = (3.0 * random_rotation(rng)).astype(np.float32).astype(np.float64)
    similarity = as_similarity(linear)
    assert similarity is not None and similarity.scale == pytest.approx(3.0, rel=1e-6)
    assert as_similarity(np.diag([1.0, 1.001, 1.0])) is None


def test_quaternion_matrix_round_trip_including_half_turns():
    rng = np.random.default_rng(7)
    rotations = [random_rotation(rng) for _ in range(20)]
    rotations += [np.diag([1.0, -1.0, -1.0]), np.diag([-1.0, 1.0, -1.0]), np.diag([-1.0, -1.0, 1.0])]
    for rotation in rotations:
        q = quat_from_matrix(rotation)
        assert q[0] >= 0 and np.isclose(np.linalg.norm(q), 1.0)
        np.testing.assert_allclose(quat_to_matrix(q[None])[0], rotation, atol=1e-12)


def test_normals_transform_as_covectors_and_zero_stays_zero():
    rng = np.random.default_rng(8)
    linear = random_rotation(rng) @ np.diag([1.0, 4.0, 0.5])
    tangents = rng.normal(size=(50, 3))
    normals = np.cross(tangents, rng.normal(size=(50, 3)))
    normals[0] = 0.0
    moved = transform_normals(affine(linear, [1.0, 2.0, 3.0]), normals)
    np.testing.assert_allclose(np.sum(moved * (tangents @ linear.T), axis=1), 0.0, atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(moved, axis=1), np.linalg.norm(normals, axis=1), rtol=1e-12)
    rotation = random_rotation(rng)
    np.testing.assert_allclose(transform_normals(affine(2.0 * rotation, [0, 0, 0]), normals),
                               normals @ rotation.T, atol=1e-12)


def test_degree_four_sh_moves_but_does_not_rotate():
    rng = np.random.default_rng(9)
    splats = Splats(rng.normal(size=(5, 3)), rng.normal(size=(5, 4)), rng.normal(size=(5, 3)),
                    rng.normal(size=(5, 24, 3)))
    assert transform_splats(affine(np.eye(3), [1.0, 0.0, 0.0]), splats).sh_rest is splats.sh_rest
    with pytest.raises(SplatTransformError, match="degree above 3"):
        transform_splats(affine(random_rotation(rng), [0, 0, 0]), splats)

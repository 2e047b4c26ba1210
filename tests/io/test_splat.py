""".splat: a file written by ply2splat reads back; round trips within the format's precision; hostile files."""

import numpy as np
import pytest

from gs_core.io import splat
from gs_core.io.splat import SplatError
from gs_core.scene import GaussianScene

from format_helpers import DATA, in_range_scene, max_abs, rotation_angle_deg

COLOR_TOL = 1.0 / 255 + 1e-6  # 8 bits (ply2splat truncates where we round: one step)
ROTATION_DEG = 2.0  # 8 bits per component


def test_reads_file_written_by_ply2splat():
    source = GaussianScene.load(DATA / "source.ply")
    got = GaussianScene.load(DATA / "ply2splat.splat")
    assert len(got) == len(source) and got.sh_degree == 0
    np.testing.assert_array_equal(got.means, source.means)  # float32 kept
    assert max_abs(got.log_scales, source.log_scales) <= 1e-6
    assert max_abs(got.base_colors, source.base_colors) <= COLOR_TOL
    assert max_abs(got.opacities, source.opacities) <= COLOR_TOL
    assert rotation_angle_deg(got.quats, source.quats).max() <= ROTATION_DEG


def test_round_trip(tmp_path):
    scene = in_range_scene(300, 3, seed=3)
    scene.save(tmp_path / "a.splat")
    assert (tmp_path / "a.splat").stat().st_size == 32 * len(scene)
    got = GaussianScene.load(tmp_path / "a.splat")
    np.testing.assert_array_equal(got.means, scene.means)
    assert max_abs(got.log_scales, scene.log_scales) <= 1e-6
    assert max_abs(got.base_colors, scene.base_colors) <= 0.5 / 255 + 1e-6
    assert max_abs(got.opacities, scene.opacities) <= 0.5 / 255 + 1e-6
    assert rotation_angle_deg(got.quats, scene.quats).max() <= ROTATION_DEG
    assert got.sh_rest.shape == (300, 0, 3)
    assert splat.lost_in_splat(scene)[1] == "SH bands 1-3 (view-dependent colour)"


def test_2dgs_written_flat(tmp_path):
    scene = in_range_scene(20, 0, kind="2dgs")
    scene.save(tmp_path / "flat.splat")
    got = GaussianScene.load(tmp_path / "flat.splat")
    np.testing.assert_allclose(got.log_scales[:, 2], splat.FLAT_LOG_SCALE, atol=1e-5)


@pytest.mark.parametrize("edit, message", [
    (lambda r: r["position"].__setitem__((3, 1), np.nan), "1 splats have NaN or infinite positions .first: splat 3"),
    (lambda r: r["scale"].__setitem__((5, 0), np.inf), "1 splats have NaN or infinite scales"),
    (lambda r: r["scale"].__setitem__((7, 2), -1.0), "1 splats have negative scales .first: splat 7"),
])
def test_hostile_values(tmp_path, edit, message):
    records = splat.encode_splat(in_range_scene(10, 0))
    edit(records)
    records.tofile(tmp_path / "bad.splat")
    with pytest.raises(SplatError, match=f"bad.splat: {message}"):
        GaussianScene.load(tmp_path / "bad.splat")


def test_truncated_and_empty(tmp_path):
    (tmp_path / "cut.splat").write_bytes(splat.encode_splat(in_range_scene(4, 0)).tobytes()[:-5])
    with pytest.raises(SplatError, match=r"cut\.splat: 123 bytes is not a whole number of 32-byte splats"):
        GaussianScene.load(tmp_path / "cut.splat")
    (tmp_path / "empty.splat").write_bytes(b"")
    with pytest.raises(SplatError, match=r"empty\.splat: empty file"):
        GaussianScene.load(tmp_path / "empty.splat")
    with pytest.raises(SplatError, match=r"none\.splat: no such file"):
        GaussianScene.load(tmp_path / "none.splat")


def test_refuses_unwritable_values(tmp_path):
    scene = in_range_scene(5, 0)
    scene.quats[1] = 0
    with pytest.raises(SplatError, match=r"q\.splat: splat 1 has a zero or non-finite rotation"):
        scene.save(tmp_path / "q.splat")
    assert not (tmp_path / "q.splat").exists()

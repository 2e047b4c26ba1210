"""SPZ: files written by Niantic's C++ and by splat-transform read back; our packing is byte-identical
to Niantic's; round trips stay within the format's stated precision; axes; hostile files."""

import gzip
import struct

import numpy as np
import pytest

from gs_core import sh
from gs_core.io import spz
from gs_core.io.errors import SceneFormatError
from gs_core.io.spz import SpzError
from gs_core.scene import GaussianScene
from gs_core.splat_transform import Splats, quat_to_matrix, transform_splats

from format_helpers import DATA, in_range_scene, max_abs, rotation_angle_deg

# Stated precision (module docstring), for values inside SPZ's ranges
POSITION_TOL = 0.5 / 4096 + 1e-6  # 12 fractional bits
LOG_SCALE_TOL = 0.5 / 16 + 1e-6
DC_TOL = 0.5 / (255 * 0.15) + 1e-5
OPACITY_TOL = 0.5 / 255 + 1e-6
SH1_TOL = 4.5 / 128 + 1e-6  # 5 bits: bucket of 8 steps of 1/128
SH_REST_TOL = 8.5 / 128 + 1e-6  # 4 bits
ROTATION_DEG = {2: 12.0, 3: 0.2, 4: 0.2}  # v2 keeps x y z in 8 bits and derives w (poor near w = 0)


def assert_within_spz_precision(got: GaussianScene, want: GaussianScene, version: int):
    assert len(got) == len(want)
    assert max_abs(got.means, want.means) <= POSITION_TOL
    assert max_abs(got.log_scales, want.log_scales) <= LOG_SCALE_TOL
    assert max_abs(got.sh_dc, want.sh_dc) <= DC_TOL
    assert max_abs(got.opacities, want.opacities) <= OPACITY_TOL
    assert max_abs(got.sh_rest[:, :3], want.sh_rest[:, :3]) <= SH1_TOL
    assert max_abs(got.sh_rest[:, 3:], want.sh_rest[:, 3:]) <= SH_REST_TOL
    assert rotation_angle_deg(got.quats, want.quats).max() <= ROTATION_DEG[version]


@pytest.mark.parametrize("version", [2, 3, 4])
def test_reads_files_written_by_niantic(version):
    """tests/io/data/niantic_v*.spz: Niantic's C++ converting source.ply (RDF) to SPZ (RUB)."""
    source = GaussianScene.load(DATA / "source.ply")
    got = GaussianScene.load(DATA / f"niantic_v{version}.spz")
    assert got.sh_degree == 3
    assert_within_spz_precision(got, source, version)


@pytest.mark.parametrize("version", [2, 3, 4])
def test_packed_bytes_equal_niantics(version):
    """Our encoder gives the bytes Niantic's encoder gave for the same splats (streams compared
    uncompressed: the compressor's choices may differ, the payload must not)."""
    source = GaussianScene.load(DATA / "source.ply")
    ours = spz.encode_spz(source, version)
    theirs = (DATA / f"niantic_v{version}.spz").read_bytes()
    if version < 4:
        assert gzip.decompress(ours) == gzip.decompress(theirs)
    else:
        import zstandard

        def streams(data):
            n_streams, toc = data[15], struct.unpack_from("<I", data, 16)[0]
            sizes = np.frombuffer(data, "<u8", 2 * n_streams, toc).reshape(-1, 2)
            offset, out = toc + 16 * n_streams, []
            for compressed, raw in sizes.tolist():
                out.append(zstandard.ZstdDecompressor().decompress(data[offset:offset + compressed], max_output_size=raw))
                offset += compressed
            return data[:32], out

        assert streams(ours) == streams(theirs)


def test_splat_transform_spz_is_stored_without_the_axis_flip():
    """splat-transform 3.7 writes SPZ in PLY axes: read as stored it matches, read per spec it is
    the source turned half a turn about x."""
    source = GaussianScene.load(DATA / "source.ply")
    stored = GaussianScene.load(DATA / "splat_transform.spz", axes="stored")
    assert_within_spz_precision(stored, source, 4)
    per_spec = GaussianScene.load(DATA / "splat_transform.spz")
    assert max_abs(per_spec.means, source.means * [1, -1, -1]) <= POSITION_TOL


@pytest.mark.parametrize("version", [2, 3, 4])
@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_round_trip_within_stated_precision(tmp_path, version, degree):
    scene = in_range_scene(400, degree, seed=degree * 10 + version)
    path = tmp_path / "s.spz"
    scene.save(path, version=version)
    got = GaussianScene.load(path)
    assert got.sh_degree == degree
    assert_within_spz_precision(got, scene, version)
    # a second trip through SPZ is exact: decoded values sit on the quantisation grid
    got.save(tmp_path / "t.spz", version=version)
    again = GaussianScene.load(tmp_path / "t.spz")
    for name in ("means", "log_scales", "sh_dc", "sh_rest", "opacity_logits"):
        np.testing.assert_array_equal(getattr(again, name), getattr(got, name), err_msg=name)


def test_default_version_is_3_and_v4_is_smaller(tmp_path):
    scene = in_range_scene(2000, 3, seed=1)
    scene.save(tmp_path / "a.spz")
    with gzip.open(tmp_path / "a.spz") as fh:
        assert struct.unpack("<II", fh.read(8)) == (spz.MAGIC, 3)
    scene.save(tmp_path / "b.spz", version=4)
    assert (tmp_path / "b.spz").read_bytes()[:4] == b"NGSP"
    # much smaller than the PLY either way
    scene.save(tmp_path / "c.ply")
    assert (tmp_path / "a.spz").stat().st_size * 4 < (tmp_path / "c.ply").stat().st_size


def test_2dgs_is_written_flat(tmp_path):
    scene = in_range_scene(50, 1, kind="2dgs")
    scene.save(tmp_path / "flat.spz")
    got = GaussianScene.load(tmp_path / "flat.spz")
    assert got.kind == "3dgs"
    np.testing.assert_array_equal(got.log_scales[:, 2], spz.FLAT_LOG_SCALE)
    assert max_abs(got.log_scales[:, :2], scene.log_scales) <= LOG_SCALE_TOL
    assert "2DGS flatness (written as thin 3DGS splats)" in spz.lost_in_spz(scene)


def test_axis_flip_is_the_half_turn_about_x():
    """flip_axes agrees with baking the rotation diag(1, -1, -1) by splat_transform (covariances and
    SH through sh.rotate_rest), so the sign tables are right."""
    scene = in_range_scene(64, 3, seed=5)
    means, quats, rest = spz.flip_axes(scene.means, scene.quats, scene.sh_rest)
    matrix = np.diag([1.0, -1.0, -1.0, 1.0])
    baked = transform_splats(matrix, Splats(scene.means, scene.quats, scene.log_scales, scene.sh_rest))
    np.testing.assert_allclose(means, baked.means, atol=1e-6)
    np.testing.assert_allclose(rest, baked.sh_rest, atol=1e-6)
    cov = lambda q: quat_to_matrix(q) * np.exp(scene.log_scales)[:, None, :] ** 2 @ quat_to_matrix(q).transpose(0, 2, 1)  # noqa: E731
    np.testing.assert_allclose(cov(quats), cov(baked.quats), atol=1e-6)
    np.testing.assert_allclose(rest, sh.rotate_rest(scene.sh_rest, np.diag([1.0, -1.0, -1.0])), atol=1e-6)


def test_large_scenes_trade_fractional_bits_for_range(tmp_path):
    scene = in_range_scene(100, 0, extent=3000.0)
    scene.save(tmp_path / "big.spz")
    with gzip.open(tmp_path / "big.spz") as fh:
        bits = fh.read(16)[13]
    assert bits == 11  # 3000 * 2^12 would overflow 24 bits
    got = GaussianScene.load(tmp_path / "big.spz")
    assert max_abs(got.means, scene.means) <= 0.5 / 2**bits + 1e-4


def test_positions_beyond_any_fixed_point_are_refused(tmp_path):
    scene = in_range_scene(10, 0)
    scene.means[3, 1] = 1e7
    with pytest.raises(SpzError, match=r"huge\.spz: positions reach 1e\+07"):
        scene.save(tmp_path / "huge.spz")
    assert not (tmp_path / "huge.spz").exists()


@pytest.mark.parametrize("field", ["means", "sh_dc", "quats"])
def test_nan_values_are_refused_on_write(tmp_path, field):
    scene = in_range_scene(10, 1)
    getattr(scene, field)[2, 0] = np.nan
    with pytest.raises(SpzError, match="nan.spz"):
        scene.save(tmp_path / "nan.spz")


# ---- hostile files ------------------------------------------------------------------------------

def legacy_payload(version=3, n=20, degree=1):
    scene = in_range_scene(n, degree)
    return bytearray(gzip.decompress(spz.encode_spz(scene, version)))


@pytest.mark.parametrize("edit, message", [
    (lambda p: struct.pack_into("<I", p, 0, 0x12345678), "without the SPZ magic"),
    (lambda p: struct.pack_into("<I", p, 4, 5), "SPZ version 5 is not supported"),
    (lambda p: struct.pack_into("<I", p, 4, 1), "SPZ version 1 is not supported"),
    (lambda p: struct.pack_into("<I", p, 8, 4_000_000_000), "claims 4,000,000,000 splats"),
    (lambda p: struct.pack_into("<I", p, 8, 21), r"truncated SPZ \(.* bytes of splat data for 21 splats\)"),
    (lambda p: struct.pack_into("<I", p, 8, 0), "no splats"),
    (lambda p: struct.pack_into("B", p, 12, 4), "SH degree 4 is not supported"),
    (lambda p: struct.pack_into("B", p, 13, 200), "fractional bits"),
])
def test_hostile_legacy_headers(tmp_path, edit, message):
    payload = legacy_payload()
    edit(payload)
    path = tmp_path / "bad.spz"
    path.write_bytes(gzip.compress(bytes(payload)))
    with pytest.raises(SpzError, match=f"bad.spz: .*{message}"):
        GaussianScene.load(path)


def test_truncated_and_junk_files(tmp_path):
    data = spz.encode_spz(in_range_scene(200, 2), 3)
    cases = {"cut.spz": data[: len(data) // 2], "empty.spz": b"", "junk.spz": b"hello world" * 10,
             "badgzip.spz": data[:10] + bytes(len(data) - 10)}
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(SpzError, match=name.replace(".", r"\.")):
            GaussianScene.load(tmp_path / name)
    with pytest.raises(SpzError, match=r"absent\.spz: no such file"):
        GaussianScene.load(tmp_path / "absent.spz")


def v4_file(n=30, degree=2):
    return bytearray(spz.encode_spz(in_range_scene(n, degree), 4))


@pytest.mark.parametrize("edit, message", [
    (lambda d: struct.pack_into("<I", d, 8, 10**9), "claims 1,000,000,000 splats"),
    (lambda d: struct.pack_into("B", d, 15, 3), "3 data streams, expected 6"),
    (lambda d: struct.pack_into("<I", d, 16, 10**6), "table of contents at byte 1000000"),
    (lambda d: struct.pack_into("<Q", d, 32, 2**40), "runs past the end"),
    (lambda d: struct.pack_into("<Q", d, 40, 2**40), "a stream holds 1,099,511,627,776 bytes, expected 270"),
    (lambda d: d.extend(b"junk"), "4 bytes after the last stream"),
    (lambda d: d.__setitem__(32 + 16 * 6, 0), "corrupt zstd stream"),  # the first frame's magic
])
def test_hostile_v4_files(tmp_path, edit, message):
    data = v4_file()
    edit(data)
    (tmp_path / "bad4.spz").write_bytes(bytes(data))
    with pytest.raises(SpzError, match=f"bad4.spz: .*{message}"):
        GaussianScene.load(tmp_path / "bad4.spz")


def test_spz_errors_are_scene_format_errors():
    assert issubclass(SpzError, SceneFormatError) and issubclass(SpzError, ValueError)


def test_rounding_matches_c_round_on_halves_and_their_neighbours():
    """Niantic packs with std::round (halves away from zero); float32 just below a half must not round up."""
    halves = (np.arange(-300, 300) + 0.5).astype(np.float32)
    x = np.concatenate([halves, np.nextafter(halves, np.float32(0)), np.nextafter(halves, np.float32(1e9)),
                        np.float32([0.49999997, -0.49999997, 0.0, -0.0, 8388607.5])])
    exact = np.trunc(x.astype(np.float64) + np.copysign(0.5, x.astype(np.float64)))
    np.testing.assert_array_equal(spz._round_half_away(x), exact)

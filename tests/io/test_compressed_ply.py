"""PlayCanvas compressed PLY: a file written by splat-transform reads back within its chunk precision;
plain PLY files are not mistaken for it; hostile files give a clear error."""

import numpy as np
import pytest
from scipy.spatial import cKDTree

from gs_core.io import compressed_ply
from gs_core.io.compressed_ply import CompressedPlyError
from gs_core.io.errors import SceneFormatError
from gs_core.io.ply import PlyError, read_ply_elements
from gs_core.scene import GaussianScene, scene_file_type

from format_helpers import DATA, max_abs, rotation_angle_deg

FIXTURE = DATA / "splat_transform.compressed.ply"


def test_reads_file_written_by_splat_transform():
    """splat-transform reorders splats (Morton order): match each to its source by position."""
    source = GaussianScene.load(DATA / "source.ply")
    got = GaussianScene.load(FIXTURE)
    assert len(got) == len(source) and got.sh_degree == 3
    _, index = cKDTree(source.means).query(got.means)
    assert len(set(index.tolist())) == len(source)  # a one-to-one match
    want = source.subset(index)
    # precision: half a step of 11/10/11 bits of the chunk's range for positions and log-scales, of
    # 8 bits for colour (of the chunk's colour range), opacity and SH (over [-4, 4])
    elements, _ = read_ply_elements(FIXTURE)
    chunk = elements["chunk"]  # one chunk: 256 splats
    steps = np.array([2047, 1023, 2047])
    for prefix, got_values, want_values in (("", got.means, want.means), ("scale_", got.log_scales, want.log_scales)):
        span = np.array([chunk[f"max_{prefix}{a}"][0] - chunk[f"min_{prefix}{a}"][0] for a in "xyz"])
        assert np.all(np.abs(got_values - want_values).max(0) <= 0.5 * span / steps + 1e-6)
    span = max(chunk[f"max_{c}"][0] - chunk[f"min_{c}"][0] for c in "rgb")
    assert max_abs(got.base_colors, want.base_colors) <= 0.5 * span / 255 + 1e-6
    assert max_abs(got.opacities, want.opacities) <= 0.5 / 255 + 1e-6
    assert max_abs(got.sh_rest, want.sh_rest) <= 8 / 256 * 0.5 + 1e-6
    assert rotation_angle_deg(got.quats, want.quats).max() <= 0.2


def test_detection_by_header():
    assert compressed_ply.is_compressed_ply(FIXTURE)
    assert scene_file_type(FIXTURE) == "compressed_ply"
    assert not compressed_ply.is_compressed_ply(DATA / "source.ply")
    assert scene_file_type(DATA / "source.ply") == "ply"


def test_writing_is_refused_with_a_reason(tmp_path):
    scene = GaussianScene.load(DATA / "source.ply")
    with pytest.raises(SceneFormatError, match=r"x\.compressed\.ply: writing PlayCanvas compressed PLY is not supported"):
        scene.save(tmp_path / "x.compressed.ply")


def edited(tmp_path, name, old: bytes, new: bytes):
    data = FIXTURE.read_bytes()
    end = data.index(b"end_header")
    header, body = data[:end], data[end:]
    assert old in header
    path = tmp_path / name
    path.write_bytes(header.replace(old, new, 1) + body)
    return path


@pytest.mark.parametrize("old, new, message", [
    (b"element chunk 1", b"element chunk 2", "(truncated|2 chunks for 256 splats)"),
    (b"property float min_x", b"property float low_x", "missing properties: min_x"),
    (b"element vertex 256", b"element vertex 999999", "truncated or corrupt"),
    (b"format binary_little_endian", b"format binary_sideways", "not a valid PLY header"),
])
def test_hostile_headers(tmp_path, old, new, message):
    path = edited(tmp_path, "bad.compressed.ply", old, new)
    with pytest.raises(CompressedPlyError, match=f"bad.compressed.ply: .*{message}"):
        GaussianScene.load(path)


def test_nan_bounds(tmp_path):
    data = bytearray(FIXTURE.read_bytes())
    start = data.index(b"end_header\n") + len(b"end_header\n")
    data[start:start + 4] = np.float32(np.nan).tobytes()  # chunk 0 min_x
    (tmp_path / "nan.ply").write_bytes(bytes(data))
    with pytest.raises(CompressedPlyError, match=r"nan\.ply: chunk bound 'min_x' has NaN"):
        GaussianScene.load(tmp_path / "nan.ply")


def test_error_family():
    assert issubclass(CompressedPlyError, PlyError) and issubclass(CompressedPlyError, SceneFormatError)


def test_sh_columns_must_be_bytes(tmp_path):
    """Found by the fuzzer (seed 1, mutant 553): an SH column retyped in the header indexed past the byte table."""
    path = edited(tmp_path, "typed.ply", b"property uchar f_rest_0", b"property  char f_rest_0")  # same length
    with pytest.raises(CompressedPlyError, match=r"typed\.ply: SH column 'f_rest_0' has type int8, expected uchar"):
        GaussianScene.load(path)

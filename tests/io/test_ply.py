"""PlyTable and GaussianScene: lossless round trips, foreign encodings, and errors that name the file."""

import os

import numpy as np
import plyfile
import pytest

from gs_core.io import ply as ply_module
from gs_core.io.ply import PlyError, PlyTable, read_ply_table, write_ply_table
from gs_core.scene import GaussianScene


def random_scene(n: int, kind: str = "3dgs", degree: int = 3, seed: int = 0) -> GaussianScene:
    rng = np.random.default_rng(seed)
    k = (degree + 1) ** 2 - 1
    f = np.float32
    return GaussianScene(
        means=rng.standard_normal((n, 3)).astype(f),
        quats=rng.standard_normal((n, 4)).astype(f),
        log_scales=rng.standard_normal((n, 3 if kind == "3dgs" else 2)).astype(f),
        opacity_logits=rng.standard_normal(n).astype(f),
        sh_dc=rng.standard_normal((n, 3)).astype(f),
        sh_rest=rng.standard_normal((n, k, 3)).astype(f),
        normals=rng.standard_normal((n, 3)).astype(f),
    )


def raw_vertex(path) -> np.ndarray:
    """The vertex element exactly as plyfile reads it (a reference independent of our reader)."""
    return plyfile.PlyData.read(str(path))["vertex"].data


def assert_bit_exact(table: PlyTable, reference: np.ndarray) -> None:
    assert table.names == list(reference.dtype.names)  # column order kept
    for name in table.names:
        ref = reference[name]
        col = table.columns[name]
        assert col.dtype == ref.dtype.newbyteorder("="), name
        assert col.dtype.isnative
        assert col.astype(ref.dtype).tobytes() == np.ascontiguousarray(ref).tobytes(), name


@pytest.mark.parametrize("kind", ["3dgs", "2dgs"])
@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_scene_round_trip_is_bit_exact(tmp_path, kind, degree):
    scene = random_scene(50, kind, degree)
    # an unknown trainer column with odd bit patterns (NaN payloads, -0.0, denormals) and a
    # non-float one; both must come back untouched and in place
    bits = np.random.default_rng(1).integers(0, 2**32, 50, dtype=np.uint64).astype(np.uint32)
    bits[:4] = [0x7FC00001, 0xFFFFFFFF, 0x80000000, 0x00000001]
    scene.extra = {"semantic_id": np.arange(50, dtype=np.int32), "weird": bits.view(np.float32)}
    first = tmp_path / "first.ply"
    scene.save(first)

    loaded = GaussianScene.load(first)
    assert loaded.kind == kind and loaded.sh_degree == degree
    np.testing.assert_array_equal(loaded.sh_rest, scene.sh_rest)
    np.testing.assert_array_equal(loaded.log_scales, scene.log_scales)
    assert loaded.extra["weird"].view(np.uint32).tolist() == bits.tolist()

    second = tmp_path / "second.ply"
    loaded.save(second)
    assert first.read_bytes() == second.read_bytes()
    assert_bit_exact(read_ply_table(second), raw_vertex(first))
    assert ("scale_2" in read_ply_table(second).names) == (kind == "3dgs")


def test_column_order_and_dtypes_of_foreign_files_survive(tmp_path):
    n = 20
    rng = np.random.default_rng(2)
    names = ["opacity", "rot_0", "rot_1", "rot_2", "rot_3", "x", "y", "z", "f_dc_0", "f_dc_1",
             "f_dc_2", "scale_0", "scale_1", "scale_2"]
    dtype = [(name, "<f4") for name in names] + [("red", "u1"), ("conf", "<f8")]
    data = np.zeros(n, dtype=dtype)
    for name in names:
        data[name] = rng.standard_normal(n)
    data["red"] = rng.integers(0, 256, n)
    data["conf"] = rng.standard_normal(n)
    src = tmp_path / "foreign.ply"
    element = plyfile.PlyElement.describe(data, "vertex")
    plyfile.PlyData([element], comments=["made by a test"]).write(str(src))

    out = tmp_path / "out.ply"
    GaussianScene.load(src).save(out)
    assert_bit_exact(read_ply_table(out), data)
    assert read_ply_table(out).comments == ["made by a test"]
    assert src.read_bytes() == out.read_bytes()


def test_big_endian_and_ascii_are_read(tmp_path):
    scene = random_scene(30, "3dgs", 1)
    reference = scene.to_table().to_structured()
    big = tmp_path / "big.ply"
    ascii_ = tmp_path / "ascii.ply"
    element = plyfile.PlyElement.describe(reference, "vertex")
    plyfile.PlyData([element], byte_order=">").write(str(big))
    plyfile.PlyData([element], text=True).write(str(ascii_))
    assert b"binary_big_endian" in big.read_bytes()[:200]
    for path in (big, ascii_):
        table = read_ply_table(path)
        assert_bit_exact(table, reference)  # ASCII is written with %.18g: exact for float32
        np.testing.assert_array_equal(GaussianScene.load(path).means, scene.means)


def test_vertex_after_another_element_is_read(tmp_path):
    reference = random_scene(10).to_table().to_structured()
    meta = np.zeros(2, dtype=[("v", "<i4")])
    path = tmp_path / "two.ply"
    plyfile.PlyData([plyfile.PlyElement.describe(meta, "meta"),
                     plyfile.PlyElement.describe(reference, "vertex")]).write(str(path))
    assert_bit_exact(read_ply_table(path), reference)


def test_nan_names_file_and_column(tmp_path):
    scene = random_scene(10)
    scene.sh_dc[3, 1] = np.nan
    path = tmp_path / "nan.ply"
    scene.save(path)
    with pytest.raises(PlyError, match=r"nan\.ply.*'f_dc_1'.*NaN.*vertex 3"):
        GaussianScene.load(path)


def test_infinite_opacity_and_scale_are_allowed(tmp_path):
    scene = random_scene(4)
    scene.opacity_logits[0] = np.inf
    scene.log_scales[1, 2] = -np.inf
    scene.save(tmp_path / "inf.ply")
    assert np.isinf(GaussianScene.load(tmp_path / "inf.ply").opacity_logits[0])


def test_truncated_file_names_the_file(tmp_path):
    path = tmp_path / "cut.ply"
    random_scene(100).save(path)
    path.write_bytes(path.read_bytes()[:-37])
    with pytest.raises(PlyError, match=r"cut\.ply.*truncated"):
        GaussianScene.load(path)


def test_not_a_ply_and_missing_file_name_the_file(tmp_path):
    path = tmp_path / "junk.ply"
    path.write_bytes(b"hello world\n")
    with pytest.raises(PlyError, match=r"junk\.ply"):
        read_ply_table(path)
    with pytest.raises(PlyError, match=r"absent\.ply: no such file"):
        read_ply_table(tmp_path / "absent.ply")


def test_missing_columns_are_listed(tmp_path):
    table = random_scene(5).to_table()
    del table.columns["rot_3"], table.columns["opacity"]
    path = tmp_path / "partial.ply"
    write_ply_table(path, table)
    with pytest.raises(PlyError, match=r"partial\.ply.*missing columns: opacity, rot_0\.\.rot_3"):
        GaussianScene.load(path)


def test_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "scene.ply"
    random_scene(5).save(path)
    before = path.read_bytes()
    assert os.listdir(tmp_path) == ["scene.ply"]

    def fail(self, stream):
        stream.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(ply_module.plyfile.PlyData, "write", fail)
    with pytest.raises(OSError, match="disk full"):
        random_scene(7).save(path)
    assert os.listdir(tmp_path) == ["scene.ply"]  # no temp file left behind
    assert path.read_bytes() == before


def test_reading_never_modifies_the_source(tmp_path):
    path = tmp_path / "scene.ply"
    random_scene(20).save(path)
    before, mtime = path.read_bytes(), path.stat().st_mtime_ns
    table = read_ply_table(path)
    for col in table.columns.values():
        col[:] = 0  # writable, and not backed by the file
    GaussianScene.load(path).means[:] = 1
    assert path.read_bytes() == before and path.stat().st_mtime_ns == mtime
    os.replace(tmp_path / "scene.ply", tmp_path / "moved.ply")  # no open handle keeps it busy


def test_sh_rest_layout_is_inria_channel_major(tmp_path):
    scene = random_scene(6, degree=2)  # k = 8 coefficients per channel
    scene.save(tmp_path / "sh.ply")
    raw = raw_vertex(tmp_path / "sh.ply")
    for c in range(3):
        for j in range(8):
            np.testing.assert_array_equal(raw[f"f_rest_{c * 8 + j}"], scene.sh_rest[:, j, c])

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

    def fail(stream, body):
        stream.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(ply_module, "_write_body", fail)
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


# ---- gs_core's own PLY parser (no plyfile at run time: the licence decision in the README) --------------

def test_written_bytes_are_what_plyfile_writes(tmp_path):
    """Header and body byte for byte as plyfile's binary little-endian writer makes them."""
    table = random_scene(17, "3dgs", 2).to_table()
    table.comments = ["made by a test", "second line"]
    ours, theirs = tmp_path / "ours.ply", tmp_path / "theirs.ply"
    write_ply_table(ours, table)
    plyfile.PlyData([plyfile.PlyElement.describe(table.to_structured(), "vertex")], byte_order="<",
                    comments=list(table.comments)).write(str(theirs))
    assert ours.read_bytes() == theirs.read_bytes()
    assert read_ply_table(ours).comments == table.comments


def test_mixed_types_and_a_mesh_face_list_after_the_vertices(tmp_path):
    """Every PLY scalar type, byte orders and ASCII (ints checked exactly), and a face element with list
    properties after the vertices (a mesh PLY): the vertices are read, the faces never parsed."""
    rng = np.random.default_rng(3)
    dtypes = ["i1", "u1", "i2", "u2", "i4", "u4", "f4", "f8"]
    reference = np.zeros(9, dtype=[(f"c_{d}", "<" + d) for d in dtypes])
    for d in dtypes:
        info = np.iinfo(d) if d[0] != "f" else None
        reference[f"c_{d}"] = (rng.integers(info.min, info.max, 9, endpoint=True, dtype=np.int64) if info
                               else rng.standard_normal(9))
    faces = np.empty(3, dtype=[("vertex_indices", "O")])
    faces["vertex_indices"] = [np.array([0, 1, 2], "i4")] * 3
    for name, kwargs in (("le", {"byte_order": "<"}), ("be", {"byte_order": ">"}), ("text", {"text": True})):
        path = tmp_path / f"{name}.ply"
        plyfile.PlyData([plyfile.PlyElement.describe(reference, "vertex"),
                         plyfile.PlyElement.describe(faces, "face")], **kwargs).write(str(path))
        assert_bit_exact(read_ply_table(path), reference)


def test_header_mistakes_name_the_file_and_line(tmp_path):
    body = np.zeros(2, dtype="<f4").tobytes() * 3
    cases = {
        "no_format": (b"ply\nelement vertex 2\nproperty float x\nproperty float y\nproperty float z\nend_header\n",
                      "no format line"),
        "bad_type": (b"ply\nformat binary_little_endian 1.0\nelement vertex 2\nproperty quad x\nend_header\n",
                     "line 4"),
        "twice": (b"ply\nformat binary_little_endian 1.0\nelement vertex 2\nproperty float x\nproperty float x\n"
                  b"end_header\n", "'x' twice"),
        "list_first": (b"ply\nformat binary_little_endian 1.0\nelement face 1\nproperty list uchar int idx\n"
                       b"element vertex 2\nproperty float x\nend_header\n", "'face' has list properties"),
        "no_end": (b"ply\nformat binary_little_endian 1.0\nelement vertex 2\nproperty float x\n", "no end_header"),
        "big_ascii_int": (b"ply\nformat ascii 1.0\nelement vertex 2\nproperty uchar x\nend_header\n1\n256\n",
                          "out of the range of uint8"),
    }
    for name, (header, needle) in cases.items():
        path = tmp_path / f"{name}.ply"
        path.write_bytes(header + (body if b"binary" in header else b""))
        with pytest.raises(PlyError) as info:
            read_ply_table(path)
        message = str(info.value)
        assert f"{name}.ply" in message and needle in message and "\n" not in message, (name, message)


def test_scene_io_runs_without_plyfile(tmp_path):
    """gs_core's PLY I/O never imports plyfile (GPL-3.0)."""
    import subprocess
    import sys

    script = f"""
import sys
sys.modules["plyfile"] = None
from gs_core.scene import GaussianScene
import numpy as np
s = GaussianScene.load({str(tmp_path / 'a.ply')!r})
s.save({str(tmp_path / 'b.ply')!r})
print(len(s))
"""
    random_scene(11).save(tmp_path / "a.ply")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(
                                [str(__import__("pathlib").Path(__file__).resolve().parents[2])]
                                + os.environ.get("PYTHONPATH", "").split(os.pathsep))})
    assert result.stdout.strip() == "11", result.stderr
    assert (tmp_path / "a.ply").read_bytes() == (tmp_path / "b.ply").read_bytes()

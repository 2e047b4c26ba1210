"""Outputs are written atomically and get the mode the user's umask gives a plain file, not 0600."""

import os
import stat

import numpy as np
import pytest

from gs_core.io.atomic import atomic_write, write_text
from gs_core.io.colmap import write_colmap_text
from gs_core.io.masks import save_mask_stack
from gs_core.io.ply import PlyTable, write_ply_table


@pytest.fixture(params=[0o022, 0o077, 0o002])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_outputs_respect_the_umask(tmp_path, umask):
    from gs_core.camera import Camera

    expected = 0o666 & ~umask
    write_text(tmp_path / "a.txt", "x")
    write_ply_table(tmp_path / "s.ply", PlyTable({"x": np.zeros(3, np.float32)}))
    save_mask_stack(tmp_path / "m.npz", np.zeros((1, 2, 2), bool))
    cam = Camera.look_at([0.0, -3.0, 0.0], [0.0, 0.0, 0.0], fov_x_deg=60, width=8, height=6, name="c.png")
    write_colmap_text(tmp_path / "sparse", [cam], ["c.png"])
    files = [tmp_path / "a.txt", tmp_path / "s.ply", tmp_path / "m.npz", *sorted((tmp_path / "sparse").iterdir())]
    assert {p.name: oct(mode(p)) for p in files} == {p.name: oct(expected) for p in files}


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "out.txt"
    write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_write(target, "w") as fh:
            fh.write("half of the new")
            raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]

"""gs_core.splat_ids: file ids follow the bytes (not the path), are never UNKNOWN and fit an int32;
rows map to splats by (file id, row) whatever the splats' order, and back."""

import zlib

import numpy as np
import pytest

from gs_core import splat_ids


def test_file_id_follows_content_not_path(tmp_path):
    a, b, c = tmp_path / "a.ply", tmp_path / "b.ply", tmp_path / "c.ply"
    a.write_bytes(b"ply\n" + bytes(range(256)) * 1000)
    b.write_bytes(a.read_bytes())
    c.write_bytes(a.read_bytes()[:-1] + b"\x00")
    assert splat_ids.file_id(a) == splat_ids.file_id(b) != splat_ids.file_id(c)
    assert splat_ids.file_id(a) == zlib.crc32(a.read_bytes()) & 0x7FFFFFFF
    assert 0 < splat_ids.file_id(a) <= np.iinfo(np.int32).max

    c.write_bytes(a.read_bytes())  # rewritten in place: the cache key (size, mtime, inode) changes
    assert splat_ids.file_id(c) == splat_ids.file_id(a)


def test_file_id_is_never_unknown(tmp_path, monkeypatch):
    monkeypatch.setattr(splat_ids.zlib, "crc32", lambda data, value=0: 0x80000000)
    path = tmp_path / "x.ply"
    path.write_bytes(b"anything")
    assert splat_ids.file_id(path) == 1 != splat_ids.UNKNOWN


def test_file_id_of_a_missing_file_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.ply"):
        splat_ids.file_id(tmp_path / "missing.ply")


def test_rows_map_to_splats_of_that_file_only():
    # two files' splats joined and shuffled: rows 0..4 of file 7 and of file 9, plus unknown splats
    file_ids = np.array([9, 7, 7, 0, 9, 7, 9, 7, 0, 7, 9, 9])
    rows = np.array([0, 4, 1, 2, 2, 0, 1, 3, 0, 2, 3, 4])
    expected = (file_ids == 7) & np.isin(rows, [1, 3])
    assert np.array_equal(splat_ids.rows_mask(file_ids, rows, 7, np.array([3, 1])), expected)
    assert np.array_equal(splat_ids.rows_mask(file_ids, rows, 7, np.array([False, True, False, True])), expected)
    assert not splat_ids.rows_mask(file_ids, rows, splat_ids.UNKNOWN, np.array([0, 2])).any()
    assert not splat_ids.rows_mask(file_ids, rows, 7, np.zeros(0, int)).any()
    # rows beyond the splats' rows select nothing more
    assert np.array_equal(splat_ids.rows_mask(file_ids, rows, 9, np.array([4, 100])), (file_ids == 9) & (rows == 4))


def test_rows_of_inverts_rows_mask():
    rng = np.random.default_rng(0)
    file_ids = rng.choice([3, 5, 0], size=500)
    rows = np.empty(500, np.int64)
    for f in (3, 5, 0):  # each file's rows once, in shuffled order
        rows[file_ids == f] = rng.permutation((file_ids == f).sum())
    wanted = np.sort(rng.choice((file_ids == 5).sum(), size=40, replace=False))
    mask = splat_ids.rows_mask(file_ids, rows, 5, wanted)
    assert mask.sum() == 40
    assert np.array_equal(splat_ids.rows_of(file_ids, rows, 5, mask), wanted)
    assert np.array_equal(splat_ids.rows_of(file_ids, rows, 5), np.arange((file_ids == 5).sum()))


def test_bad_rows_are_refused():
    with pytest.raises(ValueError, match=">= 0"):
        splat_ids.rows_lookup(np.array([1, -1]))
    with pytest.raises(ValueError, match="dtype float"):
        splat_ids.rows_lookup(np.array([0.5]))
    with pytest.raises(ValueError, match="differ in length"):
        splat_ids.rows_mask(np.zeros(3, int), np.zeros(4, int), 1, np.array([0]))

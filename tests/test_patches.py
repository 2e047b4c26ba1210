"""Instance patches: a view's overlapping masks cut into disjoint pieces that remember which masks
cover them (Trace3D Sec. 3.2)."""

import numpy as np
import pytest

from gs_core.methods.trace3d import make_patches, scaled_min_area
from gs_core.patches import REFERENCE_MIN_AREA, REFERENCE_PIXELS


def _check_consistent(masks: np.ndarray, p) -> None:
    """Every pixel's patch carries exactly the kept masks covering that pixel; areas count pixels."""
    kept = masks[p.kept_masks]
    H, W = masks.shape[1:]
    for y in range(H):
        for x in range(W):
            cover = kept[:, y, x]
            j = p.patch_map[y, x]
            if not cover.any():
                assert j == -1
            else:
                assert j >= 0 and np.array_equal(p.membership[j], cover)
    assert np.array_equal(p.areas, np.bincount(p.patch_map[p.patch_map >= 0], minlength=p.num_patches))
    assert len(np.unique([m.tobytes() for m in p.membership])) == p.num_patches  # one patch per cover set


def test_two_overlapping_masks_three_patches():
    masks = np.zeros((2, 6, 8), bool)
    masks[0, 1:5, 1:5] = True  # 16 px
    masks[1, 2:6, 3:8] = True  # 20 px; overlap rows 2-4, cols 3-4: 6 px
    p = make_patches(masks, min_area=1)
    assert p.num_patches == 3
    assert p.kept_masks.tolist() == [0, 1]
    # ids are dense, in raster order of first pixel: A-only at (1, 1), both at (2, 3), B-only at (2, 5)
    assert p.membership.tolist() == [[True, False], [True, True], [False, True]]
    assert p.areas.tolist() == [16 - 6, 6, 20 - 6]
    assert (p.patch_map[~masks.any(0)] == -1).all()
    assert (p.patch_map == -1).sum() == 48 - (16 + 20 - 6)
    assert p.patch_map.dtype == np.int16 and p.patch_map.shape == (6, 8)  # few patches: half the bytes of int32
    assert p.mask_patches(0).tolist() == [0, 1] and p.mask_patches(1).tolist() == [1, 2]
    _check_consistent(masks, p)


def test_min_area_drops_small_masks_before_cutting():
    masks = np.zeros((3, 6, 8), bool)
    masks[0, :3, :] = True  # 24 px
    masks[1, 0, 0:4] = True  # 4 px, inside mask 0: would cut it in two
    masks[2, 4:6, 6:8] = True  # 4 px, alone
    p = make_patches(masks, min_area=5)
    assert p.kept_masks.tolist() == [0]
    assert p.num_patches == 1 and p.membership.shape == (1, 1)
    assert (p.patch_map[:3] == 0).all() and (p.patch_map[3:] == -1).all()  # mask 2's pixels uncovered
    # at the boundary: a mask of exactly min_area pixels is kept
    q = make_patches(masks, min_area=4)
    assert q.kept_masks.tolist() == [0, 1, 2] and q.num_patches == 3
    _check_consistent(masks, q)


def test_all_masks_dropped_or_none():
    masks = np.zeros((2, 4, 5), bool)
    masks[0, 0, 0] = masks[1, 1, 1] = True
    for stack in (masks, np.zeros((0, 4, 5), bool)):
        p = make_patches(stack, min_area=2)
        assert p.num_patches == 0 and (p.patch_map == -1).all() and p.patch_map.shape == (4, 5)
        assert len(p.kept_masks) == 0
    with pytest.raises(ValueError):
        make_patches(np.zeros((4, 5), bool))


def test_nested_hierarchy_is_kept_in_the_membership():
    """A part inside its object inside its group, plus a second object in the group: each patch
    knows every mask above it, so any level can be rebuilt from the patches."""
    H, W = 10, 12
    group = np.zeros((H, W), bool)
    group[1:9, 1:11] = True
    obj = np.zeros((H, W), bool)
    obj[2:8, 2:6] = True
    part = np.zeros((H, W), bool)
    part[3:5, 3:5] = True
    other = np.zeros((H, W), bool)
    other[2:8, 7:10] = True
    masks = np.stack([part, group, other, obj])  # SAM's order is arbitrary
    p = make_patches(masks, min_area=1)
    assert p.num_patches == 4  # part, object minus part, other, group minus both objects
    members = {tuple(np.flatnonzero(m)) for m in p.membership}
    assert members == {(0, 1, 3), (1, 3), (1, 2), (1,)}
    j_part = p.patch_map[3, 3]
    assert p.membership[j_part].tolist() == [True, True, False, True]
    assert p.membership[p.patch_map[2, 2]].tolist() == [False, True, False, True]
    assert p.membership[p.patch_map[1, 1]].tolist() == [False, True, False, False]
    # every mask is exactly the union of its patches
    for m in range(4):
        assert np.array_equal(np.isin(p.patch_map, p.mask_patches(m)), masks[m])
    _check_consistent(masks, p)


def test_random_stack_is_consistent_and_deterministic():
    rng = np.random.default_rng(3)
    masks = np.zeros((11, 20, 24), bool)  # > 8 masks: more than one packed byte per pixel
    for m in range(11):
        y, x = rng.integers(0, 15, 2)
        masks[m, y:y + rng.integers(2, 9), x:x + rng.integers(2, 12)] = True
    p = make_patches(masks, min_area=6)
    _check_consistent(masks, p)
    first = [int(np.flatnonzero(p.patch_map.ravel() == j)[0]) for j in range(p.num_patches)]
    assert first == sorted(first)  # raster order of first pixel
    q = make_patches(masks[::-1].copy(), min_area=6)  # reordering masks permutes columns only
    assert np.array_equal(q.patch_map, p.patch_map)


def test_more_patches_than_int16_holds_fall_back_to_int32():
    """16 random masks over 256 x 256 pixels make tens of thousands of cover sets: past 32766 patches
    the map is int32, ids above int16's range exact (and every pixel carries its cover set)."""
    from gs_core.patches import patch_dtype

    assert patch_dtype(0) == patch_dtype(32766) == np.int16 and patch_dtype(32767) == np.int32
    masks = np.random.default_rng(0).random((16, 256, 256)) < 0.5
    for stack, dtype in ((masks, np.int32), (masks[:8], np.int16)):  # 8 masks: 256 cover sets at most
        p = make_patches(stack, min_area=1)
        covered = stack.any(0)
        assert p.patch_map.dtype == dtype and (p.num_patches > 32767) == (dtype == np.int32)
        assert (p.patch_map[~covered] == -1).all() and p.patch_map.max() == p.num_patches - 1
        assert np.array_equal(p.membership[p.patch_map[covered]], stack[:, covered].T)
        assert np.array_equal(p.areas, np.bincount(p.patch_map[covered], minlength=p.num_patches))


def test_scaled_min_area():
    assert scaled_min_area(1000, 1000) == REFERENCE_MIN_AREA
    assert REFERENCE_PIXELS == 1_000_000
    assert scaled_min_area(2000, 2000) == 4 * REFERENCE_MIN_AREA
    assert scaled_min_area(500, 1000) == 48
    assert scaled_min_area(120, 160) == round(96 * 120 * 160 / 1e6) == 2
    assert scaled_min_area(48, 64) == 1 and scaled_min_area(1, 1) == 1  # never below 1 px
    # the default of make_patches
    masks = np.zeros((2, 1000, 1000), bool)
    masks[0, :10, :9] = True  # 90 px < 96: dropped
    masks[1, 500:510, :10] = True  # 100 px: kept
    assert make_patches(masks).kept_masks.tolist() == [1]


def test_roots_are_the_largest_mask_covering_each_patch():
    """A part inside its object inside a group: every patch's root is the group; a mask apart from
    them is its own root; two masks that only overlap keep their own roots outside the overlap."""
    masks = np.zeros((5, 8, 12), bool)
    masks[0, 0:8, 0:6] = True  # group (48 px)
    masks[1, 1:7, 1:5] = True  # object inside it (24 px)
    masks[2, 2:4, 2:4] = True  # part inside the object (4 px)
    masks[3, 0:3, 7:12] = True  # apart (15 px)
    masks[4, 2:6, 9:12] = True  # overlaps mask 3 (12 px)
    p = make_patches(masks, min_area=1)
    roots = p.roots()
    assert roots.shape == (p.num_patches,) and roots.dtype == np.int64
    root_at = lambda y, x: roots[p.patch_map[y, x]]  # noqa: E731
    assert root_at(2, 2) == root_at(1, 1) == root_at(0, 0) == 0  # part, object, group: one root
    assert root_at(0, 8) == 3 and root_at(2, 10) == 3  # the overlap goes to the larger mask
    assert root_at(5, 10) == 4  # mask 4 outside the overlap
    assert make_patches(np.zeros((0, 4, 4), bool)).roots().shape == (0,)


def test_finest_rule_keeps_the_hierarchy_and_ignores_coarser_edges():
    """"finest": each pixel goes to the smallest mask covering it. A coarser mask whose edge crosses
    an object (a group, a spurious blob) no longer cuts it, where the cells do; a finer mask inside it
    (a part) still does; membership lists the masks covering the whole patch."""
    masks = np.zeros((3, 8, 10), bool)
    masks[0, 0:8, 0:7] = True  # coarse: 56 px, its edge at column 7 crosses the object
    masks[1, 2:6, 4:9] = True  # object: 20 px, columns 4-8
    masks[2, 3:5, 5:7] = True  # part inside the object: 4 px
    cells = make_patches(masks, min_area=1)
    assert cells.patch_map[3, 4] != cells.patch_map[3, 8]  # the coarse edge cuts the object's cells
    p = make_patches(masks, min_area=1, rule="finest")
    assert p.num_patches == 3
    obj, part, coarse = p.patch_map[2, 4], p.patch_map[3, 5], p.patch_map[0, 0]
    assert p.patch_map[2, 8] == obj and p.patch_map[5, 8] == obj  # whole object minus its part
    assert (p.patch_map[masks[2]] == part).all()
    assert p.areas[obj] == 16 and p.areas[part] == 4 and p.areas[coarse] == 56 - 12
    assert p.membership[part].tolist() == [True, True, True]
    assert p.membership[obj].tolist() == [False, True, False]  # the coarse mask covers only part of it
    assert p.membership[coarse].tolist() == [True, False, False]
    assert (p.patch_map == -1).sum() == 80 - (56 + 20 - 12)
    assert np.array_equal(p.patch_map, make_patches(masks, min_area=1, rule="finest").patch_map)
    with pytest.raises(ValueError, match="rule"):
        make_patches(masks, rule="coarsest")

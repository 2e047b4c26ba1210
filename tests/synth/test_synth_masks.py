"""The SAM-like mask simulator on hand-drawn ground-truth maps: each knob does what it says."""

import numpy as np
import pytest

from gs_core.synth import Hierarchy, MaskNoise, simulate_masks
from gs_core.synth.groundtruth import GroupInfo, ObjectInfo, PartInfo
from gs_core.synth.masks import KNOBS, thin

HARD_KNOBS = ("row", "holder", "thin_miss", "thin_cut")

# floor (stuff) | table (top, leg) + mug (body, handle) + die on the table | a box beside the table
HIER = Hierarchy(
    parts=[PartInfo(0, "surface", 0), PartInfo(1, "top", 1), PartInfo(2, "leg", 1), PartInfo(3, "body", 2),
           PartInfo(4, "handle", 2), PartInfo(5, "die", 3), PartInfo(6, "box", 4)],
    objects=[ObjectInfo(0, "floor_0", "floor", 0, [0], True, None),
             ObjectInfo(1, "table_0", "table", 1, [1, 2], False, None),
             ObjectInfo(2, "mug_0", "mug", 1, [3, 4], False, 1), ObjectInfo(3, "small_0", "small", 1, [5], False, 1),
             ObjectInfo(4, "box_0", "box", 2, [6], False, None)],
    groups=[GroupInfo(0, "floor_0", [0]), GroupInfo(1, "table_0_set", [1, 2, 3]), GroupInfo(2, "box_0", [4])],
)
TABLE, MUG, DIE, BOX, FLOOR = 1, 2, 3, 4, 0


def _maps():
    part = np.zeros((40, 60), np.int64)
    part[10:25, 5:46] = 1  # table top
    part[25:40, 8:12] = 2  # leg
    part[12:20, 10:18] = 3  # mug body
    part[14:18, 18:21] = 4  # handle
    part[12:14, 30:32] = 5  # die: 4 px
    part[5:25, 46:58] = 6  # box, touching the table top
    obj = HIER.part_to_object[part].astype(np.int64)
    return part, obj, HIER.object_to_group[obj].astype(np.int64)


def _sim(noise, seed=0):
    part, obj, grp = _maps()
    return simulate_masks(part, obj, grp, HIER, noise, np.random.default_rng(seed))


def _keys(sim):
    return [(s.kind, s.ids) for s in sim.sources]


def test_clean_masks_are_the_objects():
    part, obj, _ = _maps()
    sim = _sim(MaskNoise())
    assert sorted(_keys(sim)) == [("object", (o,)) for o in range(5)]
    for mask, src in zip(sim.masks, sim.sources):
        assert np.array_equal(mask, obj == src.ids[0])
    areas = sim.masks.reshape(len(sim.masks), -1).sum(1)
    assert (np.diff(areas) <= 0).all()  # largest first
    assert sim.masks.dtype == bool and sim.scores.shape == (5,)
    assert MaskNoise.level(0) == MaskNoise()


def test_granularity_changes_the_level_of_objects_that_have_another():
    kinds = {TABLE: set(), MUG: set(), DIE: set()}
    for seed in range(20):
        keys = _keys(_sim(MaskNoise(granularity=1.0), seed))
        assert ("object", (BOX,)) in keys and ("object", (FLOOR,)) in keys  # no other level exists
        for o in kinds:
            assert ("object", (o,)) not in keys
        for kind, ids in keys:
            for o in kinds:
                if kind == "part" and HIER.parts[ids[0]].object == o or kind == "group" and ids == (1,):
                    kinds[o].add(kind)
    assert kinds[TABLE] == {"part", "group"} and kinds[MUG] == {"part", "group"}


def test_nested_emits_every_level_as_overlapping_masks():
    sim = _sim(MaskNoise(nested=1.0))
    keys = set(_keys(sim))
    assert {("object", (o,)) for o in range(5)} <= keys
    assert {("part", (1,)), ("part", (2,)), ("part", (3,)), ("part", (4,)), ("group", (1,))} <= keys
    cover = sim.masks.sum(0)
    assert cover.max() >= 3  # mug pixels: mug part, mug, table set
    group = sim.masks[_keys(sim).index(("group", (1,)))]
    mug = sim.masks[_keys(sim).index(("object", (MUG,)))]
    assert (group >= mug).all()


def test_over_segmentation_cuts_each_mask_in_two():
    _, obj, _ = _maps()
    sim = _sim(MaskNoise(over_segment=1.0))
    assert len(sim.masks) == 10
    for o in range(5):
        halves = [m for m, s in zip(sim.masks, sim.sources) if s.kind == "split" and s.ids == (o,)]
        assert len(halves) == 2 and all(h.any() for h in halves)
        assert not (halves[0] & halves[1]).any()
        assert np.array_equal(halves[0] | halves[1], obj == o)
    assert {s.parent for s in sim.sources} == {"object"}


def test_under_segmentation_merges_adjacent_objects():
    _, obj, _ = _maps()
    for seed in range(10):
        sim = _sim(MaskNoise(under_segment=1.0), seed)
        merged = [(m, s) for m, s in zip(sim.masks, sim.sources) if s.kind == "merged"]
        assert merged
        seen = [o for _, s in merged for o in s.ids] + [s.ids[0] for s in sim.sources if s.kind == "object"]
        assert sorted(seen) == sorted(set(seen))  # every object in at most one mask
        for m, s in merged:
            a, b = s.ids
            assert np.array_equal(m, (obj == a) | (obj == b))
            touching = ((obj[:, :-1] == a) & (obj[:, 1:] == b)) | ((obj[:, :-1] == b) & (obj[:, 1:] == a))
            touching_v = ((obj[:-1] == a) & (obj[1:] == b)) | ((obj[:-1] == b) & (obj[1:] == a))
            assert touching.any() or touching_v.any()


def test_jitter_moves_boundaries_only():
    _, obj, _ = _maps()
    sim = _sim(MaskNoise(jitter=3.0))
    again = _sim(MaskNoise(jitter=3.0))
    assert all(np.array_equal(a, b) for a, b in zip(sim.masks, again.masks))  # seeded
    changed = 0
    for mask, src in zip(sim.masks, sim.sources):
        truth = obj == src.ids[0]
        if truth.sum() > 100:
            iou = (mask & truth).sum() / (mask | truth).sum()
            assert 0.6 < iou < 1.0
            changed += 1
    assert changed >= 3


def test_small_objects_go_missing():
    keys = _keys(_sim(MaskNoise(miss_small=1.0, small=0.005)))  # small: < 12 px
    assert ("object", (DIE,)) not in keys
    assert {("object", (o,)) for o in (FLOOR, TABLE, MUG, BOX)} <= set(keys)
    assert ("object", (DIE,)) in _keys(_sim(MaskNoise(miss_small=0.0, small=0.005)))


def test_spurious_masks_match_nothing_and_score_lower():
    counts = []
    for seed in range(60):
        sim = _sim(MaskNoise(spurious=3.0), seed)
        spurious = [k for k, s in enumerate(sim.sources) if s.kind == "spurious"]
        counts.append(len(spurious))
        assert all(sim.scores[k] < 0.9 for k in spurious)
        assert all(sim.scores[k] >= 0.88 for k in range(len(sim.sources)) if k not in spurious)
    assert 2.4 < np.mean(counts) < 3.6


def test_min_area_drops_tiny_masks():
    keys = _keys(_sim(MaskNoise(min_area=5)))
    assert ("object", (DIE,)) not in keys and len(keys) == 4


def test_noise_level_scales_every_knob():
    lo, hi = MaskNoise.level(0.5, hard=True), MaskNoise.level(1.0, hard=True)
    for name in KNOBS:
        assert 0 < getattr(lo, name) < getattr(hi, name)
    with pytest.raises(ValueError):
        MaskNoise.level(-1)
    # without the hard cases' failures a level is what it was before they existed
    plain = MaskNoise.level(1.0)
    assert all(getattr(plain, k) == 0 for k in HARD_KNOBS)
    assert plain == MaskNoise(**{k: v for k, v in hi.to_json().items() if k not in HARD_KNOBS})


def test_noisy_views_still_mostly_cover_the_objects():
    part, obj, grp = _maps()
    sim = _sim(MaskNoise.level(1.0), seed=4)
    covered = sim.masks.any(0)
    assert covered.mean() > 0.8


def test_only_keeps_the_named_failure_modes():
    level = MaskNoise.level(1.0)
    jitter = level.only("jitter")
    assert jitter.jitter == level.jitter and jitter.small == level.small
    assert all(getattr(jitter, k) == 0 for k in KNOBS if k != "jitter")
    both = level.only("granularity", "nested")
    assert (both.granularity, both.nested, both.spurious) == (level.granularity, level.nested, 0)
    with pytest.raises(ValueError, match="unknown mask-noise knob"):
        level.only("blur")


# ---- the hard cases' failures -----------------------------------------------------------------
# table (root) with a bowl holding two apples, a row of three touching tins, a lone tin and a pen
# lying on the table; the floor (stuff) around
HARD = Hierarchy(
    parts=[PartInfo(k, n, k) for k, n in enumerate(
        ["surface", "top", "bowl", "apple", "apple", "tin", "tin", "tin", "tin", "pen"])],
    objects=[ObjectInfo(0, "floor_0", "floor", 0, [0], True, None),
             ObjectInfo(1, "table_0", "table", 1, [1], False, None),
             ObjectInfo(2, "bowl_0", "bowl", 1, [2], False, 1),
             ObjectInfo(3, "apple_0", "apple", 1, [3], False, 2), ObjectInfo(4, "apple_1", "apple", 1, [4], False, 2),
             *[ObjectInfo(5 + k, f"tin_{k}", "tin", 1, [5 + k], False, 1) for k in range(4)],
             ObjectInfo(9, "pen_0", "pen", 1, [9], False, 1)],
    groups=[GroupInfo(0, "floor_0", [0]), GroupInfo(1, "table_0_set", list(range(1, 10)))],
)
BOWL, APPLES, ROW, LONE, PEN = 2, (3, 4), (5, 6, 7), 8, 9


def _hard_maps():
    obj = np.zeros((60, 90), np.int64)
    obj[5:55, 5:85] = 1  # table top
    obj[10:30, 8:32] = BOWL
    obj[14:22, 12:20] = 3  # two apples touching each other, inside the bowl
    obj[14:22, 20:28] = 4
    for k, o in enumerate(ROW):  # three tins side by side, touching
        obj[35:50, 10 + 8 * k:18 + 8 * k] = o
    obj[35:50, 50:58] = LONE  # a tin on its own: table between it and the row
    obj[40:42, 60:82] = PEN  # 2 px wide, 22 px long
    return obj, obj, HARD.object_to_group[obj].astype(np.int64)


def _hard(noise, seed=0):
    part, obj, grp = _hard_maps()
    return simulate_masks(part, obj, grp, HARD, noise, np.random.default_rng(seed))


def test_row_of_touching_lookalikes_merges_in_some_views_and_not_in_others():
    _, obj, _ = _hard_maps()
    sim = _hard(MaskNoise(row=1.0))
    keys = _keys(sim)
    assert ("row", ROW) in keys and ("row", APPLES) in keys
    assert ("object", (LONE,)) in keys  # the same category, but not touching the row
    assert all(("object", (o,)) not in keys for o in ROW)
    row_mask = sim.masks[keys.index(("row", ROW))]
    assert np.array_equal(row_mask, np.isin(obj, ROW))
    merged = [("row", ROW) in _keys(_hard(MaskNoise(row=0.5), seed)) for seed in range(40)]
    assert 8 < sum(merged) < 32  # some views merge the row, others keep it apart


def test_container_and_contents_as_one_mask_or_as_two():
    _, obj, _ = _hard_maps()
    sim = _hard(MaskNoise(holder=1.0))
    keys = _keys(sim)
    assert ("holder", (BOWL, *APPLES)) in keys
    assert np.array_equal(sim.masks[keys.index(("holder", (BOWL, *APPLES)))], np.isin(obj, (BOWL, *APPLES)))
    assert ("object", (1,)) in keys  # the table is a group's root: that level is the group's, not a holder's
    assert ("object", (BOWL,)) not in keys and ("object", (3,)) not in keys
    together = [("holder", (BOWL, *APPLES)) in _keys(_hard(MaskNoise(holder=0.5), seed)) for seed in range(40)]
    assert 8 < sum(together) < 32
    apart = _keys(_hard(MaskNoise(holder=0.0)))
    assert ("object", (BOWL,)) in apart and ("object", (3,)) in apart


def test_thin_objects_are_missed_or_cut_into_pieces():
    _, obj, _ = _hard_maps()
    assert thin(obj == PEN, 2.5) and not thin(obj == LONE, 2.5) and not thin(obj == BOWL, 2.5)
    assert ("object", (PEN,)) not in _keys(_hard(MaskNoise(thin_miss=1.0)))
    assert ("object", (LONE,)) in _keys(_hard(MaskNoise(thin_miss=1.0)))
    counts = set()
    for seed in range(10):
        sim = _hard(MaskNoise(thin_cut=1.0), seed)
        pieces = [m for m, s in zip(sim.masks, sim.sources) if s.kind == "piece"]
        assert ("object", (PEN,)) not in _keys(sim) and all(s.ids == (PEN,) for s in sim.sources if s.kind == "piece")
        counts.add(len(pieces))
        assert not (np.sum(pieces, 0) > 1).any()  # disjoint
        union = np.any(pieces, 0)
        assert not (union & (obj != PEN)).any() and union.sum() >= (obj == PEN).sum() - 2 * 2 * 2
    assert counts == {2, 3}


def test_hard_failures_are_deterministic_and_leave_other_knobs_streams_alone():
    noise = MaskNoise.level(1.0, hard=True)
    a, b = _hard(noise, seed=3), _hard(noise, seed=3)
    assert _keys(a) == _keys(b) and np.array_equal(a.masks, b.masks) and np.array_equal(a.scores, b.scores)
    # they draw from the stream only where a hard case is in view: on a map without one (no stack,
    # no touching look-alikes, nothing thin) the masks are those of the level without them
    for seed in range(8):
        x, y = _sim(MaskNoise.level(1.0), seed), _sim(noise, seed)
        assert _keys(x) == _keys(y) and np.array_equal(x.masks, y.masks) and np.array_equal(x.scores, y.scores)

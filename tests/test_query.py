"""Selections from what a user points at (gs_core.query): picked Gaussians, clicked pixels, a mask,
their 2D mask in a view, and the granularity levels; bad input is a UserError."""

import numpy as np
import pytest
import torch

from gs_core.camera import Camera
from gs_core.engine import Gaussians, project
from gs_core.errors import UserError
from gs_core.labelmaps import render_labels
from gs_core.query import (FIT_TOLERANCE, LabelLevels, fit_mask_levels, fit_mask_weights, from_clicks, from_gaussians, from_mask,
                           from_mask_weights, mask_weights, pixel_labels, camera_means, pixel_weights, selection_mask,
                           split_by_clicks)

SPACING = 0.05
H, W = 48, 64


def _square(cx, cy, z, half):
    t = np.arange(-half, half + 1e-9, SPACING)
    a, b = np.meshgrid(t, t, indexing="ij")
    return np.stack([cx + a.ravel(), cy + b.ravel(), np.full(a.size, z)], 1)


def _surfaces():
    return [_square(-0.45, 0, 0, 0.3), _square(0.45, 0, 0, 0.3), _square(-0.25, 0, 0.5, 0.12),
            _square(0, 0.75, 0, 0.1)]


@pytest.fixture(scope="module")
def planted():
    """Objects 0 (left) and 1 (right) in the plane z = 0, object 2 a small square 0.5 m in front of
    object 0's right edge (it hides part of it), and a few unlabelled splats (-1) at the top."""
    surfaces = _surfaces()
    labels = np.concatenate([np.full(len(s), k if k < 3 else -1) for k, s in enumerate(surfaces)])
    means = torch.as_tensor(np.concatenate(surfaces), dtype=torch.float32)
    n = len(means)
    g = Gaussians(means=means, quats=torch.tensor([[1.0, 0, 0, 0]]).repeat(n, 1),
                  scales=torch.full((n, 3), 0.7 * SPACING), opacities=torch.full((n,), 0.95))
    cam = Camera.look_at((0, 0.01, 3.0), (0, 0, 0), (0, 1, 0), fov_x_deg=60, width=W, height=H, name="front")
    proj = project(g, cam)
    lm = render_labels(proj, np.where(labels >= 0, labels, 3))  # 3 = the unlabelled splats
    assert set(np.unique(lm).tolist()) == {-1, 0, 1, 2, 3}
    return proj, labels, lm


def _pixel(lm, o, which=0):  # (x, y) of some pixel showing owner o
    ys, xs = np.nonzero(lm == o)
    i = [len(ys) // 2, 0, len(ys) - 1][which]
    return int(xs[i]), int(ys[i])


def test_from_gaussians(planted):
    _, labels, _ = planted
    zero = np.flatnonzero(labels == 0)
    sel = from_gaussians(labels, zero[[3]])
    assert np.array_equal(sel.selected, labels == 0) and sel.labels.tolist() == [0]
    assert sel.score.dtype == np.float32 and np.array_equal(sel.score, (labels == 0).astype(np.float32))
    two = from_gaussians(labels, np.array([zero[0], np.flatnonzero(labels == 2)[1]]))
    assert np.array_equal(two.selected, np.isin(labels, [0, 2])) and two.labels.tolist() == [0, 2]
    none = from_gaussians(labels, np.flatnonzero(labels == -1)[:2])  # unlabelled: nothing
    assert not none.selected.any() and len(none.labels) == 0
    assert not from_gaussians(labels, np.zeros(0, np.int64)).selected.any()
    mask = np.zeros(len(labels), bool)
    mask[np.flatnonzero(labels == 1)[5]] = True  # a bool mask [N] is a pick too
    assert np.array_equal(from_gaussians(labels, mask).selected, labels == 1)


@pytest.mark.parametrize("bad", [[-1], [10**6], [0, 3, -2]])
def test_from_gaussians_bad_ids(planted, bad):
    _, labels, _ = planted
    with pytest.raises(UserError, match="Gaussian ids"):
        from_gaussians(labels, np.array(bad))
    with pytest.raises(UserError):
        from_gaussians(labels, np.array([len(labels)]))  # one past the end


def test_from_gaussians_bad_mask_length(planted):
    _, labels, _ = planted
    with pytest.raises(UserError, match=str(len(labels))):
        from_gaussians(labels, np.ones(len(labels) - 1, bool))


def test_from_clicks(planted):
    proj, labels, lm = planted
    p0, p1 = _pixel(lm, 0), _pixel(lm, 1)
    assert pixel_labels(proj, labels, np.array([p0, p1])).tolist() == [0, 1]
    sel = from_clicks(proj, labels, np.array([p0]))
    assert np.array_equal(sel.selected, labels == 0)
    sel = from_clicks(proj, labels, np.array([p1]))
    assert np.array_equal(sel.selected, labels == 1)
    both = from_clicks(proj, labels, np.array([p0, p1]))
    assert np.array_equal(both.selected, np.isin(labels, [0, 1]))
    # a negative click on object 1 splits it (one level: in 3D, the part nearer the positive click);
    # on object 2 (not selected) changes nothing
    sel = from_clicks(proj, labels, np.array([p0, p1]), negative=np.array([_pixel(lm, 1, 1)]))
    assert np.array_equal(sel.selected & (labels != 1), labels == 0) and sel.partial
    assert 0 < (sel.selected & (labels == 1)).sum() < (labels == 1).sum()
    sel = from_clicks(proj, labels, np.array([p0]), negative=np.array([_pixel(lm, 2)]))
    assert np.array_equal(sel.selected, labels == 0) and not sel.partial
    # the front object where it hides object 0
    assert np.array_equal(from_clicks(proj, labels, np.array([_pixel(lm, 2)])).selected, labels == 2)
    # background: nothing; the unlabelled splats: only the splats the click points at, no instance
    bg = np.argwhere(lm == -1)[0][::-1]
    assert not from_clicks(proj, labels, np.array([bg])).selected.any()
    on = from_clicks(proj, labels, np.array([_pixel(lm, 3)]))
    assert on.selected.any() and (labels[on.selected] == -1).all() and on.labels.tolist() == []
    assert on.selected.sum() < (labels == -1).sum()


@pytest.mark.parametrize("xy", [(W, 0), (0, H), (-1, 5), (5, -1)])
def test_click_outside_the_view(planted, xy):
    proj, labels, _ = planted
    with pytest.raises(UserError, match=rf"\({xy[0]}, {xy[1]}\).*{W}x{H}"):
        from_clicks(proj, labels, np.array([xy]))


def test_from_mask(planted):
    proj, labels, lm = planted
    sel = from_mask(proj, labels, lm == 1)
    assert np.array_equal(sel.selected, labels == 1)
    assert sel.score[labels == 1].min() > 0.5 and sel.score[labels == 0].max() < 0.5
    # most of object 0 and a sliver of object 1: object 0 only
    ys, xs = np.nonzero(lm == 1)
    sliver = (lm == 1) & (np.arange(W)[None, :] <= xs.min() + 1)
    sel = from_mask(proj, labels, (lm == 0) | sliver)
    assert np.array_equal(sel.selected, labels == 0)
    # a small part of object 1 alone: no label has half its weight inside, the heaviest one is taken
    part = (lm == 1) & (np.arange(W)[None, :] <= xs.min() + 2)
    inside, total = mask_weights(proj, part)
    assert (inside <= total + 1e-6).all()
    sel = from_mask_weights(labels, inside, total)
    assert np.array_equal(sel.selected, labels == 1)
    assert not from_mask(proj, labels, np.zeros((H, W), bool)).selected.any()
    empty = from_mask_weights(np.full(len(labels), -1), inside, total)
    assert not empty.selected.any() and len(empty.labels) == 0


def test_fit_mask_weights(planted):
    proj, labels, lm = planted
    sel, iou = fit_mask_weights(labels, *mask_weights(proj, lm == 1))
    assert np.array_equal(sel.selected, labels == 1) and iou > 0.9
    # object 1 and most (about 60%) of object 0's pixels: half a rule would drop object 0 only
    # below one half; the best-fitting set takes both, and drops object 0 when the mask grazes it
    xs0 = np.nonzero(lm == 0)[1]
    cut = np.quantile(xs0, 0.4)
    most = (lm == 1) | ((lm == 0) & (np.arange(W)[None, :] >= cut))
    sel, iou_both = fit_mask_weights(labels, *mask_weights(proj, most))
    assert np.array_equal(sel.selected, (labels == 0) | (labels == 1))
    graze = (lm == 1) | ((lm == 0) & (np.arange(W)[None, :] >= np.quantile(xs0, 0.85)))
    sel, _ = fit_mask_weights(labels, *mask_weights(proj, graze))
    assert np.array_equal(sel.selected, labels == 1)
    # nothing labelled, or nothing inside: an empty selection of IoU 0
    sel, iou = fit_mask_weights(np.full(len(labels), -1), *mask_weights(proj, lm == 1))
    assert not sel.selected.any() and iou == 0.0
    sel, iou = fit_mask_weights(labels, *mask_weights(proj, np.zeros((H, W), bool)))
    assert not sel.selected.any() and iou == 0.0


def test_fit_mask_levels_picks_the_granularity_of_the_mask(planted):
    proj, labels, lm = planted
    merged_01 = np.where(labels == 1, 0, labels)  # a coarser level where objects 0 and 1 are one
    everything = np.where(labels >= 0, 0, -1)
    levels = LabelLevels(np.array([0.0, 0.5, 1.0]), np.stack([labels, merged_01, everything]).astype(np.int32))
    weights = mask_weights(proj, lm == 0)
    sel, level, iou = fit_mask_levels(levels, *weights)
    assert level == 0.0 and np.array_equal(sel.selected, labels == 0)
    # (object 0's edge splats spill past its mask, and object 2 hides a part of it: IoU 0.84)
    assert iou > 0.75 and iou > fit_mask_weights(merged_01.astype(np.int64), *weights)[1] + 0.2
    sel, level, iou = fit_mask_levels(levels, *mask_weights(proj, (lm == 0) | (lm == 1)))
    assert np.array_equal(sel.selected, (labels == 0) | (labels == 1)) and iou > 0.85
    assert level == 0.5  # levels 0 and 0.5 fit equally (0 by two instances): the objects' level wins


def test_fit_mask_levels_takes_the_objects_level_on_a_near_tie():
    """A finer level that fits the mask barely better (by adding an instance with a sliver of
    visible weight inside it, the rest hidden) loses to the objects' level; a clearly better one wins."""
    objects = np.array([0, 0, 1, 1, 2, 2])
    finer = np.array([0, 0, 1, 1, 2, 3])  # at the finer level Gaussian 5 is an instance of its own
    levels = LabelLevels(np.array([0.0, 0.5]), np.stack([finer, objects]).astype(np.int32))
    inside = np.array([5.0, 5.0, 0.0, 0.0, 0.0, 0.1])  # Gaussian 5: 0.1 inside, 0.02 outside
    total = np.array([5.0, 5.0, 3.0, 3.0, 3.0, 0.12])
    sel, level, iou = fit_mask_levels(levels, inside, total)
    finer_iou = fit_mask_weights(finer, inside, total)[1]
    assert level == 0.5 and np.array_equal(sel.selected, objects == 0)
    assert iou < finer_iou < iou + FIT_TOLERANCE  # a near-tie, decided for the objects
    inside[5], total[5] = 3.0, 3.1  # now Gaussian 5 is well inside: the finer level fits clearly better
    sel, level, _ = fit_mask_levels(levels, inside, total)
    assert level == 0.0 and np.array_equal(sel.selected, np.isin(finer, [0, 3]))


def test_selection_mask(planted):
    proj, labels, lm = planted
    m0 = selection_mask(proj, labels == 0)
    assert m0.shape == (H, W) and m0.dtype == bool
    assert not (m0 & (lm == 2)).any()  # the front object hides object 0 there
    assert not (m0 & (lm == 1)).any()
    iou = (m0 & (lm == 0)).sum() / (m0 | (lm == 0)).sum()
    assert iou > 0.9
    m2 = selection_mask(proj, labels == 2)
    assert (m2 & (lm == 2)).sum() / (m2 | (lm == 2)).sum() > 0.9
    assert not selection_mask(proj, np.zeros(len(labels), bool)).any()
    assert selection_mask(proj, labels >= -1).sum() >= (lm >= 0).sum() - 2  # everything: the whole footprint


def test_label_levels():
    levels = LabelLevels(np.array([0.0, 0.5, 1.0]), np.array([[0, 1, 2, -1], [0, 0, 1, -1], [0, 0, 0, -1]], np.int32))
    assert levels.at(0.0).tolist() == [0, 1, 2, -1]
    assert levels.at(0.2).tolist() == [0, 1, 2, -1]  # nearest grid level
    assert levels.at(0.3).tolist() == [0, 0, 1, -1]
    assert levels.at(1.0).tolist() == [0, 0, 0, -1]
    assert levels.at(0.8).dtype == np.int64
    for bad in (-0.01, 1.01, float("nan"), float("inf")):
        with pytest.raises(UserError, match="--level"):
            levels.at(bad)


# ---- negative clicks split the merged instance (issue 26) ---------------------------------------

def _click(*gaussians):  # a click as pixel_weights gives it: these Gaussians, equal weights
    g = np.asarray(gaussians, np.int64)
    return g, np.full(len(g), 0.5, np.float32)


# six Gaussians, four nested levels: parts, pairs, {0..3} vs {4, 5}, everything
HAND_LEVELS = LabelLevels(np.array([0.0, 1 / 3, 2 / 3, 1.0]),
                          np.array([[0, 1, 2, 3, 4, 5], [0, 0, 1, 1, 2, 2], [0, 0, 0, 0, 1, 1], [0] * 6], np.int32))


@pytest.mark.parametrize("negative, level, expected", [
    ((2,), 2 / 3, [0, 1]),  # the pair level separates 0 from 2: the positive's pair
    ((1,), 2 / 3, [0]),  # only the parts separate 0 from 1
    ((1,), 1.0, [0]),
    ((4,), 1.0, [0, 1, 2, 3]),  # the coarsest separating level below 1 is 2/3
    ((4,), 2 / 3, [0, 1, 2, 3]),  # not in the positive's instance: nothing to split
    ((2, 1), 2 / 3, [0]),  # every negative separated
    ((0,), 2 / 3, []),  # on the positive's own Gaussian: no level separates them
])
def test_negative_click_splits_at_the_finest_separating_level(negative, level, expected):
    sel = HAND_LEVELS.from_clicks(level, [_click(0)], [_click(g) for g in negative])
    assert np.flatnonzero(sel.selected).tolist() == expected
    old = HAND_LEVELS.from_clicks(level, [_click(0)], [_click(g) for g in negative], rule="remove")
    i = HAND_LEVELS.index(level)
    hit = any(HAND_LEVELS.labels[i][g] == HAND_LEVELS.labels[i][0] for g in negative)
    assert old.selected.any() == (not hit)  # the earlier rule drops the whole instance


def test_split_selection_grows_with_the_level():
    prev = np.zeros(6, bool)
    for level in HAND_LEVELS.levels:
        sel = HAND_LEVELS.from_clicks(level, [_click(0), _click(5)], [_click(1)]).selected
        assert not (prev & ~sel).any()
        prev = sel
    assert np.flatnonzero(prev).tolist() == [0, 4, 5]  # 5's instance at level 1 holds 1: split to {4, 5}


def test_negative_click_splits_a_merged_instance_in_a_view(planted):
    """The planted objects 0 and 1 merged at level 0.5, and with the front square 2 at level 1: a
    positive click on 0 and a negative on 1 keep object 0 (the earlier rule kept nothing); a negative
    on 2 at level 1 keeps 0 and 1 together, the level-0.5 instance."""
    proj, labels, lm = planted
    levels = LabelLevels(np.array([0.0, 0.5, 1.0]), np.stack([labels, np.where(labels == 1, 0, np.where(labels == 2, 1, labels)),
                                                            np.where(labels >= 0, 0, -1)]).astype(np.int32))
    pos, neg1, neg2 = (pixel_weights(proj, np.array([_pixel(lm, o)]))[0] for o in (0, 1, 2))
    assert np.array_equal(levels.from_clicks(0.5, [pos]).selected, np.isin(labels, [0, 1]))
    assert np.array_equal(levels.from_clicks(0.5, [pos], [neg1]).selected, labels == 0)
    assert not levels.from_clicks(0.5, [pos], [neg1], rule="remove").selected.any()
    assert np.array_equal(levels.from_clicks(1.0, [pos], [neg2]).selected, np.isin(labels, [0, 1]))
    assert np.array_equal(levels.from_clicks(1.0, [pos], [neg1, neg2]).selected, labels == 0)
    with pytest.raises(ValueError, match="rule"):
        levels.from_clicks(0.5, [pos], [neg1], rule="drop")


# ---- where no level separates the clicks: a split in 3D by the clicked Gaussians ----------------

# one finest instance {0, 1, 2, 3} on a line, and {4, 5} far off; merged at the coarser level
LINE = np.array([[0.0, 0, 0], [1, 0, 0], [2.2, 0, 0], [3.5, 0, 0], [10, 0, 0], [11, 0, 0]])
LINE_LEVELS = LabelLevels(np.array([0.0, 1.0]), np.array([[0, 0, 0, 0, 1, 1], [0] * 6], np.int32))


@pytest.mark.parametrize("positive, negative, expected", [
    ([(0,)], [(3,)], [0, 1]),  # 1 nearer 0 than 3; 2 nearer 3
    ([(0, 1)], [(3,)], [0, 1, 2]),  # both of the click's Gaussians are sites: 2 is nearer 1 than 3
    ([(0,), (3,)], [(1,)], [0, 3]),  # two positives, one negative between them
    ([(2,)], [(0,), (3,)], [2]),  # the nearest negative of several
    ([(0,)], [(0,)], []),  # the same Gaussian for both: the negative click wins
])
def test_unseparated_negative_click_splits_the_finest_instance_in_3d(positive, negative, expected):
    for level in LINE_LEVELS.levels:
        sel = LINE_LEVELS.from_clicks(level, [_click(*g) for g in positive], [_click(*g) for g in negative], means=LINE)
        assert np.flatnonzero(sel.selected).tolist() == expected
        assert sel.partial == bool(expected)  # a part of the instance it lies in
        assert sel.labels.tolist() == ([0] if expected else [])
    # without the centres, the earlier answer: nothing
    assert not LINE_LEVELS.from_clicks(0.0, [_click(*g) for g in positive], [_click(*g) for g in negative]).selected.any()


def test_split_keeps_every_gaussian_of_the_positive_pixel():
    """A positive pixel that sees a front and a back surface (0 and 1) of the instance, a negative click
    on 2 just in front of the middle: the weighted mean of the positive pixel's centres (5) lies nearer the
    negative click than its own front Gaussian does, so the earlier rule (nearest click point) left the
    Gaussian the user pointed at out of the selection; each of the pixel's Gaussians is a site now."""
    means = np.array([[0.0, 0, 0], [10, 0, 0], [4, 0, 0], [12, 0, 0]])
    one = LabelLevels(np.array([0.0]), np.zeros((1, 4), np.int32))
    sel = one.from_clicks(0.0, [_click(0, 1)], [_click(2)], means=means)
    assert np.flatnonzero(sel.selected).tolist() == [0, 1, 3] and sel.partial


def test_split_follows_a_colour_edge():
    """Two touching things of different colours in one instance (0-3 red, 4-5 blue), clicked at 0 (positive)
    and 5 (negative): by position the cut falls halfway, at 2.5, and takes 3 away from the red thing; with the
    colours it falls at the colour edge."""
    means = np.array([[x, 0.0, 0.0] for x in range(6)])
    colors = np.array([[1.0, 0, 0]] * 4 + [[0, 0, 1.0]] * 2)
    one = LabelLevels(np.array([0.0]), np.zeros((1, 6), np.int32))
    by_position = one.from_clicks(0.0, [_click(0)], [_click(5)], means=means)
    assert np.flatnonzero(by_position.selected).tolist() == [0, 1, 2]
    by_colour = one.from_clicks(0.0, [_click(0)], [_click(5)], means=means, colors=colors)
    assert np.flatnonzero(by_colour.selected).tolist() == [0, 1, 2, 3]
    assert np.array_equal(split_by_clicks(means, np.arange(6), [_click(0)], [_click(5)], colors),
                          np.flatnonzero(by_colour.selected))


def test_split_by_a_level_is_partial_and_a_whole_instance_is_not():
    sel = HAND_LEVELS.from_clicks(2 / 3, [_click(0)], [_click(2)])
    assert np.flatnonzero(sel.selected).tolist() == [0, 1] and sel.labels.tolist() == [0] and sel.partial
    sel = HAND_LEVELS.from_clicks(2 / 3, [_click(0)], [_click(4)])
    assert np.flatnonzero(sel.selected).tolist() == [0, 1, 2, 3] and not sel.partial
    assert not HAND_LEVELS.from_clicks(2 / 3, [_click(0)], [_click(1)], rule="remove").partial


def test_single_level_negative_click_splits_the_instance_in_3d(planted):
    """A positive click near object 0's top edge and a negative near its bottom edge, one level: the
    top part stays, the bottom part goes, object 1 is untouched; the centres in the camera (the
    default) and in the world give the same split."""
    proj, labels, lm = planted
    ys, xs = np.nonzero(lm == 0)
    col = xs == xs.min() + 2
    top, bottom = (xs.min() + 2, ys[col].min() + 1), (xs.min() + 2, ys[col].max() - 1)
    sel = from_clicks(proj, labels, np.array([top]), np.array([bottom]))
    part = sel.selected
    assert sel.partial and sel.labels.tolist() == [0] and not (part & (labels != 0)).any()
    assert 0 < part.sum() < (labels == 0).sum()
    g_top = pixel_weights(proj, np.array([top]))[0][0]
    g_bottom = pixel_weights(proj, np.array([bottom]))[0][0]
    assert part[g_top[labels[g_top] == 0]].all() and not part[g_bottom].any()
    proj_means, world = camera_means(proj), np.concatenate(_surfaces()).astype(np.float32)
    assert np.array_equal(from_clicks(proj, labels, np.array([top]), np.array([bottom]), means=world).selected, part)
    seen = np.isfinite(proj_means).all(1)
    d = np.linalg.norm(proj_means[seen][:, None] - proj_means[seen][None, :5], axis=-1)
    dw = np.linalg.norm(world[seen][:, None] - world[seen][None, :5], axis=-1)
    np.testing.assert_allclose(d, dw, atol=1e-4)  # a rigid change of frame


# ---- a later positive click corrects the selection, it does not add a whole other instance ----------

# a small thing {0, 1} (red) on a large surface {2..9} (grey): two instances at every level
ON_TABLE = np.array([[0.0, 0, 1], [0.2, 0, 1], [0.4, 0, 0.9]] + [[x, 0, 0] for x in np.linspace(-3, 3, 7)])
ON_TABLE_COLOURS = np.array([[1.0, 0, 0]] * 3 + [[0.5, 0.5, 0.5]] * 7)
ON_TABLE_LEVELS = LabelLevels(np.array([0.0, 0.5]), np.array([[0, 0, 1] + [1] * 7, [0, 0, 1] + [1] * 7], np.int32))


def test_later_positive_click_adds_only_what_it_supports_of_a_larger_instance():
    """``split-support``: the small thing's edge splat 2 votes for the surface: a second positive click on
    it takes the whole surface (8 Gaussians for a 2-Gaussian selection) with the default rule, as an
    artist's shift-click on a second object must; with ``split-support`` it adds at most as many as are
    selected, those nearest the clicked splat in the split's space: the red edge splat first."""
    first, edge = _click(0), _click(2)
    whole = ON_TABLE_LEVELS.from_clicks(0.5, [first, edge], rule="split-whole", means=ON_TABLE, colors=ON_TABLE_COLOURS)
    assert np.flatnonzero(whole.selected).tolist() == list(range(10))
    default = ON_TABLE_LEVELS.from_clicks(0.5, [first, edge], means=ON_TABLE, colors=ON_TABLE_COLOURS)
    assert np.array_equal(default.selected, whole.selected)
    sel = ON_TABLE_LEVELS.from_clicks(0.5, [first, edge], rule="split-support", means=ON_TABLE,
                                      colors=ON_TABLE_COLOURS)
    assert sel.selected[[0, 1, 2]].all() and sel.selected.sum() <= 2 * 2 + 1
    assert sel.partial and sel.labels.tolist() == [0, 1]
    # without the centres there is no space to take a part in: the whole instance, as before
    assert np.array_equal(ON_TABLE_LEVELS.from_clicks(0.5, [first, edge], rule="split-support").selected,
                          whole.selected)


def test_later_positive_click_adds_a_smaller_instance_whole():
    """The surface first, then the small thing: a correction that adds fewer Gaussians than are selected
    takes its instance whole, with ``split-support`` too."""
    for rule in ("split", "split-support"):
        sel = ON_TABLE_LEVELS.from_clicks(0.5, [_click(5), _click(0)], rule=rule, means=ON_TABLE,
                                          colors=ON_TABLE_COLOURS)
        assert sel.selected.all() and not sel.partial


def test_each_positive_click_adds_by_its_own_rule():
    """One rule per positive click (the add-on's add and refine gestures in one selection): the edge click
    as a refinement adds what the selection supports, as an addition the whole surface; a later addition
    (a click on the surface itself) adds it whole whatever came before; the first click's rule changes
    nothing. A rule per click is "split" or "split-support", one for every positive click."""
    kw = dict(means=ON_TABLE, colors=ON_TABLE_COLOURS)
    first, edge, table = _click(0), _click(2), _click(5)
    support = ON_TABLE_LEVELS.from_clicks(0.5, [first, edge], rule="split-support", **kw).selected
    assert 0 < support[3:].sum() < 7  # a part of the surface
    for rules, expected in [(["split", "split-support"], support), (["split-support", "split-support"], support),
                            (["split-support", "split"], np.ones(10, bool)), (["split", "split"], np.ones(10, bool))]:
        assert np.array_equal(ON_TABLE_LEVELS.from_clicks(0.5, [first, edge], rule=rules, **kw).selected, expected)
    refined_then_added = ON_TABLE_LEVELS.from_clicks(0.5, [first, edge, table], rule=["split", "split-support", "split"],
                                                     **kw)
    assert refined_then_added.selected.all() and not refined_then_added.partial
    # all-refine is the rule for all: the surface click then adds only what it supports too
    assert not ON_TABLE_LEVELS.from_clicks(0.5, [first, edge, table], rule="split-support", **kw).selected.all()
    for bad in (["split"], ["split", "remove"], ["split", "split-whole"], "refine"):
        with pytest.raises(ValueError, match="rule must be"):
            ON_TABLE_LEVELS.from_clicks(0.5, [first, edge], rule=bad, **kw)


def test_positive_click_on_selected_splats_adds_the_splats_it_points_at():
    """The clicked pixel is carried by an unlabelled splat 3 (weight 0.7) in front of the selected 0 (0.3):
    the rule before changed nothing (the pixel's only label is selected already); now the splat the click
    points at is added, so the pixel shows selected; a negative click that weighs more on it keeps it out."""
    levels = LabelLevels(np.array([0.5]), np.array([[0, 0, 1, -1]], np.int32))
    means = np.array([[0.0, 0, 0], [0.1, 0, 0], [5, 0, 0], [0, 0, 0.5]])
    pixel = (np.array([3, 0]), np.array([0.7, 0.3], np.float32))
    before = levels.from_clicks(0.5, [_click(0), pixel], rule="split-whole", means=means)
    assert np.flatnonzero(before.selected).tolist() == [0, 1]
    after = levels.from_clicks(0.5, [_click(0), pixel], means=means)
    assert np.flatnonzero(after.selected).tolist() == [0, 1, 3]
    against = levels.from_clicks(0.5, [_click(0), pixel], [_click(3)], means=means)
    assert not against.selected[3]


def test_one_positive_click_grows_with_the_level_with_the_splats_it_points_at():
    """The splats a click points at do not depend on the level, so one click's selection still grows with
    it: a pixel carried by 3 (0.6) in front of 0 (0.4) selects 3 at every level, beside 0's instance."""
    means = np.array([[float(x), 0, 0] for x in range(6)])
    pixel = (np.array([3, 0]), np.array([0.6, 0.4], np.float32))
    prev = np.zeros(6, bool)
    for level in HAND_LEVELS.levels:
        sel = HAND_LEVELS.from_clicks(level, [pixel], means=means).selected
        assert sel[3] and not (prev & ~sel).any()
        prev = sel

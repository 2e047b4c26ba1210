"""Hard cases in the synthetic world: every kind is drawn, on the table, with ground truth that
says what touches what, what holds what and what rests on what."""

import numpy as np
import pytest
from scipy.spatial import cKDTree

from gs_core.synth import SynthConfig, make_world
from gs_core.synth.hardcases import THIN


@pytest.fixture(scope="module")
def hard_world():
    return make_world(SynthConfig.sized("small", layout="tabletop", seed=0, hard_cases=True))


def _points(world, o):
    lab = world.labels
    return world.scene.means[lab.clean & (lab.object == o)].astype(np.float64)


def _gap(world, a, b) -> float:
    """The smallest distance between a splat of object ``a`` and one of ``b``."""
    return float(cKDTree(_points(world, a)).query(_points(world, b))[0].min())


def _by_category(h, category):
    return [o for o in h.objects if o.category == category]


def test_every_hard_case_is_on_the_table_in_its_group(hard_world):
    h = hard_world.hierarchy
    cats = {o.category for o in h.objects}
    assert {"shelf", "book", "bowl", "apple", "cup", "pen", "pencil", "cable", "plate"} <= cats
    assert cats & {"tin", "jar"}
    table = _by_category(h, "table")[0]
    for o in h.objects:
        if not o.stuff and o.category not in ("table", "chair"):
            assert o.group == table.group
            chain = o
            while chain.support is not None:
                chain = h.objects[chain.support]
            assert chain.id == table.id, o.name


def test_contents_rest_in_their_container_and_look_alikes_touch(hard_world):
    h, w = hard_world.hierarchy, hard_world
    bowl = _by_category(h, "bowl")[0]
    apples = [o for o in _by_category(h, "apple") if o.support == bowl.id]
    assert len(apples) == 3
    # spheres touch: centres (the mean of samples spread evenly over the sphere) two radii apart, to
    # the sampling noise of ~50 samples (about 0.1 r each)
    centres = [_points(w, o.id).mean(0) for o in apples]
    radius = np.mean([np.linalg.norm(_points(w, o.id) - c, axis=1).mean() for o, c in zip(apples, centres)])
    for i in range(3):
        for j in range(i + 1, 3):
            assert np.linalg.norm(centres[i] - centres[j]) == pytest.approx(2 * radius, abs=0.3 * radius)
    cup = _by_category(h, "cup")[0]
    assert [o for o in _by_category(h, "pen") if o.support == cup.id]
    shelf = _by_category(h, "shelf")[0]
    books = [o for o in h.objects if o.support == shelf.id]
    assert len(books) >= 4 and all(o.category == "book" for o in books)
    centres = np.array([_points(w, o.id).mean(0) for o in books])
    order = np.argsort(centres @ (centres[-1] - centres[0]))
    for a, b in zip(order[:-1], order[1:]):
        assert _gap(w, books[a].id, books[b].id) < 0.01


def test_stacks_rest_on_each_other(hard_world):
    h, w = hard_world.hierarchy, hard_world
    for category in ("plate", "book"):
        stacked = [o for o in _by_category(h, category)
                   if o.support is not None and h.objects[o.support].category == category]
        assert stacked, category
        for o in stacked:
            below = _points(w, o.support)[:, 2].max()
            assert abs(_points(w, o.id)[:, 2].min() - below) < 0.004, o.name


def test_thin_objects_lie_on_the_table_a_few_mm_across(hard_world):
    h, w = hard_world.hierarchy, hard_world
    table = _by_category(h, "table")[0]
    top = _points(w, table.id)[:, 2].max()
    lying = [o for o in h.objects if o.category in THIN and o.support == table.id]
    assert {o.category for o in lying} == set(THIN)
    for o in lying:
        p = _points(w, o.id)
        assert p[:, 2].min() == pytest.approx(top, abs=0.003) and p[:, 2].max() - p[:, 2].min() < 0.01
        xy = p[:, :2] - p[:, :2].mean(0)
        axis = np.linalg.svd(xy, full_matrices=False)[2][0]
        length = np.ptp(xy @ axis) if o.category != "cable" else np.ptp(xy, axis=0).max()
        assert 0.05 < length < 0.2, (o.name, length)


def test_hard_world_is_deterministic(hard_world):
    again = make_world(SynthConfig.sized("small", layout="tabletop", seed=0, hard_cases=True))
    assert again.hierarchy == hard_world.hierarchy
    assert np.array_equal(again.scene.means, hard_world.scene.means)
    plain = make_world(SynthConfig.sized("tiny", layout="tabletop", seed=0))
    assert not {"shelf", "apple", "cable"} & {o.category for o in plain.hierarchy.objects}


def test_artefacts_on_thin_objects_stay_at_their_scale(hard_world):
    """Straddlers across a thin object's contacts and other objects' splats intruding into it are
    sized by the thin object's own splats, not the desk's: wider ones would paint over it."""
    from gs_core.synth.groundtruth import ARTEFACTS

    lab, scene = hard_world.labels, hard_world.scene
    size = np.exp(scene.log_scales[:, :2]).max(1)
    thin = [o.id for o in hard_world.hierarchy.objects if o.category in ("pen", "pencil", "cable")]
    assert thin
    checked = 0
    for o in thin:
        own = size[lab.clean & (lab.object == o)].max()
        spans = (lab.spans[:, 0] == o) | (lab.spans[:, 1] == o)
        straddle = spans & (lab.artefact == ARTEFACTS.index("straddler"))
        intrude = (lab.spans[:, 1] == o) & (lab.artefact == ARTEFACTS.index("intruder"))
        assert (size[straddle] <= 3.0 * own * 1.0001).all(), hard_world.hierarchy.objects[o].name
        assert (size[intrude] <= 1.5 * own * 1.0001).all(), hard_world.hierarchy.objects[o].name
        checked += int(straddle.sum() + intrude.sum())
    assert checked > 0

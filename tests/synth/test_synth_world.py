"""The world generator: determinism, hierarchy, artefact ground truth, 3DGS/2DGS forms."""

import numpy as np
import pytest
from scipy.spatial import cKDTree

from gs_core.scene import GaussianScene
from gs_core.synth import ARTEFACTS, ArtefactConfig, SynthConfig, make_world
from gs_core.synth.artefacts import _normals


def _arrays(world):
    s, lab = world.scene, world.labels
    return [s.means, s.quats, s.log_scales, s.opacity_logits, s.sh_dc, lab.part, lab.object, lab.group,
            lab.artefact, lab.spans]


@pytest.mark.parametrize("layout", ["tabletop", "room"])
def test_same_config_same_world(layout):
    a = make_world(SynthConfig.sized("tiny", layout=layout, seed=5))
    b = make_world(SynthConfig.sized("tiny", layout=layout, seed=5))
    for x, y in zip(_arrays(a), _arrays(b)):
        assert np.array_equal(x, y)
    assert a.hierarchy == b.hierarchy
    for ca, cb in zip(a.cameras, b.cameras):
        assert np.array_equal(ca.world_to_camera, cb.world_to_camera) and ca.name == cb.name


def test_other_seed_other_world():
    a = make_world(SynthConfig.sized("tiny", layout="room", seed=1))
    b = make_world(SynthConfig.sized("tiny", layout="room", seed=2))
    assert len(a.scene) != len(b.scene) or not np.array_equal(a.scene.means, b.scene.means)


def test_hierarchy_matches_per_gaussian_ids(tiny_world):
    h, lab = tiny_world.hierarchy, tiny_world.labels
    assert [p.id for p in h.parts] == list(range(len(h.parts)))
    assert [o.id for o in h.objects] == list(range(len(h.objects)))
    owned = lab.object >= 0
    assert np.array_equal(h.part_to_object[lab.part[owned]], lab.object[owned])
    assert np.array_equal(h.object_to_group[lab.object[owned]], lab.group[owned])
    for g in h.groups:
        assert all(h.objects[o].group == g.id for o in g.objects)
    # every clean splat belongs to an object, and every part has splats
    assert (lab.object[lab.clean] >= 0).all()
    assert set(np.unique(lab.part[lab.clean])) == set(range(len(h.parts)))


def test_items_rest_on_the_table_and_share_its_group(tiny_world):
    h = tiny_world.hierarchy
    table = next(o for o in h.objects if o.category == "table")
    items = [o for o in h.objects if o.support == table.id]
    assert items, "the table top carries items"
    assert all(o.group == table.group for o in items)
    assert len(h.groups[table.group].objects) == 1 + len(items) + sum(
        1 for o in h.objects if o.support is not None and h.objects[o.support].support == table.id)
    lab = tiny_world.labels
    top = lab.clean & (lab.part == next(p for p in table.parts if h.parts[p].name == "top"))
    table_height = tiny_world.scene.means[top, 2].max()
    for o in items:
        z = tiny_world.scene.means[lab.clean & (lab.object == o.id), 2]
        assert z.min() > table_height - 0.02, o.name


def test_objects_made_of_parts():
    world = make_world(SynthConfig.sized("tiny", layout="room", seed=0))
    parts = {o.category: sorted(world.hierarchy.parts[p].name for p in o.parts) for o in world.hierarchy.objects}
    assert parts["chair"] == ["back", "leg_0", "leg_1", "leg_2", "leg_3", "seat"]
    assert parts["floor_lamp"] == ["base", "shade", "stem"]
    assert parts["table"] == ["leg_0", "leg_1", "leg_2", "leg_3", "top"]
    assert {o.category for o in world.hierarchy.objects if o.stuff} == {"floor", "wall", "ceiling"}


def test_artefact_counts_follow_the_config():
    cfg = SynthConfig.sized("tiny", layout="tabletop", seed=1,
                            artefacts=ArtefactConfig(straddlers=0.02, intruders=0.01, floaters=0.005))
    world = make_world(cfg)
    n_clean = int(world.labels.clean.sum())
    counts = np.bincount(world.labels.artefact, minlength=len(ARTEFACTS))
    assert counts[1] == round(0.02 * n_clean)
    assert counts[3] == round(0.01 * n_clean)
    assert counts[2] == round(0.005 * n_clean)
    none = make_world(SynthConfig.sized("tiny", layout="tabletop", seed=1,
                                        artefacts=ArtefactConfig(0.0, 0.0, 0.0)))
    assert none.labels.clean.all()
    # artefacts come after the clean splats, which they do not change
    assert np.array_equal(none.scene.means, world.scene.means[world.labels.clean])


def test_artefacts_say_which_objects_they_span(tiny_world):
    lab, means = tiny_world.labels, tiny_world.scene.means
    clean = lab.clean
    trees = {o: cKDTree(means[clean & (lab.object == o)]) for o in np.unique(lab.object[clean])}
    floaters = lab.artefact == ARTEFACTS.index("floater")
    assert floaters.any()
    assert (lab.object[floaters] == -1).all() and (lab.part[floaters] == -1).all()
    assert (lab.spans[floaters] == -1).all()
    for kind in ("straddler", "intruder"):
        sel = np.flatnonzero(lab.artefact == ARTEFACTS.index(kind))
        assert len(sel)
        owner, other = lab.spans[sel, 0], lab.spans[sel, 1]
        assert np.array_equal(owner, lab.object[sel])
        assert (other >= 0).all() and (other != owner).all()
        # both spanned objects have surface right next to the artefact
        for i, a, b in zip(sel, owner, other):
            assert trees[a].query(means[i])[0] < 0.15 and trees[b].query(means[i])[0] < 0.15
    straddle = lab.artefact == ARTEFACTS.index("straddler")
    assert tiny_world.scene.opacities[straddle].max() < 0.31
    # larger than the splats of the finer of the two surfaces they span
    scale = np.exp(tiny_world.scene.log_scales[:, 0])
    typical = {o: np.median(scale[clean & (lab.object == o)]) for o in np.unique(lab.object[clean])}
    finer = np.array([min(typical[a], typical[b]) for a, b in lab.spans[straddle]])
    assert np.median(scale[straddle] / finer) > 1.2


def test_intruders_reach_into_the_other_object(tiny_world):
    lab, scene = tiny_world.labels, tiny_world.scene
    sel = np.flatnonzero(lab.artefact == ARTEFACTS.index("intruder"))
    behind = 0
    for i in sel:
        other = np.flatnonzero(lab.clean & (lab.object == lab.spans[i, 1]))
        j = other[np.argmin(np.linalg.norm(scene.means[other] - scene.means[i], axis=1))]
        normal = _normals(scene.quats[j:j + 1].astype(np.float64))[0]
        behind += (scene.means[i] - scene.means[j]) @ normal < 0
    assert behind >= 0.8 * len(sel)


def test_2dgs_is_the_same_world_with_flat_splats(tiny_config):
    from dataclasses import replace

    a = make_world(tiny_config)
    b = make_world(replace(tiny_config, kind="2dgs"))
    assert a.scene.kind == "3dgs" and a.scene.log_scales.shape[1] == 3
    assert b.scene.kind == "2dgs" and b.scene.log_scales.shape[1] == 2
    assert np.array_equal(a.scene.means, b.scene.means)
    assert np.array_equal(a.scene.log_scales[:, :2], b.scene.log_scales)


def test_ply_round_trip(tiny_world, tmp_path):
    tiny_world.scene.save(tmp_path / "s.ply")
    back = GaussianScene.load(tmp_path / "s.ply")
    assert back.sh_degree == 3
    for name in ("means", "quats", "log_scales", "opacity_logits", "sh_dc", "sh_rest"):
        assert np.array_equal(getattr(back, name), getattr(tiny_world.scene, name))


def test_sizes_scale_the_scene():
    tiny = make_world(SynthConfig.sized("tiny", layout="tabletop"))
    small = make_world(SynthConfig.sized("small", layout="tabletop"))
    assert len(small.scene) > 2 * len(tiny.scene)
    assert small.train_cameras[0].width > tiny.train_cameras[0].width
    assert len(small.train_cameras) == 12 and len(small.test_cameras) == 4


def test_room_cameras_are_inside_the_room():
    world = make_world(SynthConfig.sized("tiny", layout="room", seed=4))
    clean = world.labels.clean
    lo, hi = world.scene.means[clean].min(0), world.scene.means[clean].max(0)
    for cam in world.cameras:
        assert (cam.position > lo).all() and (cam.position < hi).all()
    names = [c.name for c in world.cameras]
    assert len(set(names)) == len(names)


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="layout"):
        SynthConfig(layout="garden")
    with pytest.raises(ValueError, match="size"):
        SynthConfig.sized("huge")

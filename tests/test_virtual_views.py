"""Virtual views of a splat file without photos: the scene's frame (up within 20 degrees of the truth),
the candidates, which are kept; an object is seen whole from around, a table top from above-around, a
room from inside; and the real plant capture (``../shared/data/real/plant.splat``) like its thumbnail."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gs_core.synth import SynthConfig, make_world
from gs_core.virtual_views import (VirtualViewConfig, candidate_cameras, choose_virtual_views, estimate_frame,
                                   is_enclosed, render_rgb, scene_frame, share_in_view, write_virtual_dataset)

PLANT = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "real" / "plant.splat"
Z_TO_Y_DOWN = np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]])  # a z-up world as a y-down (COLMAP) one
SMALL = VirtualViewConfig(views=6, width=64, height=48, ring_azimuths=8, probe_width=80)


def _angle(u, v) -> float:
    return float(np.degrees(np.arccos(np.clip(np.dot(u, v) / np.linalg.norm(v), -1.0, 1.0))))


def _rotated(scene, R):
    out = scene.subset(np.arange(len(scene)))
    out.means = (out.means.astype(np.float64) @ R.T).astype(np.float32)
    return out  # positions only: enough for the frame and the views (rotations of splats aside)


def _extent(camera, means) -> float:  # the larger share of the image's width / height the points span
    p = means.astype(np.float64) @ camera.world_to_camera[:3, :3].T + camera.world_to_camera[:3, 3]
    x, y = camera.fx * p[:, 0] / p[:, 2] + camera.cx, camera.fy * p[:, 1] / p[:, 2] + camera.cy
    span = lambda v: np.percentile(v, 98) - np.percentile(v, 2)  # noqa: E731
    return max(span(x) / camera.width, span(y) / camera.height)


@pytest.fixture(scope="module")
def table():
    return make_world(SynthConfig.sized("tiny", layout="tabletop"))


def test_frame_finds_up_and_ignores_floaters(table):
    f = scene_frame(table.scene)
    assert abs(f.up @ [0, 0, 1]) > 0.99  # the table top world is flat along z
    far = table.scene.subset(np.arange(len(table.scene)))
    far.means = far.means.copy()
    far.means[:20] += 100.0  # 20 floaters far away do not stretch the frame
    assert scene_frame(far).radius == pytest.approx(f.radius, rel=0.05)
    assert abs(scene_frame(table.scene, "y").up @ [0, 1, 0]) == 1.0
    with pytest.raises(ValueError, match="up must be"):
        scene_frame(table.scene, "sideways")


def test_sh_is_evaluated_per_view(table):
    scene = table.scene.subset(np.arange(len(table.scene)))
    cam = table.train_cameras[0]
    rgb0, alpha, _ = render_rgb(scene, scene.to_gaussians(), cam)
    scene.sh_rest = scene.sh_rest.copy()
    scene.sh_rest[:, 2, :] += 0.4  # the y band (Y_1,-1 ... index 3 = -c1 x): changes colours with direction
    rgb1, _, _ = render_rgb(scene, scene.to_gaussians(), cam)
    assert rgb0.shape == (cam.height, cam.width, 3) and alpha.max() > 0.9
    assert np.abs(rgb1 - rgb0).max() > 0.05


def test_written_dataset(table, tmp_path):
    frame = scene_frame(table.scene)
    cands = candidate_cameras(frame, SMALL)
    assert len(cands) == len(SMALL.elevations) * 8 + 4 * 8 + 5 * 8 * 2
    root, stats = write_virtual_dataset(table.scene, tmp_path / "v", SMALL)
    assert stats["chosen"] == 6 and stats["accepted"] >= 6
    from gs_core.dataset import Dataset

    ds = Dataset.load(root)
    assert len(ds) == 6 and ds.image(0).shape == (48, 64, 3)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_table_top_from_above_around(seed):
    """Every view from outside and above the table, with the table and its items whole in the frame."""
    world = make_world(SynthConfig.sized("tiny", layout="tabletop", seed=seed))
    names = [o.name for o in world.hierarchy.objects]
    items = np.isin(world.labels.object, [i for i, n in enumerate(names) if not n.startswith("floor")])
    frame = scene_frame(world.scene)
    assert _angle(frame.up, [0, 0, 1]) < 20
    cams, stats = choose_virtual_views(world.scene, SMALL)
    assert not stats["enclosed"] and stats["inside"] == 0 and len(cams) == SMALL.views
    table_top = world.scene.means[items].astype(np.float64)
    for cam in cams:
        assert (cam.position - frame.centre) @ frame.up > 0  # above
        assert share_in_view(world.scene.subset(np.flatnonzero(items)), cam) > 0.98
        assert _extent(cam, table_top) > 0.3


@pytest.mark.parametrize("seed", [0, pytest.param(1, marks=pytest.mark.slow), pytest.param(2, marks=pytest.mark.slow)])
def test_room_from_inside(seed):
    """A room (walls and a ceiling) is enclosed: every view stands inside, its image full of the room."""
    world = make_world(SynthConfig.sized("tiny", layout="room", seed=seed))
    frame, enclosed, _ = estimate_frame(world.scene, world.scene.to_gaussians(), SMALL)
    assert enclosed and _angle(frame.up, [0, 0, 1]) < 20
    cams, stats = choose_virtual_views(world.scene, SMALL)
    assert stats["enclosed"] and stats["around"] == 0 and all("_in" in c.name for c in cams)  # inside, inward
    lo, hi = np.percentile(world.scene.means, 2, axis=0), np.percentile(world.scene.means, 98, axis=0)
    gaussians = world.scene.to_gaussians()
    for cam in cams:
        assert np.all((cam.position > lo) & (cam.position < hi))  # inside the walls
        _, alpha, _ = render_rgb(world.scene, gaussians, cam.scaled(0.5))
        assert (alpha > 0.5).mean() >= SMALL.min_coverage


@pytest.mark.parametrize("name", ["bottle", "lamp", "book"])
@pytest.mark.parametrize("world_up", ["z", "-y"])
def test_object_seen_whole_from_around(name, world_up):
    """A single object cut from the synthetic worlds, in a z-up world and turned into a y-down one: up
    within 20 degrees, not enclosed, every view sees all of its splats and spans much of the image."""
    for seed, layout in ((0, "room"), (1, "tabletop"), (0, "tabletop")):
        world = make_world(SynthConfig.sized("tiny", layout=layout, seed=seed))
        names = [o.name for o in world.hierarchy.objects]
        if f"{name}_0" in names:
            break
    obj = world.scene.subset(np.flatnonzero(world.labels.object == names.index(f"{name}_0")))
    truth = np.array([0.0, 0, 1])
    if world_up == "-y":
        obj, truth = _rotated(obj, Z_TO_Y_DOWN), Z_TO_Y_DOWN @ truth
    assert _angle(scene_frame(obj).up, truth) < 20
    cams, stats = choose_virtual_views(obj, SMALL)
    assert not stats["enclosed"] and stats["inside"] == 0
    for cam in cams:
        assert share_in_view(obj, cam) > 0.98
        # the bounding sphere fills the image's height: even a flat book seen from its short side spans
        # a third of the (wider) image
        assert _extent(cam, obj.means) > 0.3


def test_enclosure_needs_the_sky_closed(table):
    """The room's walls and ceiling close the views from its middle; a table top leaves them open (the
    view straight up may be the table's underside, the views to the sides show the floor at a slant)."""
    room = make_world(SynthConfig.sized("tiny", layout="room"))
    config = VirtualViewConfig()
    closed, covers = is_enclosed(room.scene, room.scene.to_gaussians(), scene_frame(room.scene), config)
    assert closed and min(covers) >= config.min_coverage
    open_, _ = is_enclosed(table.scene, table.scene.to_gaussians(), scene_frame(table.scene), config)
    assert not open_


@pytest.mark.slow
@pytest.mark.skipif(not PLANT.is_file(), reason=f"the real capture is not here: {PLANT}")
def test_real_plant_is_seen_whole_from_around():
    """The phone capture (CC-BY-4.0, see its README): up (-y) within 20 degrees, views from around and
    above that see the whole plant and span most of the image, as in its thumbnail."""
    from gs_core.scene import GaussianScene

    plant = GaussianScene.load(PLANT)
    frame = scene_frame(plant)
    assert _angle(frame.up, [0, -1, 0]) < 20
    config = VirtualViewConfig(views=8, width=80, height=60, ring_azimuths=8)
    cams, stats = choose_virtual_views(plant, config)
    assert not stats["enclosed"] and stats["inside"] == 0 and len(cams) == 8
    opacity = 1.0 / (1.0 + np.exp(-plant.opacity_logits))
    solid = plant.means[opacity > 0.5]
    gaussians = plant.to_gaussians()
    for cam in cams:
        assert (cam.position - frame.centre) @ frame.up > 0  # from above the horizon
        assert share_in_view(plant, cam) > 0.98  # the plant's splats all in the frame
        # and large in it: no close-up, no speck (the bounding sphere fills the image's height; from the
        # steepest ring, 55 degrees up, the tall plant foreshortens to about half of it)
        assert _extent(cam, solid) > 0.4
        _, alpha, _ = render_rgb(plant, gaussians, cam)
        assert 0.05 < (alpha > 0.5).mean() < 0.6  # a plant against the background, not foliage filling the view

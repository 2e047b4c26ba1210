"""Virtual views of a splat file without photos: the scene's frame, the candidates, which are kept."""

from __future__ import annotations

import numpy as np
import pytest

from gs_core.synth import SynthConfig, make_world
from gs_core.virtual_views import (VirtualViewConfig, candidate_cameras, render_rgb, scene_frame,
                                   write_virtual_dataset)


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


def test_choose_keeps_views_that_see_the_scene(table, tmp_path):
    config = VirtualViewConfig(views=6, width=64, height=48, ring_azimuths=8)
    frame = scene_frame(table.scene)
    cands = candidate_cameras(frame, config)
    assert len(cands) == 4 * 8 + 5 * 8 * 2
    root, stats = write_virtual_dataset(table.scene, tmp_path / "v", config)
    assert stats["chosen"] == 6 and stats["accepted"] >= 6 and stats["candidates"] == len(cands)
    from gs_core.dataset import Dataset

    ds = Dataset.load(root)
    assert len(ds) == 6 and ds.image(0).shape == (48, 64, 3)
    for cam in ds.cameras:  # every chosen view sees the scene
        _, alpha, _ = render_rgb(table.scene, table.scene.to_gaussians(), cam.scaled(160 / 64))
        assert (alpha > 0.5).mean() >= config.min_coverage

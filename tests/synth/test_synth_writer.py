"""Synthetic datasets read back through the same loaders as real data."""

import json

import numpy as np
import pytest

from gs_core.cli import main
from gs_core.dataset import Dataset
from gs_core.synth import GroundTruth, MaskNoise, simulate_masks, write_dataset
from gs_core.synth.writer import mask_rng


@pytest.fixture(scope="module")
def written(tiny_world, tiny_views, tmp_path_factory):
    root = tmp_path_factory.mktemp("synth") / "ds"
    write_dataset(root, tiny_world, tiny_views, MaskNoise.level(1.0))
    return root


def test_dataset_loads_like_real_data(written, tiny_world, tiny_views):
    ds = Dataset.load(written)
    assert ds.names == [c.name for c in tiny_world.cameras]
    for cam, ref in zip(ds.cameras, tiny_world.cameras):
        assert np.allclose(cam.world_to_camera, ref.world_to_camera, atol=1e-9)
        assert np.allclose(cam.K, ref.K) and (cam.width, cam.height) == (ref.width, ref.height)
    for i, view in enumerate(tiny_views):
        assert np.abs(ds.image(i) - view.rgb).max() <= 0.5 / 255 + 1e-6
    scene = ds.load_scene()
    assert np.array_equal(scene.means, tiny_world.scene.means) and scene.kind == tiny_world.scene.kind


def test_masks_only_for_training_views(written, tiny_world, tiny_views):
    ds = Dataset.load(written)
    n_train = len(tiny_world.train_cameras)
    for i, view in enumerate(tiny_views):
        masks = ds.masks(i)
        if i >= n_train:
            assert masks is None  # held-out views carry no masks a method could peek at
            continue
        expected = simulate_masks(view.part, view.object, view.group, tiny_world.hierarchy, MaskNoise.level(1.0),
                                  mask_rng(tiny_world.config.seed, i))
        assert np.array_equal(masks, expected.masks)


def test_ground_truth_round_trip(written, tiny_world, tiny_views):
    gt = GroundTruth.load(written)
    assert gt.hierarchy == tiny_world.hierarchy
    for name in ("part", "object", "group", "artefact", "spans"):
        assert np.array_equal(getattr(gt.gaussians, name), getattr(tiny_world.labels, name))
    assert gt.train == [c.name for c in tiny_world.train_cameras]
    assert gt.test == [c.name for c in tiny_world.test_cameras]
    for view in tiny_views:
        for level in ("part", "object", "group"):
            assert np.array_equal(gt.instance_map(view.camera.name, level), getattr(view, level))
        assert np.abs(gt.depth(view.camera.name) - view.depth).max() <= 0.0006
    assert gt.info["config"]["seed"] == tiny_world.config.seed
    assert sum(gt.info["artefacts"].values()) == len(tiny_world.scene)
    meta = json.loads((written / "gt" / "scene.json").read_text())
    assert set(meta["mask_sources"]) == {c.name[:-4] for c in tiny_world.train_cameras}


def test_not_a_synthetic_dataset(tmp_path):
    with pytest.raises(FileNotFoundError, match="gt/scene.json"):
        GroundTruth.load(tmp_path)


def test_synth_command(tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["synth", "--out", str(out), "--size", "tiny", "--layout", "room", "--seed", "2",
                 "--noise", "0", "--kind", "2dgs"]) == 0
    ds = Dataset.load(out)
    assert ds.load_scene().kind == "2dgs"
    gt = GroundTruth.load(out)
    assert gt.info["noise"] == MaskNoise().to_json()
    # clean masks: every training mask is exactly one GT object's region
    objects = gt.instance_map(ds.names[0])
    for mask in ds.masks(0):
        ids = np.unique(objects[mask])
        assert len(ids) == 1 and np.array_equal(mask, objects == ids[0])
    assert "splats" in capsys.readouterr().out


def test_synth_command_hard_cases(tmp_path):
    out = tmp_path / "hard"
    assert main(["synth", "--out", str(out), "--size", "tiny", "--layout", "tabletop", "--seed", "0",
                 "--noise", "1", "--hard-cases"]) == 0
    gt = GroundTruth.load(out)
    assert gt.info["config"]["hard_cases"] and gt.info["noise"] == MaskNoise.level(1.0, hard=True).to_json()
    assert {"shelf", "apple", "bowl", "cup", "pen", "pencil", "cable", "plate"} <= {
        o.category for o in gt.hierarchy.objects}


def test_dataset_written_knows_its_world_and_noise(tiny_world, tiny_views, tiny_config, tmp_path, monkeypatch):
    """A finished dataset is recognised by the config and mask noise it was written with, and by nothing
    else; one being rewritten in place (its scene.json gone until the views are written) is not finished."""
    from dataclasses import replace

    from gs_core.synth import dataset_written

    root = tmp_path / "ds"
    assert not dataset_written(root, tiny_config, MaskNoise.level(1.0))
    write_dataset(root, tiny_world, tiny_views, MaskNoise.level(1.0))
    assert dataset_written(root, tiny_config, MaskNoise.level(1.0))
    assert not dataset_written(root, tiny_config, MaskNoise.level(0.5))
    assert not dataset_written(root, tiny_config, MaskNoise.level(1.0, hard=True))
    assert not dataset_written(root, replace(tiny_config, seed=tiny_config.seed + 1), MaskNoise.level(1.0))
    assert not dataset_written(root, replace(tiny_config, kind="2dgs"), MaskNoise.level(1.0))

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr("gs_core.synth.writer.write_view", interrupted)
        with pytest.raises(KeyboardInterrupt):
            write_dataset(root, tiny_world, tiny_views, MaskNoise.level(1.0))
    assert not dataset_written(root, tiny_config, MaskNoise.level(1.0))
    (root / "gt" / "scene.json").write_text("{not json")
    assert not dataset_written(root, tiny_config, MaskNoise.level(1.0))

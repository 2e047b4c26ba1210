"""Proto-SaGa as a method: registered in the benchmark with its ablations, returns the training
views' associated maps and Eq. 19 maps of the held-out views, and runs through ``gs-core prepare``."""

import numpy as np
import pytest

from gs_core.eval import METHODS, MethodInput
from gs_core.dataset import Dataset
from gs_core.methods import proto_saga
from gs_core.metrics import association_scores
from gs_core.synth import GroundTruth, MaskNoise, SynthConfig, make_world, render_views, write_dataset


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    world = make_world(SynthConfig.sized("tiny", layout="tabletop", seed=1))
    root = write_dataset(tmp_path_factory.mktemp("ps") / "clean", world, render_views(world, world.cameras), MaskNoise())
    return root


def test_registered_entries():
    for name in ("proto-saga", "proto-saga-depth", "proto-saga-prob", "proto-saga-cls", "proto-saga-kmeans"):
        assert name in METHODS
    assert METHODS["proto-saga"] is proto_saga.segment


@pytest.mark.slow
def test_segment_and_prepare(tiny, tmp_path):
    from gs_core.pipeline.prepare import PrepareOptions, prepare

    ds, gt = Dataset.load(tiny), GroundTruth.load(tiny)
    train = [ds.names.index(n) for n in gt.train]
    config = proto_saga.ProtoSagaConfig(classifiers=proto_saga.ClassifierConfig(steps=150, pixels_per_step=512))
    res = proto_saga.segment(MethodInput(ds, train), config)
    assert sorted(res.view_maps) == list(range(len(ds)))  # training maps + Eq. 19 maps of the others
    assert res.labels.shape == (len(gt.gaussians),)
    gt_maps = np.stack([gt.instance_map(ds.names[v]) for v in train])
    assoc = association_scores(np.stack([res.view_maps[v] for v in train]), gt_maps)
    assert assoc.recall > 0.5  # clean masks associate (as gaga's do: depth is the first criterion)
    manifest = prepare(PrepareOptions(tiny, tmp_path / "work", method="proto-saga"))
    assert manifest["status"] == "complete" and manifest["method"] == "proto-saga"
    labels = np.load(tmp_path / "work" / "labels.npy")
    with np.load(tmp_path / "work" / "levels.npz") as z:
        assert z["labels"].shape == (1, len(labels)) and np.array_equal(z["labels"][0], labels)

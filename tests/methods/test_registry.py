"""The one registry: what the benchmark scores is what ``gs-core prepare`` writes. For every method
with a preparer, the benchmark's adapter and ``prepare`` give the same labels on the same views, with
masks as SAM-style ``.npz`` stacks and as instance-id PNGs, and with a view that has no masks."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from gs_core.dataset import Dataset
from gs_core.labelmaps import masks_to_labels
from gs_core.methods.base import MethodInput
from gs_core.methods.registry import REGISTRY
from gs_core.pipeline.prepare import PREPARERS, PrepareOptions, prepare
from gs_core.synth import MaskNoise, SynthConfig, build_dataset
from gs_core.synth.groundtruth import write_label_png

slow = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("registry") / "npz"
    build_dataset(root, SynthConfig.sized("tiny"), MaskNoise.level(0.5))
    return root


def first_with_masks(ds) -> int:
    return next(i for i in range(len(ds)) if ds.masks(i) is not None)


def _as_png_masks(src, dst):
    """The same dataset with its masks as instance-id PNGs (object_mask/), one more view without any."""
    shutil.copytree(src, dst)
    ds = Dataset.load(dst)
    (dst / "object_mask").mkdir()
    for i, name in enumerate(ds.names):
        if i != first_with_masks(ds) and ds.masks(i) is not None:
            write_label_png(dst / "object_mask" / f"{name.rsplit('.', 1)[0]}.png", masks_to_labels(ds.masks(i)))
    shutil.rmtree(dst / "masks")
    return dst


def test_every_preparer_is_a_registered_method():
    assert set(PREPARERS) <= set(REGISTRY) and {"trace3d", "git-consistent"} <= set(PREPARERS)
    assert all(REGISTRY[name].preparer is PREPARERS[name] for name in PREPARERS)


@slow
@pytest.mark.parametrize("masks", ["npz", "png"])
@pytest.mark.parametrize("name", ["git-consistent", "trace3d"])
def test_benchmark_and_prepare_give_the_same_labels(name, masks, tiny_dataset, tmp_path):
    root = tiny_dataset if masks == "npz" else _as_png_masks(tiny_dataset, tmp_path / "png")
    ds = Dataset.load(root)
    with_masks = [i for i in range(len(ds)) if ds.mask_stack(i)[0] is not None]
    npz = Dataset.load(tiny_dataset)
    assert len(with_masks) == sum(npz.masks(i) is not None for i in range(len(npz))) - (masks == "png")
    train = sorted(set(with_masks) | {first_with_masks(Dataset.load(tiny_dataset))})  # png: one without masks
    scored = REGISTRY[name].segment(MethodInput(ds, train))
    prepare(PrepareOptions(root, tmp_path / "work", method=name), log=lambda *a: None)
    written = np.load(tmp_path / "work" / "labels.npy")
    assert len(np.unique(written[written >= 0])) > 3  # the test compares real segmentations
    assert np.array_equal(scored.labels, written)

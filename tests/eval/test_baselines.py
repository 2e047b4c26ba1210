"""The baseline methods and the method registry."""

import numpy as np

import gs_core.eval.baselines as baselines
from gs_core.eval import METHODS, MethodInput, naive_lifting, oracle
from gs_core.dataset import Dataset
from gs_core.labelmaps import masks_to_labels
from gs_core.synth import GroundTruth


def _input(root):
    ds, gt = Dataset.load(root), GroundTruth.load(root)
    return MethodInput(ds, [ds.names.index(n) for n in gt.train]), gt


def test_registry_has_the_baselines():
    assert METHODS["oracle"] is oracle and METHODS["naive"] is naive_lifting


def test_oracle_reads_the_ground_truth(clean_root):
    inp, gt = _input(clean_root)
    res = oracle(inp)
    assert np.array_equal(res.labels, gt.gaussians.object)
    assert sorted(res.view_maps) == inp.train
    assert np.array_equal(res.view_maps[inp.train[0]], gt.instance_map(gt.train[0]))


def test_naive_lifting_traces_each_view_once(clean_root, monkeypatch):
    inp, gt = _input(clean_root)
    calls = []
    real = baselines.project
    monkeypatch.setattr(baselines, "project", lambda g, cam: calls.append(cam.name) or real(g, cam))
    res = naive_lifting(inp)
    assert calls == gt.train  # one projection per training view
    n_masks = [len(inp.dataset.masks(v)) for v in inp.train]
    assert res.labels.shape == (len(gt.gaussians),)
    assert res.labels.min() >= -1 and res.labels.max() < sum(n_masks)
    # per-view ids: view k's map uses exactly the ids after the previous views' masks
    offset = 0
    for v, n in zip(inp.train, n_masks):
        expected = masks_to_labels(inp.dataset.masks(v))
        assert np.array_equal(res.view_maps[v], np.where(expected >= 0, expected + offset, -1))
        offset += n


def test_naive_labels_are_pure_on_clean_masks(clean_root):
    """With clean masks, each naive label holds (almost only) one object's Gaussians: lifting works,
    only consistency is missing."""
    inp, gt = _input(clean_root)
    labels = naive_lifting(inp).labels
    clean = gt.gaussians.clean & (labels >= 0)
    obj, lab = gt.gaussians.object[clean], labels[clean]
    pure = sum(np.bincount(obj[lab == k]).max() for k in np.unique(lab))
    assert pure > 0.9 * len(lab)  # the rest: boundary Gaussians, blurred at 64x48
    assert len(np.unique(lab)) > len(np.unique(obj))  # fragments: no association across views


def test_gt_association_gives_each_patch_its_majority_object(noisy_root):
    """The association ceiling: every training view's map holds, on each patch, the ground-truth
    object covering most of that patch's pixels (none where background covers most)."""
    from gs_core.methods.trace3d import make_patches

    inp, gt = _input(noisy_root)
    res = baselines.gt_association(inp)
    assert res.labels.shape == (len(gt.gaussians),) and res.labels.max() < len(gt.hierarchy.objects)
    checked = 0
    for v in inp.train:
        patches = make_patches(inp.dataset.masks(v))
        truth, got = gt.instance_map(inp.dataset.names[v]), res.view_maps[v]
        assert (got[patches.patch_map < 0] == -1).all()  # uncovered pixels get nothing
        for j in range(patches.num_patches):
            inside = patches.patch_map == j
            value = np.unique(got[inside])
            assert len(value) == 1  # one id per patch
            ids, counts = np.unique(truth[inside], return_counts=True)
            objects = counts[ids >= 0]
            if value[0] >= 0:
                assert counts[ids == value[0]].item() == objects.max() >= counts[ids < 0].sum()
            else:
                assert counts[ids < 0].sum() > (objects.max() if len(objects) else 0)
            checked += 1
    assert checked > 20


def test_gt_association_recovers_the_objects_from_clean_masks(clean_root):
    inp, gt = _input(clean_root)
    labels = baselines.gt_association(inp).labels
    clean = gt.gaussians.clean & (labels >= 0)
    assert (labels[clean] == gt.gaussians.object[clean]).mean() > 0.95

"""The baselines the evaluation scores beside the methods: those that need the synthetic world's
ground truth (oracle, the association ceiling) and the one that needs no method at all (naive
lifting). Contract: :mod:`gs_core.methods.base`."""

from __future__ import annotations

import numpy as np
import torch

from ..engine import project, trace
from ..labelmaps import masks_to_labels
from ..methods.base import MethodInput, MethodResult
from ..synth.groundtruth import GroundTruth


def oracle(inp: MethodInput) -> MethodResult:
    """The ceiling: every Gaussian gets its ground-truth object (artefacts their owner's, floaters
    none), and the training views' consistent maps are the ground-truth object maps."""
    gt = GroundTruth.load(inp.dataset.root)
    maps = {v: gt.instance_map(inp.dataset.names[v]) for v in inp.train}
    return MethodResult(gt.gaussians.object.astype(np.int64), maps)


def gt_association(inp: MethodInput) -> MethodResult:
    """The association ceiling of the Trace3D core: the same patches and GIT as ``git-consistent``,
    but each patch gets the ground-truth object covering most of its pixels (a patch mostly on
    background gets none) instead of the merged id of Eq. 3. What is left between this and
    ``oracle`` comes from the masks themselves (jitter, missed objects, patches straddling two
    objects); what is left between ``git-consistent`` and this is association error."""
    from ..methods.base import training_masks
    from ..methods.trace3d import Trace3DConfig
    from ..methods.trace3d.git import trace_all
    from ..methods.trace3d import make_patches
    from ..methods.trace3d.consistency import gaussian_votes

    ds, config = inp.dataset, Trace3DConfig(density=None, backend=inp.backend)
    gt = GroundTruth.load(ds.root)
    scene = ds.load_scene()
    views, stacks = training_masks(ds, inp.train)
    patches = [make_patches(m, config.min_area, config.patch_rule) for m in stacks]
    store, _ = trace_all(scene, [ds.cameras[v] for v in views], patches, config)
    none = int(gt.gaussians.object.max()) + 1  # one id for patches mostly on background, dropped below
    ids, maps = [], {}
    for v, p in zip(views, patches):
        inside = p.patch_map >= 0
        truth = gt.instance_map(ds.names[v]).astype(np.int64)[inside]
        joint = np.bincount(p.patch_map[inside].astype(np.int64) * (none + 1) + np.where(truth >= 0, truth, none),
                            minlength=p.num_patches * (none + 1))
        local = joint.reshape(p.num_patches, none + 1).argmax(1)  # the majority object of each patch
        ids.append(local)
        view_map = np.where(inside, local[np.maximum(p.patch_map, 0)], -1)
        maps[v] = np.where(view_map == none, -1, view_map)
    labels, _ = gaussian_votes(store, np.concatenate(ids) if ids else np.zeros(0, np.int64))
    return MethodResult(np.where(labels == none, -1, labels), maps)


@torch.no_grad()
def naive_lifting(inp: MethodInput) -> MethodResult:
    """Masks traced straight onto Gaussians with per-view independent ids, no association.

    Each view's stack becomes one label per pixel (smallest covering mask; ids offset so no two
    views share one) and is traced (Gaussian Instance Tracing without the consistency step,
    Trace3D Sec. 3.2); each Gaussian keeps the label of largest traced weight over all views. An
    object therefore comes out as a patchwork of the views' masks.
    """
    ds = inp.dataset
    gaussians = ds.load_scene().to_gaussians()
    n = len(gaussians)
    best_w = torch.zeros(n)
    best = torch.full((n,), -1, dtype=torch.long)
    maps, offset = {}, 0
    for v in inp.train:
        masks, _ = ds.mask_stack(v)
        if masks is None or len(masks) == 0:
            continue
        local = masks_to_labels(masks)
        labels = np.where(local >= 0, local + offset, -1)
        offset += len(masks)
        out = trace(project(gaussians, ds.cameras[v]), torch.from_numpy(labels), top_k=1, backend=inp.backend)
        w, lab = out.weights[:, 0], out.labels[:, 0].long()
        better = (w > best_w) & (lab >= 0)
        best = torch.where(better, lab, best)
        best_w = torch.where(better, w, best_w)
        maps[v] = labels
    return MethodResult(best.numpy(), maps)


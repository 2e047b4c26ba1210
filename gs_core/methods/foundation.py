"""Benchmark entries for the foundation-model paths, run with the synthetic world's stand-ins
(:mod:`gs_core.synth.standins`) since no SAM or CLIP weights exist here (issue 12 item 7):

* ``self-prompt`` — for every object, a click on its interior in the training view where it is
  largest, then :func:`gs_core.selfprompt.self_prompt` with the stand-in point predictor (the ground
  truth plus the dataset's mask noise); each Gaussian takes the object whose self-prompted
  selection scored it highest.
* ``text`` — the stand-in embedder's per-mask vectors on the dataset's (noisy) masks, lifted in
  closed form (:func:`gs_core.language.lift_embeddings`), one text query per object by name
  (:func:`gs_core.language.text_query`, automatic threshold); each Gaussian takes the object whose
  query selected it with the highest relevancy. ``info`` has the per-object query IoU against the
  ground-truth Gaussians.

Both read the ground truth through the dataset folder, as the oracle does; the label maps the
benchmark scores are rendered from the returned labels.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .base import MethodInput, MethodResult

MIN_PIXELS = 16


def _objects(inp: MethodInput, gt) -> dict[int, tuple[int, np.ndarray]]:
    """object -> (training view where it is largest, its GT mask there), for visible things."""
    best: dict[int, tuple[int, int]] = {}
    for v in inp.train:
        m = gt.instance_map(inp.dataset.names[v])
        area = np.bincount(m[m >= 0], minlength=len(gt.hierarchy.objects))
        for o in gt.hierarchy.things:
            if area[o] >= MIN_PIXELS and area[o] > best.get(o, (None, 0))[1]:
                best[o] = (v, int(area[o]))
    return {o: (v, gt.instance_map(inp.dataset.names[v]) == o) for o, (v, _) in best.items()}


def _noise(gt):
    from ..synth.masks import MaskNoise

    return MaskNoise(**gt.info.get("noise", {}))


def self_prompt(inp: MethodInput) -> MethodResult:
    import time

    from ..selfprompt import SelfPromptConfig, self_prompt as run
    from ..synth import GroundTruth
    from ..synth.standins import GTPointPredictor

    ds = inp.dataset
    gt = GroundTruth.load(ds.root)
    gaussians = ds.load_scene().to_gaussians()
    cams = [ds.cameras[v] for v in inp.train]
    local = {v: k for k, v in enumerate(inp.train)}
    predictor = GTPointPredictor(gt, [ds.names[v] for v in inp.train], _noise(gt))
    config = SelfPromptConfig(backend=inp.backend)
    n = len(gaussians)
    best, best_score = np.full(n, -1, np.int64), np.zeros(n)
    views_used = []
    t0 = time.perf_counter()
    for o, (v, mask) in sorted(_objects(inp, gt).items()):
        depth = ndimage.distance_transform_edt(mask)
        y, x = np.unravel_index(int(np.argmax(depth)), mask.shape)
        res = run(gaussians, cams, predictor.predict_view, local[v], np.array([[x, y]]), None, config)
        better = res.selected & (res.score > best_score)
        best[better], best_score[better] = o, res.score[better]
        views_used.append(len(res.views))
    return MethodResult(best, stages={"self_prompt": time.perf_counter() - t0},
                        info={"objects": len(views_used), "mean_views": float(np.mean(views_used)) if views_used else 0.0,
                              "predictor_calls": predictor.calls})


def text(inp: MethodInput) -> MethodResult:
    import time

    from ..language import lift_embeddings, text_query
    from ..synth import GroundTruth
    from ..synth.standins import GTEmbedder

    ds = inp.dataset
    gt = GroundTruth.load(ds.root)
    scene = ds.load_scene()
    cams = [ds.cameras[v] for v in inp.train]
    stacks = []
    for v in inp.train:
        m = ds.masks(v)
        stacks.append(m if m is not None else np.zeros((0, cams[0].height, cams[0].width), bool))
    embedder = GTEmbedder(gt, [ds.names[v] for v in inp.train])
    t0 = time.perf_counter()
    lifted = lift_embeddings(scene, cams, stacks, embedder.embed_view, backend=inp.backend, name=embedder.name)
    t_lift = time.perf_counter() - t0
    n = len(scene)
    best, best_score = np.full(n, -1, np.int64), np.zeros(n)
    ious, methods = {}, {}
    clean = gt.gaussians.clean
    for o in sorted(_objects(inp, gt)):
        name = gt.hierarchy.objects[o].name
        q = text_query(lifted, name, embedder=embedder)
        truth = clean & (gt.gaussians.object == o)
        ious[name] = float((q.selected & truth).sum() / max(int((q.selected | truth).sum()), 1))
        methods[q.method] = methods.get(q.method, 0) + 1
        better = q.selected & (q.score > best_score)
        best[better], best_score[better] = o, q.score[better]
    return MethodResult(best, stages={"lift": t_lift, "queries": time.perf_counter() - t0 - t_lift},
                        info={"query_iou": ious, "mean_query_iou": float(np.mean(list(ious.values()))) if ious else 0.0,
                              "thresholds": methods})

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
* ``text-instances`` — the same queries on one embedding per consistent instance
  (:func:`gs_core.language.instance_embeddings` on ``git-consistent``'s instances and view maps),
  as ``prepare --clip-model`` writes and ``query --text`` scores by default.

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


def _stand_in_views(inp: MethodInput):
    """The benchmark's training views with masks, their cameras and stacks, and the stand-in embedder."""
    from ..synth import GroundTruth
    from ..synth.standins import GTEmbedder

    ds = inp.dataset
    gt = GroundTruth.load(ds.root)
    cams = [ds.cameras[v] for v in inp.train]
    stacks = []
    for v in inp.train:
        m = ds.masks(v)
        stacks.append(m if m is not None else np.zeros((0, cams[0].height, cams[0].width), bool))
    return gt, cams, stacks, GTEmbedder(gt, [ds.names[v] for v in inp.train])


def _queries(inp: MethodInput, gt, source, embedder, n: int) -> tuple[np.ndarray, dict]:
    """One text query per object by name on ``source`` (a LanguageField or InstanceField): each
    Gaussian takes the object whose query selected it with the highest relevancy; per-object IoU."""
    from ..language import text_query

    best, best_score = np.full(n, -1, np.int64), np.zeros(n)
    ious, methods = {}, {}
    clean = gt.gaussians.clean
    for o in sorted(_objects(inp, gt)):
        name = gt.hierarchy.objects[o].name
        q = text_query(source, name, embedder=embedder)
        truth = clean & (gt.gaussians.object == o)
        ious[name] = float((q.selected & truth).sum() / max(int((q.selected | truth).sum()), 1))
        methods[q.method] = methods.get(q.method, 0) + 1
        better = q.selected & (q.score > best_score)
        best[better], best_score[better] = o, q.score[better]
    return best, {"query_iou": ious, "mean_query_iou": float(np.mean(list(ious.values()))) if ious else 0.0,
                  "thresholds": methods}


def text(inp: MethodInput) -> MethodResult:
    """``text``: the painted per-pixel maps lifted onto the Gaussians, one query per object."""
    import time

    from ..language import lift_embeddings

    gt, cams, stacks, embedder = _stand_in_views(inp)
    scene = inp.dataset.load_scene()
    t0 = time.perf_counter()
    lifted = lift_embeddings(scene, cams, stacks, embedder.embed_view, backend=inp.backend, name=embedder.name)
    t_lift = time.perf_counter() - t0
    best, info = _queries(inp, gt, lifted, embedder, len(scene))
    return MethodResult(best, stages={"lift": t_lift, "queries": time.perf_counter() - t0 - t_lift}, info=info)


def text_instances(inp: MethodInput) -> MethodResult:
    """``text-instances``: consistent instances (``git-consistent``, as ``prepare`` makes them), one
    embedding per instance from the masks associated with it across views
    (:func:`gs_core.language.instance_embeddings`; Gaussians of no instance score their lifted
    features), one query per object."""
    import time
    from dataclasses import replace

    from ..language import InstanceField, instance_embeddings, lift_embeddings
    from .trace3d.method import Trace3DConfig, run

    gt, cams, stacks, embedder = _stand_in_views(inp)
    scene = inp.dataset.load_scene()
    t0 = time.perf_counter()
    result = run(scene, cams, stacks, replace(Trace3DConfig(density=None), backend=inp.backend))
    t_seg = time.perf_counter() - t0
    maps = result.view_maps()
    embs = [embedder.embed_view(k, m) for k, m in enumerate(stacks)]
    num = int(max([result.labels.max(initial=-1), *(m.max(initial=-1) for m in maps)])) + 1
    feats, weight = instance_embeddings(maps, stacks, embs, num)
    lifted = lift_embeddings(scene, cams, stacks, embedder.embed_view, backend=inp.backend,
                             name=embedder.name)
    field_ = InstanceField(feats, weight, result.labels, {"embedder": embedder.name}, lifted)
    t_emb = time.perf_counter() - t0 - t_seg
    best, info = _queries(inp, gt, field_, embedder, len(scene))
    return MethodResult(best, stages={**result.stages, "instance_embeddings": t_emb,
                                      "queries": time.perf_counter() - t0 - t_seg - t_emb}, info=info)

"""The evaluation protocol on the synthetic world: the queried objects, the selection rule and the
scores of a method's labels against the ground truth, computed once per dataset.

Queried objects (per-object metrics): every non-structure object visible in a test view and in a
training view (at least :data:`MIN_QUERY_PIXELS` each). The query is the object's ground-truth mask
in the training view where it is largest, as Trace3D queries an image and a mask (Sec. 4.1). The
same rule turns any method's labels into a selection: the mask is traced onto the Gaussians and a
label is selected when more than half of its traced weight in that view falls inside the mask
(the label of largest weight inside if none does).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..dataset import Dataset
from ..engine import Gaussians, Projection, project, render, trace
from ..labelmaps import render_labels
from ..methods.base import MethodResult
from ..metrics import association_scores, novel_view_segmentation, object_extraction, panoptic_scores
from ..query import from_mask_weights, selection_mask
from ..synth import GroundTruth

MIN_QUERY_PIXELS = 16

# (key, column title, scale) of the printed table; fractions print as percentages
COLUMNS = [("nv_miou", "NV mIoU", 100), ("nv_macc", "NV mAcc", 100), ("ext_miou", "Ext mIoU", 100),
           ("ext_psnr", "Ext PSNR", 1), ("pan_miou", "Pan mIoU", 100), ("pan_pv_miou", "PV mIoU", 100),
           ("pan_p", "Pan P", 100), ("pan_r", "Pan R", 100), ("assoc_miou", "As mIoU", 100), ("assoc_p", "As P", 100),
           ("assoc_r", "As R", 100), ("test_psnr", "PSNR", 1), ("seconds", "time s", 1)]


@dataclass
class Query:
    """One queried object: its reference view and the traced weights of its mask there."""

    object: int
    name: str
    ref_view: int  # dataset index of the training view holding the query mask
    inside: np.ndarray  # [N] traced weight from pixels of the object's mask
    total: np.ndarray  # [N] traced weight from all labelled pixels of that view


def select(labels: np.ndarray, query: Query) -> np.ndarray:  # labels [N] -> [N] bool
    """The Gaussians whose label is selected by ``query`` (:func:`gs_core.query.from_mask_weights`)."""
    return from_mask_weights(labels, query.inside, query.total).selected


@torch.no_grad()
def truth_mask(proj: Projection, clean: np.ndarray, objects: np.ndarray, o: int, backend: str = "auto") -> np.ndarray:
    """[H, W] bool: the pixels where object ``o``'s clean Gaussians carry at least half the blend of the
    clean scene: :func:`gs_core.query.selection_mask`'s rule applied to the world as the ground-truth maps
    render it (artefacts at opacity 0). These are the ground-truth map's pixels of ``o`` where it holds a
    majority, not only the most weight: the only pixels a selection can show (a selection is shown where it
    holds at least half the blend), so the IoU reference of a selection's mask (``gs-core demo``'s click,
    ``gs-core bench clicks``).

    Args:
        proj: projection of the dataset's scene (rows as the ground truth's Gaussians).
        clean: [N] bool, the clean Gaussians (:attr:`gs_core.synth.GaussianLabels.clean`).
        objects: [N] int object id per Gaussian.
    """
    keep = torch.from_numpy(np.asarray(clean, np.float32)).to(proj.opacities)
    return selection_mask(proj.with_opacities(proj.opacities * keep), np.asarray(objects) == o, backend=backend)


@dataclass
class SceneContext:
    """What scoring needs of one scene (the dataset's, or a method's refined one)."""

    gaussians: Gaussians
    colors: torch.Tensor  # [N, 3]
    test_proj: list[Projection]
    queries: list[Query]
    test_psnr: float  # base colours at the test views against the test photos


@dataclass
class Score:
    metrics: dict[str, float]
    train_map: np.ndarray  # [H, W] the method's labels at the first training view
    test_map: np.ndarray  # [H, W] at the first test view


@dataclass
class Evaluation:
    """Everything about one dataset that does not depend on the method, computed once."""

    dataset: Dataset
    gt: GroundTruth
    backend: str
    gaussians: Gaussians  # of scene.ply
    colors: torch.Tensor  # [N, 3]
    train: list[int]
    test: list[int]
    gt_train: np.ndarray  # [Vtr, H, W] GT object ids
    gt_test: np.ndarray  # [Vte, H, W]
    test_proj: list[Projection]
    queries: list[Query]
    gt_objects: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # id -> (rgb, alpha)
    base: SceneContext | None = None

    @classmethod
    @torch.no_grad()
    def prepare(cls, dataset: Dataset, gt: GroundTruth, backend: str = "auto") -> "Evaluation":
        index = {name: k for k, name in enumerate(dataset.names)}
        train, test = [index[n] for n in gt.train], [index[n] for n in gt.test]
        if not test:
            raise ValueError(f"{dataset.root}: no held-out views to score on")
        scene = dataset.load_scene()
        gaussians = scene.to_gaussians()
        colors = torch.as_tensor(scene.base_colors, dtype=torch.float32)
        gt_train = np.stack([gt.instance_map(dataset.names[v]) for v in train])
        gt_test = np.stack([gt.instance_map(dataset.names[v]) for v in test])
        ev = cls(dataset, gt, backend, gaussians, colors, train, test, gt_train, gt_test,
                 [project(gaussians, dataset.cameras[v]) for v in test], [])
        ev.queries = ev._queries(gaussians)
        ev.base = SceneContext(gaussians, colors, ev.test_proj, ev.queries, ev._test_psnr(gaussians, colors, ev.test_proj))
        clean = gt.gaussians.clean
        for q in ev.queries:
            ev.gt_objects[q.object] = ev.render_alone(clean & (gt.gaussians.object == q.object))
        return ev

    def context(self, scene) -> SceneContext:
        """Scoring context of a method's refined scene: its projections and query weights."""
        gaussians = scene.to_gaussians()
        colors = torch.as_tensor(scene.base_colors, dtype=torch.float32)
        proj = [project(gaussians, self.dataset.cameras[v]) for v in self.test]
        return SceneContext(gaussians, colors, proj, self._queries(gaussians), self._test_psnr(gaussians, colors, proj))

    def _test_psnr(self, gaussians: Gaussians, colors: torch.Tensor, projections: list[Projection]) -> float:
        from ..methods.trace3d.density import render_psnr

        return render_psnr(projections, colors, [self.dataset.image(v) for v in self.test], self.backend)

    def _queries(self, gaussians: Gaussians) -> list[Query]:
        things = self.gt.hierarchy.things
        area_train = np.stack([np.bincount(m[m >= 0], minlength=len(self.gt.hierarchy.objects)) for m in self.gt_train])
        area_test = np.stack([np.bincount(m[m >= 0], minlength=len(self.gt.hierarchy.objects)) for m in self.gt_test])
        wanted = [o for o in things if area_test[:, o].max() >= MIN_QUERY_PIXELS
                  and area_train[:, o].max() >= MIN_QUERY_PIXELS]
        ref = {o: int(np.argmax(area_train[:, o])) for o in wanted}
        queries = []
        for k in sorted(set(ref.values())):
            v = self.train[k]
            out = trace(project(gaussians, self.dataset.cameras[v]), torch.from_numpy(self.gt_train[k]),
                        top_k=4, backend=self.backend)
            labels, weights, total = out.labels.numpy(), out.weights.numpy(), out.weight_sum.numpy()
            for o in (o for o in wanted if ref[o] == k):
                inside = np.where(labels == o, weights, 0).sum(1)
                queries.append(Query(o, self.gt.hierarchy.objects[o].name, v, inside, total))
        return sorted(queries, key=lambda q: q.object)

    def render_alone(self, keep: np.ndarray, ctx: SceneContext | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Gaussians ``keep`` [N] bool rendered by themselves at the test views:
        (premultiplied rgb [V, H, W, 3], alpha [V, H, W]). The others get opacity 0, which blends
        exactly like projecting the subset alone, without projecting again."""
        ctx = ctx or self.base or SceneContext(self.gaussians, self.colors, self.test_proj, [], float("nan"))
        H, W = self.gt_test.shape[1:]
        rgb = np.zeros((len(self.test), H, W, 3), np.float32)
        alpha = np.zeros((len(self.test), H, W), np.float32)
        if keep.any():
            mask = torch.from_numpy(keep).float()
            for k, proj in enumerate(ctx.test_proj):
                out = render(proj.with_opacities(proj.opacities * mask), ctx.colors, backend=self.backend)
                rgb[k], alpha[k] = out.features.numpy(), out.alpha.numpy()
        return rgb, alpha

    @torch.no_grad()
    def score(self, result: MethodResult) -> Score:
        labels = np.asarray(result.labels, dtype=np.int64)
        ctx = self.base if result.scene is None else self.context(result.scene)
        if labels.shape != (len(ctx.gaussians),):
            raise ValueError(f"method returned {labels.shape} labels for {len(ctx.gaussians)} Gaussians")

        def view_map(v: int, proj: Projection | None = None) -> np.ndarray:
            if v in result.view_maps:
                return np.asarray(result.view_maps[v])
            proj = proj if proj is not None else project(ctx.gaussians, self.dataset.cameras[v])
            return render_labels(proj, labels, backend=self.backend)

        test_maps = np.stack([view_map(v, p) for v, p in zip(self.test, ctx.test_proj)])
        train_maps = np.stack([view_map(v) for v in self.train])
        pan = panoptic_scores(test_maps, self.gt_test)
        per_view = panoptic_scores(test_maps, self.gt_test, per_view=True)  # IQGS Tab. 1's protocol
        assoc = association_scores(train_maps, self.gt_train)
        nv, ext = [], []
        for q in ctx.queries:
            chosen = select(labels, q)
            picked = np.unique(labels[chosen])
            nv.append(novel_view_segmentation(np.isin(test_maps, picked) & (test_maps >= 0), self.gt_test == q.object))
            ext.append(object_extraction(*self.render_alone(chosen, ctx), *self.gt_objects[q.object]))

        def mean(values):
            values = [x for x in values if np.isfinite(x)]
            return float(np.mean(values)) if values else float("nan")

        metrics = {"nv_miou": mean(s.miou for s in nv), "nv_macc": mean(s.macc for s in nv),
                   "ext_miou": mean(s.miou for s in ext), "ext_psnr": mean(s.psnr for s in ext),
                   "pan_miou": pan.miou, "pan_pv_miou": per_view.miou_pred, "pan_p": pan.precision,
                   "pan_r": pan.recall,
                   "assoc_miou": assoc.miou, "assoc_p": assoc.precision, "assoc_r": assoc.recall,
                   "test_psnr": ctx.test_psnr, "gaussians": len(ctx.gaussians), "queries": len(ctx.queries)}
        return Score(metrics, train_maps[0], test_maps[0])

"""Lifting methods for the benchmark, compositions of :mod:`gs_core.lifting`:

* ``closed-form``: the Trace3D core's consistent instance maps lifted in closed form (linear-inverse
  paper, Eq. 23-24: weights ``w^2``, opacity polarisation 1.2), argmax per Gaussian;
* ``contrastive``: contrastive features (Trace3D Eq. 5) trained on the consistent maps, clustered;
* ``contrastive-raw``: the same on raw per-view masks (no association), the ablation's baseline.

Callers with their own ``(Projection, label_map)`` views call :func:`contrastive_instances`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..engine import Projection, project
from ..labelmaps import masks_to_labels
from ..lifting.aggregation import AggregationConfig, aggregate, cluster_features
from ..lifting.closed_form import LabelLiftConfig, lift_labels
from ..lifting.contrastive import ContrastiveConfig, train_contrastive

if TYPE_CHECKING:  # the registry imports this module: import it lazily
    from .base import MethodInput, MethodResult


@dataclass
class ContrastiveInstancesConfig:
    train: ContrastiveConfig = field(default_factory=lambda: ContrastiveConfig(steps=1000))
    # HDBSCAN eom with min cluster size 100, chosen by measurement (docs/benchmarks.md, "Choices made by
    # measurement"); dropping contradicted clusters is off here (the masks are raw and noisy)
    aggregation: AggregationConfig = field(default_factory=lambda: AggregationConfig(min_cluster_size=100))
    drop_contradicted: bool = False  # appendix-B cluster filter against the input masks
    assign_noise: bool = True  # trained Gaussians HDBSCAN left as noise join their nearest cluster


def raw_views(inp: MethodInput) -> tuple[list[int], list[tuple[Projection, np.ndarray]]]:
    """The training views' mask stacks as label maps with per-view offset ids (no two views share
    one), like the naive baseline; views without masks are skipped."""
    ds = inp.dataset
    gaussians = ds.load_scene().to_gaussians()
    used, views, offset = [], [], 0
    for v in inp.train:
        masks, _ = ds.mask_stack(v)
        if masks is None or len(masks) == 0:
            continue
        local = masks_to_labels(masks)
        views.append((project(gaussians, ds.cameras[v]), np.where(local >= 0, local + offset, -1)))
        used.append(v)
        offset += len(masks)
    return used, views


def contrastive_instances(views: Iterable[tuple[Projection, np.ndarray]],
                          config: ContrastiveInstancesConfig = ContrastiveInstancesConfig()) -> dict:
    """Contrastive features (Trace3D Eq. 5) -> PCA + HDBSCAN clusters of the trained Gaussians ->
    clusters the masks contradict dropped (linear-inverse paper Eq. 20-22) -> instance labels [N].

    Returns ``labels`` [N] int64 (-1 = none), ``features`` [N, d], ``result`` (the training's
    :class:`~gs_core.lifting.contrastive.ContrastiveResult`), ``aggregation`` and ``stages`` (seconds).

    Args:
        views: [V] of (projection, label map [H, W] int, -1 = none).
    """
    views = list(views)
    stages = {}
    trained = train_contrastive(views, config.train)
    stages["contrastive"] = trained.seconds
    t = time.perf_counter()
    clusters = cluster_features(trained.features, config.aggregation, mask=trained.trained)
    stages["cluster"] = time.perf_counter() - t
    t = time.perf_counter()
    agg = aggregate(views, trained.features, config.aggregation, clusters=clusters)
    labels = agg.labels if config.drop_contradicted else agg.clusters
    if config.assign_noise:
        labels = _assign_to_nearest(trained.features, labels, trained.trained)
    stages["aggregate"] = time.perf_counter() - t
    return dict(labels=labels.numpy().astype(np.int64), features=trained.features, result=trained,
                aggregation=agg, stages=stages)


def _assign_to_nearest(features: torch.Tensor, labels: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """Unlabelled ``candidates`` [N] bool take the label of their nearest labelled Gaussian in feature space."""
    from sklearn.neighbors import NearestNeighbors

    labelled = (labels >= 0).numpy()
    todo = (candidates & (labels < 0)).numpy()
    if not labelled.any() or not todo.any():
        return labels
    x = features.numpy()
    nn = NearestNeighbors(n_neighbors=1).fit(x[labelled])
    out = labels.clone()
    out[torch.from_numpy(todo)] = labels[torch.from_numpy(labelled)][
        torch.from_numpy(nn.kneighbors(x[todo], return_distance=False)[:, 0])]
    return out


def contrastive_raw(inp: MethodInput, config: ContrastiveInstancesConfig = ContrastiveInstancesConfig()) -> MethodResult:
    """Benchmark entry ``contrastive-raw``: contrastive lifting on raw per-view masks (no association;
    pairs are formed within a view, so per-view ids are enough), then Gaussians clustered into instances."""
    from .base import MethodResult

    t = time.perf_counter()
    used, views = raw_views(inp)
    if not views:
        n = len(inp.dataset.load_scene().to_gaussians())
        return MethodResult(np.full(n, -1, dtype=np.int64))
    prep = time.perf_counter() - t
    out = contrastive_instances(views, config)
    agg = out["aggregation"]
    info = dict(steps=len(out["result"].loss), final_loss=float(np.mean(out["result"].loss[-50:])),
                clusters=int(len(agg.kept)), clusters_kept=int(agg.kept.sum()),
                noise_share=float((agg.clusters < 0).float().mean()))
    return MethodResult(out["labels"], stages={"views": prep, **out["stages"]}, info=info)


def consistent_views(inp: MethodInput) -> tuple[dict[int, np.ndarray], list[tuple[Projection, np.ndarray]], dict]:
    """The Trace3D core's consistent instance maps of the training views (no density control), as
    ``(Projection, global id map)`` pairs on the dataset's scene; also the maps by view and the stage times."""
    from .base import training_masks
    from .trace3d import Trace3DConfig, run

    ds = inp.dataset
    scene = ds.load_scene()
    views, stacks = training_masks(ds, inp.train)
    cams = [ds.cameras[v] for v in views]
    result = run(scene, cams, stacks, Trace3DConfig(density=None, backend=inp.backend))
    maps = dict(zip(views, result.view_maps()))
    gaussians = scene.to_gaussians()
    return maps, [(project(gaussians, cam), maps[v]) for v, cam in zip(views, cams)], dict(result.stages)


@torch.no_grad()
def closed_form(inp: MethodInput, config: LabelLiftConfig = LabelLiftConfig(power=2, opacity_lambda=1.2)) -> MethodResult:
    """Benchmark entry ``closed-form``: consistent maps lifted by ``argmax_l sum w^k [label = l]``."""
    from .base import MethodResult

    maps, views, stages = consistent_views(inp)
    t = time.perf_counter()
    lifted = lift_labels(views, replace(config, backend=inp.backend))
    stages["lift"] = time.perf_counter() - t
    return MethodResult(lifted.labels.numpy().astype(np.int64), maps, stages=stages,
                        info=dict(mean_confidence=float(lifted.confidence[lifted.labels >= 0].mean())))


def contrastive_consistent(inp: MethodInput,
                           config: ContrastiveInstancesConfig = ContrastiveInstancesConfig()) -> MethodResult:
    """Benchmark entry ``contrastive``: contrastive features on the consistent maps, then clusters."""
    from .base import MethodResult

    maps, views, stages = consistent_views(inp)
    out = contrastive_instances(views, config)
    info = dict(steps=len(out["result"].loss), final_loss=float(np.mean(out["result"].loss[-50:])),
                clusters=int(len(out["aggregation"].kept)))
    return MethodResult(out["labels"], maps, stages={**stages, **out["stages"]}, info=info)

"""IQGS as a method: mask targets -> instance queries trained on the frozen scene -> labels.

* ``iqgs`` — ID matching (Eq. 8) against the global instance ids of the Trace3D core's consistent
  maps (patches, GIT, consistency; no density control), which stand in for the paper's DEVA;
* ``iqgs-h`` — Hungarian matching (Eq. 9-10) against each view's own masks (the stack flattened to
  one region per pixel, smallest mask on top, masks below Trace3D's minimum area dropped); no
  association at all.

:func:`run` is what the benchmark and the command-line pipeline call; the model and its training
live in :mod:`gs_core.methods.iqgs`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np
import torch

from ...camera import Camera
from ...engine import project
from . import (IQGSHead, IQGSModel, ModelConfig, TrainConfig, TrainResult, TrainView, decode, knn_neighbours,
                    query_ids_by_area, train_iqgs)
from ...labelmaps import masks_to_labels
from ...scene import GaussianScene
from ..trace3d import ConsistencyConfig, scaled_min_area
from ..base import training_masks

if TYPE_CHECKING:  # the registry imports this module: import it lazily
    from ..base import MethodInput, MethodResult


@dataclass
class IQGSConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    consistency: ConsistencyConfig = field(default_factory=ConsistencyConfig)  # global ids for ID matching
    min_area: int | None = None  # masks below this are dropped (default: Trace3D's, scaled to the image)
    backend: str = "auto"


@dataclass
class IQGSResult:
    model: IQGSModel
    labels: np.ndarray  # [N] int64 query index per Gaussian, -1 = none
    scores: np.ndarray  # [N] float32 mask probability of that query
    view_maps: list[np.ndarray]  # per training view [H, W] int64 query index, -1 = none (Eq. 7)
    targets: list[np.ndarray]  # per training view [H, W] the mask ids the queries were matched to
    training: TrainResult
    stages: dict[str, float]
    info: dict
    active: np.ndarray | None = None  # [Nq] bool the queries the labels use (training's, less min_overlap's)


def target_maps(scene: GaussianScene, cameras: Sequence[Camera], stacks: Sequence[np.ndarray], config: IQGSConfig,
                progress: Callable[[str, int, int], None] | None = None,
                cache=None, executor=None) -> tuple[list[np.ndarray], dict, dict]:
    """The per-view mask ids the queries learn: global ids of the consistent maps for ID matching,
    each view's own regions for Hungarian matching. Returns (maps, stages, info).

    Args:
        stacks: [V] of [M, H, W] bool, one mask stack per camera.
    """
    if config.train.matching == "id":
        from .. import trace3d

        t3 = trace3d.Trace3DConfig(min_area=config.min_area, consistency=config.consistency, density=None,
                                   backend=config.backend)
        result = trace3d.run(scene, list(cameras), stacks, t3, progress=progress, cache=cache, executor=executor)
        return result.view_maps(), {f"trace3d_{k}": v for k, v in result.stages.items()}, \
            {"instances": result.instances.num_instances}
    t = time.perf_counter()
    maps = []
    for cam, stack in zip(cameras, stacks):
        stack = np.asarray(stack, bool)
        floor = config.min_area if config.min_area is not None else scaled_min_area(cam.height, cam.width)
        stack = stack[stack.reshape(len(stack), -1).sum(1) >= floor] if len(stack) else stack
        maps.append(masks_to_labels(stack) if len(stack) else np.full((cam.height, cam.width), -1, np.int64))
    return maps, {"regions": time.perf_counter() - t}, {"regions_per_view": float(np.mean([m.max() + 1 for m in maps]))}


def run(scene: GaussianScene, cameras: Sequence[Camera], stacks: Sequence[np.ndarray],
        config: IQGSConfig = IQGSConfig(), progress: Callable[[str, int, int], None] | None = None,
        head: IQGSHead | None = None, cache=None, executor=None) -> IQGSResult:
    """IQGS on ``scene`` seen by ``cameras`` with one mask stack [M, H, W] per camera.

    ``head`` starts from (and, with ``config.train.train_head`` False, keeps) a head trained
    elsewhere (cross-scene transfer, Tab. 2). ``progress(stage, done, total)`` reports each stage;
    ``cache`` keeps the Trace3D core's per-view GIT (:class:`~gs_core.methods.trace3d.ViewCache`);
    ``executor`` runs its per-view steps (:mod:`gs_core.parallel`); the training runs here.

    Args:
        stacks: [V] of [M, H, W] bool, one mask stack per camera.
    """
    say = progress or (lambda stage, done, total: None)
    if len(stacks) != len(cameras):
        raise ValueError(f"{len(stacks)} mask stacks for {len(cameras)} cameras")
    train_cfg = replace(config.train, backend=config.backend)
    maps, stages, info = target_maps(scene, cameras, stacks, config, say, cache, executor)
    t = time.perf_counter()
    gaussians = scene.to_gaussians()
    projections = [project(gaussians, cam) for cam in cameras]
    neighbours = torch.from_numpy(knn_neighbours(scene.means, train_cfg.knn))
    stages["project_knn"] = time.perf_counter() - t
    model = IQGSModel(len(scene), config.model, head=head)
    query_ids = query_ids_by_area(maps, model.config.num_queries) if train_cfg.matching == "id" else None
    training = train_iqgs(model, [TrainView(p, m) for p, m in zip(projections, maps)], neighbours, train_cfg,
                          query_ids, progress=lambda d, n: say("training queries", d, n))
    stages["train"] = training.seconds
    t = time.perf_counter()
    say("labelling", 0, 1)
    labels, scores, view_maps, used = decode(model, projections, training.active, training.trained,
                                             train_cfg.score_threshold, backend=config.backend,
                                             min_overlap=train_cfg.min_overlap)
    stages["labels"] = time.perf_counter() - t  # 3D labels (Eq. 6) and the views' 2D masks (Eq. 7)
    say("labelling", 1, 1)
    if query_ids is not None:
        ids = np.unique(np.concatenate([m[m >= 0] for m in maps])) if maps else np.zeros(0)
        info["ids_without_query"] = int(len(np.setdiff1d(ids, query_ids)))
    info.update(active_queries=int(training.active.sum()), queries_used=int(used.sum()),
                steps=len(training.losses["total"]),
                final_losses={k: float(np.mean(v[-50:])) for k, v in training.losses.items() if v},
                labelled_share=float((labels >= 0).mean()), instances_3d=int(len(np.unique(labels[labels >= 0]))))
    return IQGSResult(model, labels, scores, view_maps, maps, training, stages, info, used)


# ---- benchmark entries -------------------------------------------------------------------------

def bench_config(matching: str) -> IQGSConfig:
    return IQGSConfig(train=TrainConfig(matching=matching))


def _segment(inp: MethodInput, config: IQGSConfig) -> MethodResult:
    from ..base import MethodResult

    ds = inp.dataset
    scene = ds.load_scene()
    views, stacks = training_masks(ds, inp.train)
    result = run(scene, [ds.cameras[v] for v in views], stacks, replace(config, backend=inp.backend))
    return MethodResult(result.labels, dict(zip(views, result.view_maps)), stages=result.stages, info=result.info)


def segment(inp: MethodInput) -> MethodResult:
    """``iqgs``: ID matching against the Trace3D core's consistent maps."""
    return _segment(inp, bench_config("id"))


def segment_hungarian(inp: MethodInput) -> MethodResult:
    """``iqgs-h``: Hungarian matching against each view's own masks."""
    return _segment(inp, bench_config("hungarian"))


# ---- gs-core prepare --method iqgs | iqgs-h ------------------------------------------------------

def prepare_config(options) -> IQGSConfig:
    """The configuration ``gs-core prepare`` runs for ``options`` (a PrepareOptions)."""
    matching = "hungarian" if options.method == "iqgs-h" else "id"
    return IQGSConfig(train=TrainConfig(matching=matching), consistency=ConsistencyConfig(theta=options.theta),
                      backend=options.backend)


def prepare_iqgs(inp, progress):
    """``prepare``'s preparer (a PrepareInput -> PreparedResult): labels are query indices at a single
    level (0.5), confidence the mask probability, view maps the 2D masks of the input views (Eq. 7);
    the trained model is kept as WORK/iqgs_model.pt (written atomically) for masks in new views."""
    import io

    from ...io.atomic import atomic_write
    from ..base import PreparedResult

    config = prepare_config(inp.options)
    result = run(inp.scene, inp.cameras, inp.stacks, config, progress, cache=inp.cache, executor=inp.executor)
    buffer = io.BytesIO()
    torch.save({"config": result.model.config.__dict__, "state": result.model.state_dict(),
                "active": result.active}, buffer)
    from pathlib import Path

    with atomic_write(Path(inp.options.out) / "iqgs_model.pt", "wb") as fh:
        fh.write(buffer.getvalue())
    labels = result.labels
    return PreparedResult(inp.scene, labels, result.scores, np.array([0.5]), labels[None], result.view_maps,
                          int(len(np.unique(labels[labels >= 0]))), result.stages, result.info)

"""Proto-SaGa as a method: view-specific classifiers -> semantic-aware association -> prototypes.

:func:`run` is what the benchmark and ``gs-core prepare --method proto-saga`` both call
(:func:`prepare_proto_saga` is the thin preparer). The benchmark entries are the method and the
ablations of the paper's Tab. 3 (association by depth / probability / both) and Tab. 4 (inference
by a trained unified classifier / k-means of the prototypes / the prototype ensemble):

* ``proto-saga`` — both criteria, prototype ensemble (the paper's method);
* ``proto-saga-depth``, ``proto-saga-prob`` — association by one criterion, prototype ensemble;
* ``proto-saga-cls``, ``proto-saga-kmeans`` — both criteria, the other two inference schemes.

Geometry is frozen (the paper trains it jointly with the embeddings). Training is the slow stage and
does not depend on the association or the inference, so the benchmark's entries of one dataset
share it (:func:`_trained`); their rows' times then exclude it, and ``stages["classifiers"]`` holds it.

Novel views: the paper labels them per pixel (Eq. 19 on the rendered features); the benchmark
entries do that for every view they did not train on (from the camera alone), and return their
associated masks for the training views.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from ...camera import Camera
from ...engine import Gaussians, Projection, project
from . import (AssociationConfig, ClassifierConfig, TrainedClassifiers, associate, classify,
                          kmeans_classes, label_view, prototypes, train_classifiers)
from ..gaga import regions_of

if TYPE_CHECKING:  # the registry imports this module: import it lazily
    from ..base import MethodInput, MethodResult

INFERENCE = ("prototypes", "kmeans", "classifier")


@dataclass(frozen=True)
class ProtoSagaConfig:
    classifiers: ClassifierConfig = field(default_factory=ClassifierConfig)
    association: AssociationConfig = field(default_factory=AssociationConfig)
    inference: str = "prototypes"  # Tab. 4: "prototypes" (Eq. 17-19) | "kmeans" | "classifier"
    classifier_steps: int = 500  # "classifier": steps of the unified classifier on the associated maps
    backend: str = "auto"

    def __post_init__(self):
        if self.inference not in INFERENCE:
            raise ValueError(f"inference must be one of {INFERENCE}, got {self.inference!r}")


@dataclass
class ProtoSagaResult:
    labels: np.ndarray  # [N] int64 instance id per Gaussian, -1 = never seen in training
    confidence: np.ndarray  # [N] softmax(tau cos) of the winning class, 0 where unlabelled
    features: Tensor  # [N, D] the embeddings
    view_maps: list[np.ndarray]  # [V] int64 [H, W] associated (consistent) map of each input view
    class_ids: Tensor  # [T] int64 the inference classes' ids
    class_vectors: Tensor  # [T, D] their prototypes (or k-means centres, or classifier rows)
    stages: dict[str, float]
    info: dict

    def label_view(self, proj: Projection, backend: str = "auto") -> np.ndarray:  # -> [H, W] int64
        """Eq. 19 in any view."""
        return label_view(proj, self.features, self.class_ids, self.class_vectors, backend=backend)


def view_regions(stacks: Sequence[np.ndarray], config: ProtoSagaConfig) -> list[np.ndarray]:
    """Each view's disjoint regions (Gaga's rule): the classes of its classifier and the units of association.

    Args:
        stacks: [V] of [M, H, W] bool, one mask stack per view.
    """
    return [regions_of(m, config.association.gaga.min_region_share) if len(m) else
            np.full(m.shape[1:], -1, dtype=np.int64) for m in stacks]


def train(projections: Sequence[Projection], regions: Sequence[np.ndarray], num_classes: Sequence[int],
          config: ProtoSagaConfig, progress: Callable[[str, int, int], None] | None = None,
          **checkpoints) -> TrainedClassifiers:
    """Sec. 3.1: embeddings and one classifier per view on the views' raw mask regions
    (``checkpoints``: :func:`~gs_core.methods.proto_saga.train_classifiers`' ``checkpoints``, ``on_checkpoint``).

    Args:
        regions: [V] of [H, W] int64 region index per pixel (:func:`view_regions`), -1 = none.
    """
    say = progress or (lambda stage, done, total: None)
    cfg = replace(config.classifiers, backend=config.backend)
    return train_classifiers(list(zip(projections, regions)), list(num_classes), cfg,
                             progress=lambda d, n: say("training", d, n), **checkpoints)


def run(gaussians: Gaussians, cameras: Sequence[Camera], stacks: Sequence[np.ndarray],  # stacks: [M, H, W] bool
        config: ProtoSagaConfig = ProtoSagaConfig(), progress: Callable[[str, int, int], None] | None = None,
        trained: TrainedClassifiers | None = None) -> ProtoSagaResult:
    """Proto-SaGa on ``gaussians`` seen by ``cameras`` with one mask stack per camera, visited in
    order (the first seeds the memory bank). ``trained`` reuses a finished Sec. 3.1 training of the
    same views. ``progress(stage, done, total)`` is called as work advances; Ctrl-C stops it.

    Args:
        stacks: [V] of [M, H, W] bool, one mask stack per camera.
    """
    say = progress or (lambda stage, done, total: None)
    if len(stacks) != len(cameras):
        raise ValueError(f"{len(stacks)} mask stacks for {len(cameras)} cameras")
    stages: dict[str, float] = {}
    t = time.perf_counter()
    projections = [project(gaussians, c) for c in cameras]
    regions = view_regions(stacks, config)
    num_classes = [len(m) for m in stacks]
    stages["project"] = time.perf_counter() - t
    if trained is None:
        trained = train(projections, regions, num_classes, config, say)
    stages["classifiers"] = trained.seconds
    features = trained.features

    t = time.perf_counter()
    weights = [trained.classifier(k) for k in range(len(projections))]
    assoc = config.association if config.association.tau is not None else replace(config.association,
                                                                                     tau=config.classifiers.tau)
    maps = []
    for k, m in enumerate(associate(zip(projections, regions, weights), features, assoc, len(gaussians))):
        maps.append(m)
        say("association", k + 1, len(projections))
    stages["association"] = time.perf_counter() - t

    t = time.perf_counter()
    info = {"instances": int(max((m.max() for m in maps), default=-1)) + 1,
            "train_loss_first": float(np.mean(trained.loss[:50])) if trained.loss else float("nan"),
            "train_loss_last": float(np.mean(trained.loss[-50:])) if trained.loss else float("nan")}
    if config.inference == "classifier":  # Tab. 4 "Cls": one classifier trained on the associated maps
        shared = train_classifiers(list(zip(projections, maps)), max(info["instances"], 1),
                                   replace(config.classifiers, steps=config.classifier_steps, backend=config.backend),
                                   init=features, progress=lambda d, n: say("unified classifier", d, n))
        features, trained_mask = shared.features, trained.trained | shared.trained
        ids, vectors = torch.arange(info["instances"]), shared.classifiers[0]
    else:
        protos = prototypes(zip(projections, maps), features, config.backend)
        say("prototypes", 1, 1)
        trained_mask = trained.trained
        ids, vectors = (protos.ids, protos.vectors) if config.inference == "prototypes" else kmeans_classes(protos)
        info["views_per_instance"] = float(protos.views.float().mean()) if len(protos.ids) else 0.0
    stages["inference_" + config.inference] = time.perf_counter() - t

    t = time.perf_counter()
    labels = np.full(len(gaussians), -1, dtype=np.int64)
    confidence = np.zeros(len(gaussians), dtype=np.float32)
    if len(ids):
        lab, conf = classify(features[trained_mask], ids, vectors, config.classifiers.tau)
        labels[trained_mask.numpy()] = lab.numpy()
        confidence[trained_mask.numpy()] = conf.numpy()
    stages["gaussian_labels"] = time.perf_counter() - t
    info["classes"] = int(len(ids))
    return ProtoSagaResult(labels, confidence, features, maps, ids, vectors, stages, info)


# ---- gs-core prepare --method proto-saga ----------------------------------------------------------

def prepare_config(options) -> ProtoSagaConfig:
    """The settings ``prepare`` runs with (its cache key): the defaults on the chosen backend."""
    return ProtoSagaConfig(backend=options.backend)


def prepare_proto_saga(inp, progress):
    """Preparer (:class:`gs_core.methods.base.PrepareInput` -> ``PreparedResult``): one level
    (objects, 0.5), the associated map of every view, labels and confidence from the prototypes."""
    from ..base import PreparedResult

    result = run(inp.scene.to_gaussians(inp.options.device), inp.cameras, inp.stacks, prepare_config(inp.options),
                 progress)
    return PreparedResult(inp.scene, result.labels, result.confidence, np.array([0.5]), result.labels[None],
                          result.view_maps, int(result.info["classes"]), result.stages, result.info)


# ---- benchmark entries -------------------------------------------------------------------------

_CACHE: dict = {}  # one finished training, shared by the entries run on the same dataset


def _trained(inp: "MethodInput", views: list[int], gaussians: Gaussians, stacks, config: ProtoSagaConfig):
    key = (str(inp.dataset.root), tuple(views), config.classifiers, config.association.gaga.min_region_share,
           config.backend)
    if key not in _CACHE:
        cams = [inp.dataset.cameras[v] for v in views]
        projections = [project(gaussians, c) for c in cams]
        _CACHE.clear()
        _CACHE[key] = train(projections, view_regions(stacks, config), [len(m) for m in stacks], config)
        return _CACHE[key], False
    return _CACHE[key], True


def training_views(inp: "MethodInput") -> tuple[list[int], list[np.ndarray]]:
    """The training views that have masks, and their stacks [M, H, W] bool."""
    views, stacks = [], []
    for v in inp.train:
        m, _ = inp.dataset.mask_stack(v)
        if m is not None and len(m):
            views.append(v)
            stacks.append(np.asarray(m, bool))
    return views, stacks


def segment(inp: "MethodInput", config: ProtoSagaConfig = ProtoSagaConfig(),
            trained: TrainedClassifiers | None = None) -> "MethodResult":
    """Benchmark entry: training views' associated maps; every other view labelled by Eq. 19.
    ``trained``: a finished Sec. 3.1 training on :func:`training_views` (else trained or shared here)."""
    from ..base import MethodResult

    config = replace(config, backend=inp.backend)
    ds = inp.dataset
    gaussians = ds.load_scene().to_gaussians()
    views, stacks = training_views(inp)
    if not views:
        return MethodResult(np.full(len(gaussians), -1, dtype=np.int64))
    trained, shared = (trained, True) if trained is not None else _trained(inp, views, gaussians, stacks, config)
    result = run(gaussians, [ds.cameras[v] for v in views], stacks, config, trained=trained)
    maps = dict(zip(views, result.view_maps))
    t = time.perf_counter()
    for v in range(len(ds)):
        if v not in inp.train:
            maps[v] = result.label_view(project(gaussians, ds.cameras[v]), inp.backend)
    result.stages["novel_views"] = time.perf_counter() - t
    result.info["training_shared"] = shared
    return MethodResult(result.labels, maps, stages=result.stages, info=result.info)


def _entry(**association_and_inference):
    inference = association_and_inference.pop("inference", "prototypes")
    config = ProtoSagaConfig(association=AssociationConfig(**association_and_inference), inference=inference)

    def entry(inp: "MethodInput") -> "MethodResult":
        return segment(inp, config)

    return entry


segment_depth = _entry(mode="depth")  # Tab. 3 row 1 (Gaga's association)
segment_probability = _entry(mode="probability")  # Tab. 3 row 2
segment_classifier = _entry(inference="classifier")  # Tab. 4 row 1
segment_kmeans = _entry(inference="kmeans")  # Tab. 4 row 2

"""Trace3D as a method: patches -> GIT -> consistent instance maps -> (density control) -> labels.

:func:`run` is what the command-line pipeline and the benchmark both call; the benchmark's three
entries are the full method and its two ablations (Trace3D Tab. 5):

* ``trace3d`` — consistent maps and density control;
* ``git-consistent`` — consistent maps, no density control;
* ``git-density`` — density control on per-view ids (no association), labels as ``naive``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from ...camera import Camera
from ...engine import project, render
from ...parallel import Executor, run_all
from ...scene import GaussianScene
from . import ConsistencyConfig, ConsistentInstances, GITStore, consistent_instances, make_patches
from .density import DensityConfig, DensityReport, density_control
from ...patches import InstancePatches
from .git import ViewCache, trace_all
from .retrain import RetrainConfig, RetrainReport, retrain
from ...visibility import DEFAULT_VISIBILITY, VisibilityRule
from ..base import training_masks


@dataclass
class Trace3DConfig:
    top_k: int = 8  # labels kept per Gaussian and view in GIT
    power: int = 1  # 1: alpha*T weights (paper); 2: squared
    min_area: int | None = None  # masks below this are dropped (default: 96 px at 1 MP, scaled)
    patch_rule: str = "cells"  # make_patches' rule: "cells" (Trace3D) or "finest" (SAM's hierarchy); docs/benchmarks.md
    visibility: VisibilityRule = DEFAULT_VISIBILITY
    consistency: ConsistencyConfig = field(default_factory=ConsistencyConfig)
    density: DensityConfig | None = field(default_factory=DensityConfig)  # None: no density control
    consistent: bool = True  # False: per-view ids, no association (the git-density ablation)
    retrain: RetrainConfig | None = None  # density control's retraining mode (needs the photos)
    backend: str = "auto"
    device: str = "cpu"  # where the engine runs ("cuda" uses gsplat where it imports)


@dataclass
class Trace3DResult:
    scene: GaussianScene  # the (possibly refined) scene every per-Gaussian array indexes
    instances: ConsistentInstances
    patches: list[InstancePatches]  # per training view
    labels: np.ndarray  # [N] int64 global instance id, -1 = none
    confidence: np.ndarray  # [N]
    stages: dict[str, float]  # seconds per stage
    info: dict  # bytes per pair, peak entries, density report...
    density: "DensityReport | RetrainReport | None" = None

    def view_maps(self) -> list[np.ndarray]:  # per training view [H, W] global ids
        return [self.instances.view_map(k, p.patch_map) for k, p in enumerate(self.patches)]


@torch.no_grad()
def render_time(scene: GaussianScene, cameras: list[Camera], backend: str = "auto") -> float:
    """Seconds to render the base colours of every view (projection excluded), the reference GIT's
    cost is compared with."""
    gaussians = scene.to_gaussians()
    colors = torch.as_tensor(scene.base_colors, dtype=torch.float32)
    total = 0.0
    for cam in cameras:
        proj = project(gaussians, cam)
        t0 = time.perf_counter()
        render(proj, colors, backend=backend)
        total += time.perf_counter() - t0
    return total


def pack_masks(masks: np.ndarray) -> tuple[np.ndarray, tuple]:
    """A mask stack as ``(bits, shape)``: an eighth of its bytes, to send to a worker (:func:`unpack_masks`).

    Args:
        masks: [M, H, W] bool (or anything that casts to it), one view's masks.
    """
    masks = np.asarray(masks, dtype=bool)
    return np.packbits(masks, axis=None), masks.shape


def unpack_masks(packed: tuple[np.ndarray, tuple]) -> np.ndarray:  # -> [M, H, W] bool
    """The mask stack :func:`pack_masks` packed.

    Args:
        packed: ([ceil(M H W / 8)] uint8 bits, (M, H, W)) as :func:`pack_masks` returns it.
    """
    bits, shape = packed
    return np.unpackbits(bits, count=int(np.prod(shape))).reshape(shape).view(bool)


def _patches_one(packed: tuple[np.ndarray, tuple], min_area: int | None, rule: str = "cells") -> InstancePatches:
    """One view's patches of its mask stack [M, H, W] bool, packed by :func:`pack_masks`."""
    return make_patches(unpack_masks(packed), min_area, rule)


def patch_roots(patches: list[InstancePatches]) -> np.ndarray:  # -> [P] int64
    """Every view's patch roots (:meth:`InstancePatches.roots`) as ids unique across views, in the
    global patch order of :class:`GITStore`."""
    out, base = [], 0
    for p in patches:
        r = p.roots()
        out.append(r + base)
        base += len(p.kept_masks) + 1
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def _per_view_ids(store: GITStore) -> ConsistentInstances:
    """Every patch its own instance (no association): the ablation without consistent maps."""
    from .consistency import MergeTree, gaussian_votes

    P = store.num_patches
    tree = MergeTree(P, np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))
    ids = np.arange(P, dtype=np.int64)
    labels, confidence = gaussian_votes(store, ids)
    return ConsistentInstances(store, tree, ids, labels, confidence)


def run(scene: GaussianScene, cameras: list[Camera], masks: Iterable[np.ndarray],
        config: Trace3DConfig = Trace3DConfig(), images: Callable[[int], np.ndarray] | None = None,
        progress: Callable[[str, int, int], None] | None = None, cache: ViewCache | None = None,
        executor: Executor | None = None, occluders: GaussianScene | None = None) -> Trace3DResult:
    """Trace3D on ``scene`` seen by ``cameras`` with one mask stack [M, H, W] per camera.

    ``images(k)`` gives view ``k``'s photo [H, W, 3] for the colour refit of density control (the
    refit is skipped without it). ``progress(stage, done, total)`` is called as work advances;
    ``cache`` keeps each view's GIT so an interrupted run resumes where it stopped. ``executor`` runs
    the per-view steps (patches, traces, density control's offsets and refit; default: here); their
    results are reduced in view order, so they do not change the result. ``occluders`` (the rest of
    the scene when ``scene`` is a block of it: :func:`~gs_core.methods.blocks.prepare_block`) hide
    what lies behind them in the GIT traces (:func:`~gs_core.methods.trace3d.git.trace_all`); density
    control does not take them, so they need ``config.density`` None.

    Args:
        masks: [V] of [M, H, W] bool, one mask stack per camera.
        images: [H, W, 3] float in [0, 1], ``images(k)`` the photo of view k, or None.
    """
    say = progress or (lambda stage, done, total: None)
    if occluders is not None and config.density is not None:
        raise ValueError("Trace3D occluders: density control does not trace them; run it with config.density None")
    stages: dict[str, float] = {}
    t0 = time.perf_counter()
    patches = run_all(executor, _patches_one, [pack_masks(m) for m in masks], config.min_area, config.patch_rule)
    if len(patches) != len(cameras):
        raise ValueError(f"{len(patches)} mask stacks for {len(cameras)} cameras")
    stages["patches"] = time.perf_counter() - t0

    def associate(sc: GaussianScene, store: GITStore | None = None) -> tuple[ConsistentInstances, dict]:
        if store is None:
            t = time.perf_counter()
            store, traced = trace_all(sc, cameras, patches, config, lambda d, n: say("tracing", d, n), cache,
                                      executor, occluders)
            stages["git"] = stages.get("git", 0.0) + time.perf_counter() - t
            stages["git_traces"] = stages.get("git_traces", 0.0) + traced
        t = time.perf_counter()
        inst = (consistent_instances(store, config.consistency, say, executor,
                                     roots=patch_roots(patches) if config.consistency.separation_roots else None)
                if config.consistent else _per_view_ids(store))
        stages["consistency"] = stages.get("consistency", 0.0) + time.perf_counter() - t
        info = {"visible_pairs": store.visible_pairs, "git_bytes": store.nbytes,
                "bytes_per_pair": store.nbytes / max(store.visible_pairs, 1), "patches": store.num_patches,
                "instances": inst.num_instances}
        return inst, info

    instances, info = associate(scene)
    report = None
    if config.density is not None:
        say("density control", 0, 1)
        t = time.perf_counter()
        if config.retrain is not None and images is not None:
            scene, report, store = retrain(scene, cameras, instances, patches, images, config.density, config.retrain,
                                           replace(config, density=None, retrain=None), config.backend,
                                           progress=lambda d, n: say("density control", d, n))
        else:
            scene, report, store = density_control(scene, cameras, instances, patches, config.density,
                                                   images=images, trace_config=replace(config, density=None),
                                                   backend=config.backend, executor=executor)
        stages["density"] = time.perf_counter() - t
        say("density control", 1, 1)
        if report.split or config.retrain is not None:  # associate again on the refined scene's GIT
            instances, info = associate(scene, store)
        info["density"] = report.to_json()
    return Trace3DResult(scene, instances, patches, instances.labels, instances.confidence, stages, info, report)


# ---- benchmark entries -------------------------------------------------------------------------

def _segment(inp, config: Trace3DConfig):
    from ..base import MethodResult

    ds = inp.dataset
    scene = ds.load_scene()
    views, stacks = training_masks(ds, inp.train)
    cams = [ds.cameras[v] for v in views]
    result = run(scene, cams, stacks, replace(config, backend=inp.backend), images=lambda k: ds.image(views[k]))
    result.stages["render_all_views"] = render_time(result.scene, cams, inp.backend)
    maps = dict(zip(views, result.view_maps()))
    refined = result.scene if config.density is not None else None
    return MethodResult(result.labels, maps, scene=refined, stages=result.stages, info=result.info)


def segment(inp):
    """``trace3d``: consistent maps and training-free density control."""
    return _segment(inp, Trace3DConfig())


def segment_consistent(inp):
    """``git-consistent``: consistent maps, no density control."""
    return _segment(inp, Trace3DConfig(density=None))


def segment_retrain(inp):
    """``trace3d-retrain``: consistent maps and density control in its retraining mode (split / prune
    interleaved with photometric retraining, Trace3D Sec. 3.4.2)."""
    return _segment(inp, Trace3DConfig(retrain=RetrainConfig()))


def segment_density(inp):
    """``git-density``: density control with per-view ids (no association)."""
    return _segment(inp, Trace3DConfig(consistent=False))


# ---- gs-core prepare --method trace3d | git-consistent -------------------------------------------

LEVELS = np.round(np.linspace(0.0, 1.0, 11), 2)  # granularity grid: 0 finest, 0.5 objects, 1 groups
FINEST_SCORE = 0.95  # the merge score that level 0 cuts the tree at


def level_threshold(level: float, theta: float, floor: float) -> float:
    """Merge-tree cut for a granularity ``level`` in [0, 1]: 0 -> only near-certain merges (parts
    stay apart), 0.5 -> ``theta`` (objects), 1 -> ``floor`` (groups); linear in between."""
    if level <= 0.5:
        return FINEST_SCORE + (theta - FINEST_SCORE) * level / 0.5
    return theta + (floor - theta) * (level - 0.5) / 0.5


def prepare_config(options) -> Trace3DConfig:
    """The configuration ``gs-core prepare`` runs for ``options`` (a PrepareOptions)."""
    config = Trace3DConfig(consistency=ConsistencyConfig(theta=options.theta), backend=options.backend,
                           device=options.device)
    return replace(config, density=None) if options.method == "git-consistent" else config


def prepare_trace3d(inp, progress):
    """``prepare``'s preparer (a PrepareInput -> PreparedResult): GIT, consistent maps, density
    control; every granularity of :data:`LEVELS` from the merge tree."""
    from .consistency import nested_level_labels
    from ..base import PreparedResult

    config = prepare_config(inp.options)
    result = run(inp.scene, inp.cameras, inp.stacks, config, images=inp.images, progress=progress, cache=inp.cache,
                 executor=inp.executor)
    inst, cc = result.instances, config.consistency
    cuts = [inst.tree.cut(level_threshold(level, cc.theta, cc.floor), inst.store.patch_view if cc.absorb_unconfirmed
                          else None) for level in LEVELS]
    level_labels = nested_level_labels(inst.store, cuts, anchor=int(np.argmin(np.abs(LEVELS - 0.5))))
    return PreparedResult(result.scene, result.labels, result.confidence, LEVELS, level_labels,
                          result.view_maps(), inst.num_instances, result.stages, result.info)


def trace_settings(options) -> str:
    """What one view's GIT depends on, beside the scene and the view's masks (the per-view cache key)."""
    c = prepare_config(options)
    key = (c.top_k, c.power, c.min_area, c.visibility, c.backend, c.device)
    return repr(key if c.patch_rule == "cells" else key + (c.patch_rule,))  # the patches change the GIT

"""Scenes split into spatial blocks (the large-scene papers' partitioning: CityGS, VastGaussian): each
block, grown by an overlap, gets the views that see it and runs the Trace3D core on its own (GIT,
consistent maps: :func:`prepare_block`, a plain function the executor runs, here or as a Ray task);
then the ids are stitched across block borders by the overlap's Gaussians (:func:`stitch`): two ids
of neighbouring blocks are one object when enough of the Gaussians both blocks label vote for that
pair.

Memory per block is bounded by the block (its Gaussians, its views' masks and GIT) and the scene's
geometry, not by the scene's views. A block's views are traced with the rest of the scene as
occluders (:func:`~gs_core.methods.trace3d.git.occluders_in_view`): a view from outside the block
sees its Gaussians past other blocks' buildings, and without those a Gaussian they hide would count
as seen and vote for the occluder's patch (the city's blocks came out as a few instances:
docs/benchmarks.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np

from ..camera import Camera
from ..parallel import LOCAL, Executor, Shared, derived, forget, run_all
from ..scene import GaussianScene
from .trace3d.git import geometry_only


@dataclass(frozen=True)
class BlockConfig:
    grid: tuple[int, int] = (2, 2)  # blocks along the scene's two widest axes
    overlap: float = 0.15  # each block grows by this share of its width on every side
    min_view_share: float = 0.02  # a view is given to a block when this share of the block's Gaussians projects into it
    min_visible_share: float | None = None  # ...and (when set) this share is in front of the scene there (`visible_points`)
    min_votes: int = 5  # overlap Gaussians needed before two ids can be joined
    join: float = 0.5  # ...and this share of the smaller id's labelled overlap Gaussians must vote for the pair
    join_larger: float = 0.5  # ...and of the larger id's (both blocks agree): a sliver does not join a large region
    join_whole: float = 0.01  # ...and this share of each id's Gaussians in its whole block: two slivers of big ids do not join


@dataclass
class Block:
    index: int
    rows: np.ndarray  # [n] int64 the block's Gaussians, overlap included
    core: np.ndarray  # [n] bool: the rows whose label this block decides (every Gaussian is in one core)
    views: np.ndarray  # [v] int64 the views that see the block


def _sees(cam: Camera, points: np.ndarray) -> np.ndarray:  # points [P, 3] -> [P] bool
    """Points in front of the camera that project inside its image."""
    return _cells(cam, points, 1)[0]


def _cells(cam: Camera, points: np.ndarray, cell: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``points`` [P, 3] on ``cam``'s image cut in ``cell`` x ``cell`` pixel cells: (in the image [P] bool,
    cell index [P], depth [P])."""
    pc = points @ cam.world_to_camera[:3, :3].T + cam.world_to_camera[:3, 3]
    z = pc[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        u, v = cam.fx * pc[:, 0] / z + cam.cx, cam.fy * pc[:, 1] / z + cam.cy
    ok = (z > 1e-6) & (u >= 0) & (u < cam.width) & (v >= 0) & (v < cam.height)
    index = (np.where(ok, v, 0) // cell).astype(np.int64) * -(-int(cam.width) // cell) \
        + (np.where(ok, u, 0) // cell).astype(np.int64)
    return ok, index, z


def nearest_depth(cam: Camera, scene: np.ndarray, cell: int = 4) -> np.ndarray:  # scene [S, 3] -> [cells] float
    """Per ``cell`` x ``cell`` pixel cell of ``cam``'s image, the depth of the nearest of the ``scene``
    centres there (inf where none is).

    Args:
        scene: [S, 3] centres (a sample of the scene's).
    """
    ok, index, z = _cells(cam, scene, cell)
    depth = np.full(-(-int(cam.width) // cell) * -(-int(cam.height) // cell), np.inf)
    np.minimum.at(depth, index[ok], z[ok])
    return depth


def visible_points(cam: Camera, points: np.ndarray, depth: np.ndarray, cell: int = 4,
                   slack: float = 0.1) -> np.ndarray:  # points [P, 3] -> [P] bool
    """The ``points`` in the image that the scene does not hide: a point is hidden when a scene centre
    in its cell lies nearer than its depth less ``slack`` of it and 1 unit (``depth``:
    :func:`nearest_depth`). A coarse depth test of centres, no footprints: a cell no centre reaches
    hides nothing, so a sparse sample of the scene errs towards seen. Used before any trace, to leave
    out of a block the views where the rest of the scene hides it (:attr:`BlockConfig.min_visible_share`).

    Args:
        points: [P, 3] the points tested (a sample of a block's centres).
        depth: [C] float per cell of ``cam``'s image, the nearest scene depth (:func:`nearest_depth`).
    """
    ok, index, z = _cells(cam, points, cell)
    return ok & (depth[index] >= z * (1.0 - slack) - 1.0)


def split_blocks(means: np.ndarray, cameras: list[Camera], config: BlockConfig = BlockConfig()) -> list[Block]:
    """Blocks of ``means`` [N, 3] on a ``config.grid`` along the two axes of widest extent, cut at
    quantiles (blocks of equal Gaussian counts), each grown by ``config.overlap``; each with the views
    where at least ``min_view_share`` of (a sample of) its Gaussians project into the image and, with
    ``min_visible_share``, that share of them is not hidden by the scene (:func:`visible_points` against
    a sample of 400k centres): a view from another street that sees the block past other blocks'
    buildings costs the occluders' trace and gives it few votes.

    Args:
        means: [N, 3] Gaussian centres.
    """
    extent = means.max(0) - means.min(0)
    axes = np.argsort(-extent)[:2]
    edges = [np.quantile(means[:, a], np.linspace(0.0, 1.0, g + 1)) for a, g in zip(axes, config.grid)]
    cells = [np.clip(np.searchsorted(e, means[:, a], side="right") - 1, 0, len(e) - 2) for a, e in zip(axes, edges)]
    blocks, samples = [], []
    for i in range(config.grid[0]):
        for j in range(config.grid[1]):
            inside = np.ones(len(means), bool)
            for a, e, k in zip(axes, edges, (i, j)):
                margin = config.overlap * (e[k + 1] - e[k])
                inside &= (means[:, a] >= e[k] - margin) & (means[:, a] <= e[k + 1] + margin)
            rows = np.flatnonzero(inside)
            core = (cells[0][rows] == i) & (cells[1][rows] == j)
            samples.append(means[rows[:: max(1, len(rows) // 4096)]])
            blocks.append(Block(len(blocks), rows, core, np.zeros(0, np.int64)))
    views: list[list[int]] = [[] for _ in blocks]
    scene = means[:: max(1, len(means) // 400_000)] if config.min_visible_share is not None else None
    for v, cam in enumerate(cameras):
        depth = None
        for b, sample in enumerate(samples):
            if not len(sample) or _sees(cam, sample).mean() < config.min_view_share:
                continue
            if scene is not None:
                depth = nearest_depth(cam, scene) if depth is None else depth
                if visible_points(cam, sample, depth).mean() < config.min_visible_share:
                    continue
            views[b].append(v)
    for block, vs in zip(blocks, views):
        block.views = np.asarray(vs, np.int64)
    return blocks


def prepare_block(item, shared: Shared, config) -> np.ndarray:
    """The Trace3D core (GIT, consistent maps; ``config`` a Trace3DConfig, density control off) on one
    block: ``item`` = (block, its views' cameras, their mask stacks packed by
    :func:`~gs_core.methods.trace3d.method.pack_masks`: :func:`block_items`); ``shared`` holds the
    scene, whose Gaussians outside the block are traced as occluders only. -> [n] int64 the block's
    instance ids of its rows, -1 = none."""
    from .trace3d import run
    from .trace3d.method import unpack_masks

    block, cameras, packed = item
    stacks = [unpack_masks(p) for p in packed]
    if len(cameras) == 0 or len(block.rows) == 0:
        return np.full(len(block.rows), -1, np.int64)
    scene = shared.value.subset(block.rows)
    around = np.ones(len(shared.value), bool)
    around[block.rows] = False
    occluders = shared.value.subset(around)
    return run(scene, cameras, stacks, replace(config, density=None), occluders=occluders).labels.astype(np.int64)


def stitch(blocks: list[Block], labels: list[np.ndarray], num_gaussians: int,
           config: BlockConfig = BlockConfig()) -> np.ndarray:
    """Global ids from per-block ids (``labels[b]`` [n_b] indexes ``blocks[b].rows``): the Gaussians
    two blocks share vote on which of their ids are one object (joined when at least ``min_votes``
    do, ``join`` of the smaller id's shared labelled Gaussians and ``join_larger`` of the larger id's:
    a sliver does not join a large region it merely touches; and ``join_whole`` of each id's Gaussians in
    its whole block: two big ids that each reach the overlap by a sliver do not join); each Gaussian then takes
    its core block's id. -> [N] int64, -1 = none, numbered in order of first appearance.

    Args:
        labels: [B] of [n_b] int64 block b's ids of ``blocks[b].rows``, -1 = none.
    """
    offsets = np.concatenate([[0], np.cumsum([int(l.max(initial=-1)) + 1 for l in labels])]).astype(np.int64)
    parent = np.arange(offsets[-1])
    whole_size = np.concatenate([np.bincount(l[l >= 0], minlength=int(l.max(initial=-1)) + 1) for l in labels]
                                + [np.zeros(0, np.int64)])  # [ids] each id's Gaussians in its block

    def root(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a in range(len(blocks)):
        for b in range(a + 1, len(blocks)):
            _, ia, ib = np.intersect1d(blocks[a].rows, blocks[b].rows, assume_unique=True, return_indices=True)
            la, lb = labels[a][ia], labels[b][ib]
            both = (la >= 0) & (lb >= 0)
            if not both.any():
                continue
            na, nb = la[both] + offsets[a], lb[both] + offsets[b]
            pairs, votes = np.unique(np.stack([na, nb], 1), axis=0, return_counts=True)
            size_a = dict(zip(*np.unique(na, return_counts=True)))
            size_b = dict(zip(*np.unique(nb, return_counts=True)))
            for (x, y), n in zip(pairs, votes):
                small, large = sorted((size_a[x], size_b[y]))
                whole = max(whole_size[x], whole_size[y])
                if n >= config.min_votes and n >= config.join * small and n >= config.join_larger * large \
                        and n >= config.join_whole * whole:
                    rx, ry = root(int(x)), root(int(y))
                    if rx != ry:
                        parent[max(rx, ry)] = min(rx, ry)
    out = np.full(num_gaussians, -1, np.int64)
    for k, (block, lab) in enumerate(zip(blocks, labels)):  # by position: ``blocks`` may be some of a grid's
        rows, own = block.rows[block.core], lab[block.core]
        ok = own >= 0
        out[rows[ok]] = [root(int(x)) for x in own[ok] + offsets[k]]
    has = out >= 0
    _, first, inverse = np.unique(out[has], return_index=True, return_inverse=True)
    rank = np.argsort(np.argsort(first))  # ids numbered by first appearance
    out[has] = rank[inverse]
    return out


@dataclass
class BlockResult:
    labels: np.ndarray  # [N] int64 stitched instance ids, -1 = none
    blocks: list[Block]
    block_labels: list[np.ndarray]  # per block [n_b] its own ids (before stitching)


def block_items(blocks: list[Block], cameras: list[Camera], stack_of) -> Iterator[tuple]:
    """:func:`prepare_block`'s items, made as they are read (an executor reads them lazily): each
    block with its views' cameras and packed mask stacks (``stack_of(v)``: view v's [M, H, W] bool)."""
    from .trace3d.method import pack_masks

    return ((b, [cameras[v] for v in b.views], [pack_masks(stack_of(v)) for v in b.views]) for b in blocks)


def run_blocks(scene: GaussianScene, cameras: list[Camera], stacks: list[np.ndarray], trace_config,
               config: BlockConfig = BlockConfig(), executor: Executor | None = None, progress=None,
               cache=None) -> BlockResult:
    """Split ``scene`` into blocks, run :func:`prepare_block` on each (on ``executor``: the scene goes
    to the workers once, each block's views' masks with its task) and stitch the ids. ``cache``
    (``get_labels(scene, b)`` / ``put_labels(scene, b, labels)``) keeps each finished block, so an
    interrupted run resumes with the blocks still missing.

    Args:
        stacks: [V] of [M, H, W] bool, one mask stack per camera.
    """
    blocks = split_blocks(scene.means, cameras, config)
    labels = [cache.get_labels(scene, b.index) if cache is not None else None for b in blocks]
    todo = [b for b, lab in zip(blocks, labels) if lab is None or len(lab) != len(b.rows)]
    done = len(blocks) - len(todo)
    if progress:
        progress(done, len(blocks))
    items = block_items(todo, cameras, stacks.__getitem__)
    for j, lab in (executor or LOCAL).map(prepare_block, items, Shared(geometry_only(scene)), trace_config):
        labels[todo[j].index] = lab
        if cache is not None:
            cache.put_labels(scene, todo[j].index, lab)
        done += 1
        if progress:
            progress(done, len(blocks))
    return BlockResult(stitch(blocks, labels, len(scene), config), blocks, labels)


# ---- gs-core prepare --blocks NXxNY ---------------------------------------------------------------

def _label_map(cam: Camera, shared: Shared, labels: np.ndarray, backend: str) -> np.ndarray:  # -> [H, W] int64
    """One view's instance map: the stitched labels rendered there (a per-view step)."""
    from ..engine import project
    from ..labelmaps import render_labels

    gaussians = derived(shared, "gaussians", lambda scene: scene.to_gaussians())
    return render_labels(project(gaussians, cam), labels, backend=backend)


def block_config(options) -> BlockConfig:
    return BlockConfig(grid=tuple(options.blocks))


def prepare_settings(options) -> str:
    """What ``prepare --blocks`` depends on (its cache key): the Trace3D core's settings and the blocks'."""
    from .trace3d import prepare_config

    return repr((replace(prepare_config(options), density=None), block_config(options)))


def prepare_blocks(inp, progress):
    """``prepare``'s preparer with ``--blocks``: the Trace3D core per block on ``inp.executor`` (density
    control is not run per block), stitched ids, one granularity; each view's instance map rendered
    from the stitched ids (also per view on the executor)."""
    import time

    from .base import PreparedResult
    from .trace3d import prepare_config

    say = progress or (lambda stage, done, total: None)
    t = time.perf_counter()
    config = replace(prepare_config(inp.options), density=None)
    bc = block_config(inp.options)
    cache = inp.cache if hasattr(inp.cache, "put_labels") else None
    result = run_blocks(inp.scene, inp.cameras, inp.stacks, config, bc, inp.executor,
                        progress=lambda d, n: say("blocks", d, n), cache=cache)
    stages = {"blocks": time.perf_counter() - t}
    t = time.perf_counter()
    shared = Shared(geometry_only(inp.scene))
    try:
        maps = run_all(inp.executor, _label_map, list(inp.cameras), shared, result.labels, config.backend,
                       progress=lambda d, n: say("view maps", d, n))
    finally:
        forget(shared)
    stages["view_maps"] = time.perf_counter() - t
    labels = result.labels
    n = int(len(np.unique(labels[labels >= 0])))
    info = {"blocks": [{"gaussians": len(b.rows), "core": int(b.core.sum()), "views": len(b.views),
                        "instances": int(len(np.unique(l[l >= 0])))} for b, l in zip(result.blocks, result.block_labels)],
            "instances": n}
    confidence = (labels >= 0).astype(np.float32)
    return PreparedResult(inp.scene, labels, confidence, np.array([0.5]), labels[None], maps, n, stages, info)

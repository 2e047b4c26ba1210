"""``gs-core bench scale``: ``prepare`` in one process against ``prepare --ray`` on local clusters of
1, 2, ... workers (and ``--blocks``), on a synthetic room.

Measured in one process, one run after the other: wall time; per Ray worker, the CPU seconds of its
tasks and its peak resident memory; the bytes sent to the workers (each map's shared data and the
items) and back (the results), as pickled; whether the work folder is bitwise the one of the
single-process run. From the first Ray run's CPU seconds it projects the wall time on more workers: the
driver's CPU (loading, the association's merges across views, reductions, writing) stays, the workers'
divides. Stage wall times cannot split it: since the association's votes and merges within views moved to the
executor, the ``consistency`` stage is partly spread.

``--size xl`` is the synthetic city (:mod:`gs_core.synth.city`: over 2M splats, 1,000 views), which
does not run whole: it is split into blocks (``--blocks``, default 4x4) and the blocks' Trace3D core
runs as Ray tasks (:func:`run_block_bench`; ``--limit K`` runs K neighbouring blocks only:
:func:`first_blocks`). Per block: its size, wall and CPU time, and per worker CPU seconds and peak
memory; bytes to and from the workers; the blocks that ran stitched (time, ids before and after) and
scored against the ground truth (:func:`stitch_quality`: per-object IoU, objects split and merged,
objects across a border kept one instance); then the wall time of all blocks projected on 8, 32 and
128 workers from the measured seconds per (Gaussian, view) of the blocks that ran.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import resource
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..preflight import unit_float


def _measured(item, fn, *shared):
    """``fn(item, *shared)`` and what it cost this worker: (result, pid, CPU s, peak RSS MB, wall s)."""
    t, w = time.process_time(), time.perf_counter()
    result = fn(item, *shared)
    return (result, os.getpid(), time.process_time() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            time.perf_counter() - w)


class MeasuringExecutor:
    """Wraps an executor: each task reports its worker, CPU time and peak memory; the bytes each map
    sends (shared values once, items each) and receives are counted as pickled (as if they travelled,
    whatever ``inner`` is: ``remote``)."""

    remote = True

    def __init__(self, inner):
        self.inner = inner
        self.cpu: dict[int, float] = {}
        self.peak_mb: dict[int, float] = {}
        self.bytes_out = 0
        self.bytes_in = 0
        self.tasks = 0
        self.task_wall: dict[int, float] = {}  # item index -> seconds (of the latest map)
        self.task_cpu: dict[int, float] = {}  # item index -> CPU seconds on its worker (of the latest map)
        self._sent: set = set()  # tokens of the Shared values already counted

    def map(self, fn, items, *shared):
        items = list(items)
        from ..parallel import Shared

        for s in shared:  # a Shared is sent once (RayExecutor keeps its object ref), the rest once per map
            if isinstance(s, Shared) and s.token in self._sent:
                continue
            self._sent.add(getattr(s, "token", None))
            self.bytes_out += len(pickle.dumps(s, protocol=5))
        self.bytes_out += sum(len(pickle.dumps(i, protocol=5)) for i in items)
        for i, (result, pid, cpu, peak, wall) in self.inner.map(_measured, items, fn, *shared):
            self.task_wall[i] = wall
            self.task_cpu[i] = cpu
            self.cpu[pid] = self.cpu.get(pid, 0.0) + cpu
            self.peak_mb[pid] = max(self.peak_mb.get(pid, 0.0), peak)
            self.bytes_in += len(pickle.dumps(result, protocol=5))
            self.tasks += 1
            yield i, result


def _reset_peak() -> None:
    """Start this process's peak resident memory afresh (Linux: ``/proc/self/clear_refs``), so that
    :func:`_peak_mb` measures the next run alone; elsewhere it keeps counting from the start."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _peak_mb() -> float:
    """This process's peak resident memory in MB since the last :func:`_reset_peak` (where Linux has
    one, otherwise since it started)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _same_work(a: Path, b: Path) -> bool:
    for name in ("labels.npy", "confidence.npy"):
        if not np.array_equal(np.load(a / name), np.load(b / name)):
            return False
    for name in ("levels.npz", "view_maps.npz"):
        with np.load(a / name) as za, np.load(b / name) as zb:
            if za.files != zb.files or not all(np.array_equal(za[k], zb[k]) for k in za.files):
                return False
    return (a / "scene.ply").read_bytes() == (b / "scene.ply").read_bytes()


def run_bench(dataset: Path, root: Path, method: str, workers: list[int], blocks=None, say=print) -> dict:
    import ray

    from ..pipeline import prepare as prep
    from ..pipeline.distributed import LOCAL_SYSTEM_CONFIG, RayExecutor

    def once(out: Path, executor=None) -> tuple[dict, float, float]:
        options = prep.PrepareOptions(dataset, out, method=method, force=True, blocks=blocks)
        _reset_peak()
        t, c = time.perf_counter(), time.process_time()
        manifest = prep.prepare(options, log=lambda *a: None, executor=executor)
        return manifest, time.perf_counter() - t, time.process_time() - c

    rows = []
    ref_out = root / "single"
    manifest, wall, cpu = once(ref_out)
    ref = {"run": "single process", "wall_s": wall, "cpu_s": cpu, "stages": manifest["stages"],
           "gaussians": manifest["gaussians"], "views": len(manifest["views"]),
           "peak_rss_mb": _peak_mb()}
    rows.append(ref)
    say(f"single process: {wall:.1f} s wall, {cpu:.1f} s CPU, peak RSS {ref['peak_rss_mb']:.0f} MB; stages "
        + ", ".join(f"{k} {v:.1f}" for k, v in manifest["stages"].items() if not k.startswith("git_")))
    for w in workers:
        t = time.perf_counter()
        ray.init(num_cpus=w, include_dashboard=False, log_to_driver=False, object_store_memory=512 * 2**20,
                 _system_config=dict(LOCAL_SYSTEM_CONFIG))
        started = time.perf_counter() - t
        try:
            measuring = MeasuringExecutor(RayExecutor())
            list(measuring.map(_noop, range(w)))  # start (and import gs_core in) every worker first
            measuring = MeasuringExecutor(RayExecutor())
            out = root / f"ray_{w}"
            manifest, wall, cpu = once(out, measuring)
            driver_peak = _peak_mb()
        finally:
            ray.shutdown()
        row = {"run": f"ray, {w} worker{'s' if w > 1 else ''}", "workers": w, "wall_s": wall, "cluster_start_s": started,
               "driver_cpu_s": cpu, "driver_peak_rss_mb": driver_peak, "worker_cpu_s": sorted(measuring.cpu.values(), reverse=True),
               "worker_peak_rss_mb": sorted(measuring.peak_mb.values(), reverse=True), "tasks": measuring.tasks,
               "bytes_to_workers": measuring.bytes_out, "bytes_from_workers": measuring.bytes_in,
               "same_as_single": _same_work(ref_out, out), "stages": manifest["stages"]}
        rows.append(row)
        say(f"{row['run']}: {wall:.1f} s wall ({ref['wall_s'] / wall:.2f}x the single process; cluster start "
            f"{started:.1f} s not included), driver CPU {cpu:.1f} s, peak RSS {driver_peak:.0f} MB, "
            f"worker CPU {', '.join(f'{c:.1f}' for c in row['worker_cpu_s'])} s, "
            f"worker peak RSS {', '.join(f'{m:.0f}' for m in row['worker_peak_rss_mb'])} MB, "
            f"{measuring.tasks} tasks, {measuring.bytes_out / 2**20:.1f} MB to / {measuring.bytes_in / 2**20:.1f} MB "
            f"from workers, same work folder: {row['same_as_single']}")
    # from CPU seconds, which a machine shared with other jobs disturbs less than wall time: the driver's
    # CPU (association, reductions, I/O) stays, the workers' divides
    first = rows[1] if len(rows) > 1 else None
    projection = {}
    if first is not None:
        projection = {n: first["driver_cpu_s"] + sum(first["worker_cpu_s"]) / n for n in (1, 2, 8, 32, 128)}
        say("projected wall from the first Ray run's CPU seconds (driver + workers / n): "
            + ", ".join(f"{n} workers {s:.1f} s" for n, s in projection.items()))
    return {"dataset": str(dataset), "method": method, "blocks": blocks, "runs": rows, "projected_wall_s": projection}


def run_block_bench(dataset: Path, grid: tuple[int, int], workers: int, limit: int | None = None,
                    say=print, min_visible_share: float | None = None) -> dict:
    """The scene of ``dataset`` split into ``grid`` blocks; ``limit`` neighbouring blocks (all by default: :func:`first_blocks`)
    run :func:`~gs_core.methods.blocks.prepare_block` as Ray tasks on a local cluster of ``workers``
    CPUs, measured; the wall time of all blocks projected on more workers."""
    from ..dataset import Dataset
    from ..pipeline import prepare as prep
    from ..scene import GaussianScene

    t = time.perf_counter()
    ds = Dataset.load(dataset)
    scene = GaussianScene.load(ds.scene_path)
    views, stacks, _ = prep._mask_stacks(ds)
    cameras = [ds.cameras[v] for v in views]
    objects = None
    if (ds.root / "gt" / "gaussians.npz").exists():
        with np.load(ds.root / "gt" / "gaussians.npz") as z:
            objects = z["object"]
    return _blocks_bench(scene, cameras, lambda k: stacks[k], grid, workers, limit, time.perf_counter() - t, say,
                         objects=objects, min_visible_share=min_visible_share)


def first_blocks(grid: tuple[int, int], limit: int | None) -> list[int]:
    """The ``limit`` blocks (all by default) that a limited run takes: a square grown from block 0
    (row-major indices), so that the blocks that run are neighbours and their borders are scored
    (4 on a 4x4 grid: blocks 0, 1, 4, 5)."""
    cells = sorted(((i, j) for i in range(grid[0]) for j in range(grid[1])), key=lambda c: (max(c), c))
    return [i * grid[1] + j for i, j in cells[:limit]] if limit else list(range(grid[0] * grid[1]))


def _blocks_bench(scene, cameras, stack_of, grid, workers, limit, load_s, say=print, views_of=None,
                  objects=None, min_visible_share=None) -> dict:
    """:func:`run_block_bench` on ``scene`` and ``cameras`` loaded in ``load_s``; ``stack_of(k)`` is
    view ``k``'s mask stack, asked for the views of the blocks that run only; ``views_of(views)``, when
    given, is called first with the views those blocks need (a generator makes them then);
    ``objects`` [N] (ground-truth object ids), when given, scores the stitched ids
    (:func:`stitch_quality`)."""
    import ray

    from ..methods.blocks import BlockConfig, block_items, prepare_block, split_blocks
    from ..methods.trace3d import prepare_config
    from ..methods.trace3d.git import geometry_only
    from ..parallel import Shared
    from ..pipeline import prepare as prep
    from ..pipeline.distributed import LOCAL_SYSTEM_CONFIG, RayExecutor

    c = time.process_time()
    t = time.perf_counter()
    bc = BlockConfig(grid=grid, min_visible_share=min_visible_share)
    blocks = split_blocks(scene.means, cameras, bc)
    split_s = time.perf_counter() - t
    driver_cpu = time.process_time() - c
    say(f"{len(scene)} splats, {len(cameras)} views loaded in {load_s:.1f} s; {len(blocks)} blocks in {split_s:.1f} s "
        f"(Gaussians with overlap {min(len(b.rows) for b in blocks)}-{max(len(b.rows) for b in blocks)}, views "
        f"{min(len(b.views) for b in blocks)}-{max(len(b.views) for b in blocks)})")
    run = [blocks[k] for k in first_blocks(grid, limit)]
    if views_of is not None:
        views_of(sorted({int(v) for b in run for v in b.views}))
    config = replace(prepare_config(prep.PrepareOptions(Path("unused"), Path("unused"), method="git-consistent")),
                     density=None)
    items = block_items(run, cameras, stack_of)
    t = time.perf_counter()
    ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False, object_store_memory=2 * 2**30,
             _system_config=dict(LOCAL_SYSTEM_CONFIG))
    started = time.perf_counter() - t
    try:
        measuring = MeasuringExecutor(RayExecutor())
        list(measuring.map(_noop, range(workers)))
        measuring = MeasuringExecutor(RayExecutor())
        t = time.perf_counter()
        labels = dict(measuring.map(prepare_block, items, Shared(geometry_only(scene)), config))
        wall = time.perf_counter() - t
    finally:
        ray.shutdown()
    rows = [{"block": b.index, "gaussians": len(b.rows), "views": len(b.views), "wall_s": measuring.task_wall[j],
             "cpu_s": measuring.task_cpu[j], "instances": int(len(np.unique(labels[j][labels[j] >= 0])))} for j, b in enumerate(run)]
    for r in rows:
        say(f"block {r['block']}: {r['gaussians']} Gaussians, {r['views']} views, {r['wall_s']:.1f} s "
            f"({r['cpu_s']:.1f} s CPU), {r['instances']} instances")
    from ..methods.blocks import stitch

    stitched, quality = None, None
    t = time.perf_counter()  # the blocks that ran stitched across their borders (in the driver, as prepare does)
    ids = stitch(run, [labels[j] for j in range(len(run))], len(scene), bc)
    if len(run) > 1:
        stitched = {"wall_s": time.perf_counter() - t, "instances_in_blocks": sum(r["instances"] for r in rows),
                    "instances": int(len(np.unique(ids[ids >= 0])))}
        say(f"stitched {len(run)} blocks in {stitched['wall_s']:.1f} s: {stitched['instances_in_blocks']} block ids "
            f"-> {stitched['instances']} instances")
    if objects is not None:
        quality = stitch_quality(ids, np.asarray(objects), run)
        _say_quality(quality, say)
    say(f"{len(run)} of {len(blocks)} blocks on {workers} workers: {wall:.1f} s wall (cluster start {started:.1f} s "
        f"not included), worker CPU {', '.join(f'{v:.1f}' for v in sorted(measuring.cpu.values(), reverse=True))} s, "
        f"worker peak RSS {', '.join(f'{v:.0f}' for v in sorted(measuring.peak_mb.values(), reverse=True))} MB, "
        f"{measuring.bytes_out / 2**20:.1f} MB to / {measuring.bytes_in / 2**20:.1f} MB from workers")
    # a block's time grows with its (Gaussians x views): seconds per unit from the blocks that ran
    work = np.array([len(b.rows) * len(b.views) for b in blocks], np.float64)
    rate = sum(r["wall_s"] for r in rows) / max(sum(r["gaussians"] * r["views"] for r in rows), 1)
    per_block = work * rate
    driver = load_s + split_s
    projection = {}
    for n in (1, 2, 8, 32, 128):  # longest-first onto n workers
        loads = np.zeros(min(n, len(blocks)))
        for w in np.sort(per_block)[::-1]:
            loads[loads.argmin()] += w
        projection[n] = driver + float(loads.max())
    say(f"all {len(blocks)} blocks projected: " + ", ".join(f"{n} workers {s:.0f} s" for n, s in projection.items())
        + f" (driver: loading and splitting {driver:.0f} s; longest block {per_block.max():.0f} s)")
    return {"grid": list(grid), "workers": workers, "gaussians": len(scene), "views": len(cameras), "blocks_total": len(blocks),
            "blocks": [{"gaussians": len(b.rows), "views": len(b.views)} for b in blocks], "ran": rows,
            "wall_s": wall, "cluster_start_s": started, "load_s": load_s, "split_s": split_s,
            "driver_cpu_s": driver_cpu, "worker_cpu_s": sorted(measuring.cpu.values(), reverse=True),
            "worker_peak_rss_mb": sorted(measuring.peak_mb.values(), reverse=True),
            "bytes_to_workers": measuring.bytes_out, "bytes_from_workers": measuring.bytes_in,
            "seconds_per_gaussian_view": rate, "projected_wall_s": projection, "stitch": stitched,
            "quality": quality, "min_visible_share": min_visible_share, "ran_blocks": [b.index for b in run]}


def _dominant(keys: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per distinct row of ``keys`` [n, k], its most common value of ``ids`` [n] (ties: the smaller id):
    (the keys [m, k], the id [m], its count [m], the rows' count [m])."""
    rows, counts = np.unique(np.column_stack([keys, ids]), axis=0, return_counts=True)
    order = np.lexsort((rows[:, -1], -counts, *rows[:, :-1].T[::-1]))  # by key, then most common first
    rows, counts = rows[order], counts[order]
    first = np.ones(len(rows), bool)
    first[1:] = (rows[1:, :-1] != rows[:-1, :-1]).any(1)
    starts = np.flatnonzero(first)
    return rows[first, :-1], rows[first, -1], counts[first], np.add.reduceat(counts, starts)


def stitch_quality(labels: np.ndarray, objects: np.ndarray, blocks, min_gaussians: int = 20,
                   dominant: float = 0.8, side: float = 0.1) -> dict:
    """Stitched ids against the ground-truth objects over the Gaussians in the cores of ``blocks`` (the
    blocks that ran): the panoptic scores over Gaussians (:func:`gs_core.metrics.panoptic_scores`, one
    Hungarian matching of ids to objects: mIoU is the mean of each object's IoU with its id, recall the
    share of objects above 0.5); of the objects with ``min_gaussians`` there, those split (their most
    common id holds under ``dominant`` of their labelled Gaussians), merged (their most common id is
    another object's too), and those across a border (``side`` of their Gaussians or more in a second
    block's core): one instance when the most common id is the same on every side. Merged objects
    that lie mostly in different blocks' cores (``merged_across``): in stitched ids, joined by the stitch.

    Args:
        labels: [N] int stitched ids, -1 = none.
        objects: [N] int ground-truth object ids, -1 = none.
    """
    from ..metrics import panoptic_scores

    core_of = np.full(len(labels), -1, np.int64)
    for b in blocks:
        core_of[b.rows[b.core]] = b.index
    keep = (core_of >= 0) & (objects >= 0)
    lab, obj, blk = np.asarray(labels, np.int64)[keep], np.asarray(objects, np.int64)[keep], core_of[keep]
    pan = panoptic_scores(lab[None, None], obj[None, None])
    ids, sizes = np.unique(obj, return_counts=True)
    counted = ids[sizes >= min_gaussians]
    has = (lab >= 0) & np.isin(obj, counted)
    o, top, n, total = _dominant(obj[has, None], lab[has])
    split = int((n < dominant * total).sum())
    _, per_id = np.unique(top, return_counts=True)
    shared = np.isin(top, np.unique(top)[per_id > 1])
    merged = int(shared.sum())
    # merged by the stitch: the objects sharing an id lie mostly in different blocks' cores
    mo, main, _, _ = _dominant(obj[np.isin(obj, o), None], blk[np.isin(obj, o)])
    main_of = dict(zip(mo[:, 0].tolist(), main.tolist()))
    mains: dict[int, set] = {}
    for a, t in zip(o[:, 0].tolist(), top.tolist()):
        mains.setdefault(t, set()).add(main_of[a])
    across = int(sum(1 for a, t, sh in zip(o[:, 0].tolist(), top.tolist(), shared) if sh and len(mains[t]) > 1))
    # the sides of each object: blocks holding `side` of its Gaussians
    pairs, count = np.unique(np.column_stack([obj, blk]), axis=0, return_counts=True)
    size_of, wanted = dict(zip(ids, sizes)), set(counted.tolist())
    big = np.array([c >= side * size_of[a] and a in wanted for (a, _), c in zip(pairs, count)], bool)
    sides = {}
    for a, b in pairs[big]:
        sides.setdefault(int(a), set()).add(int(b))
    crossing = {a for a, bs in sides.items() if len(bs) >= 2}
    on = has & np.isin(obj, list(crossing)) if crossing else np.zeros(len(obj), bool)
    top_on = {}  # (object, block) -> its most common id there
    if on.any():
        keys, side_top, _, _ = _dominant(np.column_stack([obj[on], blk[on]]), lab[on])
        top_on = {(int(a), int(b)): int(t) for (a, b), t in zip(keys, side_top)}
    one = sum(1 for a in crossing if len({top_on.get((a, b), -1 - b) for b in sides[a]}) == 1)  # a side unlabelled: not one
    return {"gaussians": int(keep.sum()), "labelled": float((lab >= 0).mean()) if len(lab) else 0.0,
            "objects": len(counted), "ids": int(len(np.unique(lab[lab >= 0]))), "pan_miou": pan.miou,
            "pan_precision": pan.precision, "pan_recall": pan.recall, "split": split, "merged": merged, "merged_across": across,
            "unlabelled_objects": int(len(counted) - len(o)), "crossing": len(crossing), "crossing_one": int(one)}


def _say_quality(q: dict, say=print) -> None:
    say(f"stitched against the ground truth ({q['gaussians']} Gaussians in the cores, {q['labelled']:.1%} labelled, "
        f"{q['objects']} objects, {q['ids']} ids): mIoU {q['pan_miou']:.3f}, P {q['pan_precision']:.3f}, "
        f"R {q['pan_recall']:.3f}; {q['split']} objects split, {q['merged']} merged ({q['merged_across']} with an object "
        f"mostly in another block's core); {q['crossing_one']} of "
        f"{q['crossing']} objects across a border are one instance")


def _noop(item):
    import gs_core.methods.trace3d.git  # noqa: F401  (the imports a real task pays once per worker)

    return item


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", default="medium", choices=["tiny", "small", "medium", "large", "xl"],
                        help="the synthetic room (large: ~300k splats, 200 views); xl: the city (2M+ splats, 1,000+ "
                             "views), run in blocks")
    parser.add_argument("--layout", default="room", choices=["room", "tabletop", "city"],
                        help="city: the synthetic city at --size tiny or xl, run in blocks")
    parser.add_argument("--limit", type=int, default=None, metavar="K",
                        help="city: run K neighbouring blocks only, a square grown from block 0 (4 on 4x4: blocks "
                             "0, 1, 4, 5); the projection still covers them all")
    parser.add_argument("--min-visible-share", type=unit_float, default=None, metavar="S",
                        help="city: leave out of a block the views where under this share of its Gaussians is in "
                             "front of the scene (BlockConfig.min_visible_share)")
    parser.add_argument("--method", default="trace3d", choices=["trace3d", "git-consistent"])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="Ray worker counts to run")
    parser.add_argument("--blocks", default=None, metavar="NXxNY", help="prepare in blocks (as prepare --blocks)")
    parser.add_argument("--dataset", type=Path, help="an existing dataset folder instead of a synthetic room")
    parser.add_argument("--out", type=Path, help="write the JSON results here")


def run(args: argparse.Namespace) -> int:
    from ..errors import UserError
    from ..pipeline.distributed import require_ray
    from ..pipeline.prepare import _grid

    require_ray()
    if args.size == "xl" or args.layout == "city":
        return _run_city(args)
    blocks = _grid(args.blocks) if args.blocks else None
    if blocks is not None and args.method != "git-consistent":
        raise UserError("--blocks runs the Trace3D core without density control: use --method git-consistent")
    root = Path(tempfile.mkdtemp(prefix="gs_bench_scale_"))
    try:
        dataset = args.dataset
        if dataset is None:
            from ..synth import MaskNoise, SynthConfig, build_dataset

            dataset = root / "dataset"
            t = time.perf_counter()
            build_dataset(dataset, SynthConfig.sized(args.size, layout=args.layout), MaskNoise.level(0.5))
            print(f"built the {args.size} {args.layout} in {time.perf_counter() - t:.1f} s")
        result = run_bench(dataset, root, args.method, args.workers, blocks)
        if args.out:
            args.out.write_text(json.dumps(result, indent=1, default=float))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


def _run_city(args: argparse.Namespace) -> int:
    """``--size xl`` / ``--layout city``: the city made in memory, only the views of the blocks that run
    rendered and their masks simulated (``--limit``); or an existing ``--dataset`` loaded."""
    from ..errors import UserError
    from ..pipeline.prepare import _grid

    if args.size not in ("tiny", "xl"):
        raise UserError(f"--layout city: --size tiny or xl, not {args.size}")
    if args.limit is not None and args.limit < 1:
        raise UserError(f"--limit {args.limit}: at least one block")
    grid = _grid(args.blocks) if args.blocks else ((4, 4) if args.size == "xl" else (2, 1))
    if args.dataset is not None:
        result = run_block_bench(args.dataset, grid, max(args.workers), args.limit,
                                 min_visible_share=args.min_visible_share)
    else:
        from ..synth import MaskNoise, simulate_masks
        from ..synth.city import CITY_SIZES, make_city
        from ..synth.views import iter_views
        from ..synth.writer import mask_rng

        config, noise = CITY_SIZES[args.size], MaskNoise.level(0.5)
        t, c = time.perf_counter(), time.process_time()
        world = make_city(config)
        made = time.perf_counter() - t
        print(f"made the {args.size} city: {len(world.scene)} splats, {len(world.hierarchy.objects)} objects, "
              f"{len(world.train_cameras)} training views, in {made:.1f} s")
        stacks: dict[int, np.ndarray] = {}
        rendered: dict = {}

        def views_of(views: list[int]) -> None:
            t, c = time.perf_counter(), time.process_time()
            rendered_views = iter_views(world, [world.train_cameras[k] for k in views], radius=config.view_radius,
                                        per_level=False)
            for k, view in zip(views, rendered_views):
                stacks[k] = simulate_masks(view.part, view.object, view.group, world.hierarchy, noise,
                                           mask_rng(config.seed, k)).masks
            rendered.update(views=len(views), wall_s=time.perf_counter() - t, cpu_s=time.process_time() - c)
            print(f"rendered {len(views)} views and simulated their masks in {rendered['wall_s']:.1f} s wall "
                  f"({rendered['wall_s'] / max(len(views), 1):.2f} s a view), peak RSS "
                  f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")

        result = _blocks_bench(world.scene, world.train_cameras, stacks.__getitem__, grid, max(args.workers),
                               args.limit, made, views_of=views_of, objects=world.labels.object,
                               min_visible_share=args.min_visible_share)
        result["generation"] = {"make_s": made, **rendered}
    if args.out:
        args.out.write_text(json.dumps(result, indent=1, default=float))
    return 0

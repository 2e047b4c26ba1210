"""``gs-core bench scale``: ``prepare`` in one process against ``prepare --ray`` on local clusters of
1, 2, ... workers (and ``--blocks``), on a synthetic room.

Measured in one process, one run after the other: wall time; per Ray worker, the CPU seconds of its
tasks and its peak resident memory; the bytes sent to the workers (each map's shared data and the
items) and back (the results), as pickled; whether the work folder is bitwise the one of the
single-process run. From the single-process run's stages it splits the wall time into the part the
executor spreads (patches, traces, density control's per-view passes, view maps) and the rest (scene
and mask loading, the association and merge tree, writing), and projects the wall time on more
workers (Amdahl: rest + spread / workers + the measured start-up of the cluster).
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
from pathlib import Path

import numpy as np

SPREAD_STAGES = ("patches", "git", "density", "blocks", "view_maps")  # run on the executor (some driver work inside)


def _measured(item, fn, *shared):
    """``fn(item, *shared)`` and what it cost this worker: (result, pid, CPU s, peak RSS MB)."""
    t = time.process_time()
    result = fn(item, *shared)
    return result, os.getpid(), time.process_time() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class MeasuringExecutor:
    """Wraps an executor: each task reports its worker, CPU time and peak memory; the bytes each map
    sends (shared values once, items each) and receives are counted as pickled."""

    def __init__(self, inner):
        self.inner = inner
        self.cpu: dict[int, float] = {}
        self.peak_mb: dict[int, float] = {}
        self.bytes_out = 0
        self.bytes_in = 0
        self.tasks = 0

    def map(self, fn, items, *shared):
        items = list(items)
        self.bytes_out += sum(len(pickle.dumps(s, protocol=5)) for s in shared)
        self.bytes_out += sum(len(pickle.dumps(i, protocol=5)) for i in items)
        for i, (result, pid, cpu, peak) in self.inner.map(_measured, items, fn, *shared):
            self.cpu[pid] = self.cpu.get(pid, 0.0) + cpu
            self.peak_mb[pid] = max(self.peak_mb.get(pid, 0.0), peak)
            self.bytes_in += len(pickle.dumps(result, protocol=5))
            self.tasks += 1
            yield i, result


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
    from ..pipeline.distributed import RayExecutor

    def once(out: Path, executor=None) -> tuple[dict, float, float]:
        options = prep.PrepareOptions(dataset, out, method=method, force=True, blocks=blocks)
        t, c = time.perf_counter(), time.process_time()
        manifest = prep.prepare(options, log=lambda *a: None, executor=executor)
        return manifest, time.perf_counter() - t, time.process_time() - c

    rows = []
    ref_out = root / "single"
    manifest, wall, cpu = once(ref_out)
    ref = {"run": "single process", "wall_s": wall, "cpu_s": cpu, "stages": manifest["stages"],
           "gaussians": manifest["gaussians"], "views": len(manifest["views"]),
           "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    rows.append(ref)
    say(f"single process: {wall:.1f} s wall, {cpu:.1f} s CPU; stages "
        + ", ".join(f"{k} {v:.1f}" for k, v in manifest["stages"].items() if not k.startswith("git_")))
    for w in workers:
        t = time.perf_counter()
        ray.init(num_cpus=w, include_dashboard=False, log_to_driver=False, object_store_memory=512 * 2**20)
        started = time.perf_counter() - t
        try:
            measuring = MeasuringExecutor(RayExecutor())
            list(measuring.map(_noop, range(w)))  # start (and import gs_core in) every worker first
            measuring = MeasuringExecutor(RayExecutor())
            out = root / f"ray_{w}"
            manifest, wall, cpu = once(out, measuring)
        finally:
            ray.shutdown()
        row = {"run": f"ray, {w} worker{'s' if w > 1 else ''}", "workers": w, "wall_s": wall, "cluster_start_s": started,
               "driver_cpu_s": cpu, "worker_cpu_s": sorted(measuring.cpu.values(), reverse=True),
               "worker_peak_rss_mb": sorted(measuring.peak_mb.values(), reverse=True), "tasks": measuring.tasks,
               "bytes_to_workers": measuring.bytes_out, "bytes_from_workers": measuring.bytes_in,
               "same_as_single": _same_work(ref_out, out), "stages": manifest["stages"]}
        rows.append(row)
        say(f"{row['run']}: {wall:.1f} s wall ({ref['wall_s'] / wall:.2f}x the single process; cluster start "
            f"{started:.1f} s not included), worker CPU {', '.join(f'{c:.1f}' for c in row['worker_cpu_s'])} s, "
            f"worker peak RSS {', '.join(f'{m:.0f}' for m in row['worker_peak_rss_mb'])} MB, "
            f"{measuring.tasks} tasks, {measuring.bytes_out / 2**20:.1f} MB to / {measuring.bytes_in / 2**20:.1f} MB "
            f"from workers, same work folder: {row['same_as_single']}")
    spread = sum(v for k, v in ref["stages"].items() if k in SPREAD_STAGES)
    rest = max(ref["wall_s"] - spread, 0.0)
    overhead = [r["wall_s"] - (rest + spread / r["workers"]) for r in rows[1:]]
    per_run = float(np.mean(overhead)) if overhead else 0.0
    projection = {n: rest + spread / n + max(per_run, 0.0) for n in (1, 2, 8, 32, 128)}
    say(f"single process: {spread:.1f} s in the spread stages, {rest:.1f} s in the rest; measured Ray overhead "
        f"per run {per_run:.1f} s")
    say("projected wall: " + ", ".join(f"{n} workers {s:.1f} s" for n, s in projection.items()))
    # the same from CPU seconds, which a machine shared with other jobs disturbs less than wall time:
    # the driver's CPU (association, reductions, I/O) stays, the workers' divides
    first = rows[1] if len(rows) > 1 else None
    cpu_projection = {}
    if first is not None:
        cpu_projection = {n: first["driver_cpu_s"] + sum(first["worker_cpu_s"]) / n for n in (1, 2, 8, 32, 128)}
        say("projected from CPU seconds (driver + workers / n): "
            + ", ".join(f"{n} workers {s:.1f} s" for n, s in cpu_projection.items()))
    return {"dataset": str(dataset), "method": method, "blocks": blocks, "runs": rows, "spread_s": spread,
            "rest_s": rest, "overhead_s": per_run, "projected_wall_s": projection,
            "projected_from_cpu_s": cpu_projection}


def _noop(item):
    import gs_core.methods.trace3d.git  # noqa: F401  (the imports a real task pays once per worker)

    return item


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", default="medium", choices=["tiny", "small", "medium", "large"],
                        help="the synthetic room (large: ~300k splats, 200 views)")
    parser.add_argument("--layout", default="room", choices=["room", "tabletop"])
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

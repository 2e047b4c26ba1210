"""``gs-core bench git``: Gaussian Instance Tracing over many views against forward rendering.

A synthetic cloud of N Gaussians seen by V cameras on a ring, each view cut into patches (Voronoi
cells of random seeds, as a SAM mask stack flattens to). Measured in one process: the label traces
of all views (GIT) against base-colour renders of the same views (projection excluded from both;
wall and CPU time, the two alternating which runs first), the GIT store's bytes per visible
(Gaussian, view) pair, and peak memory. The store is streamed:
only the sparse per-view results are kept.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def _cloud(n: int, rng: np.random.Generator):
    from ..engine import Gaussians
    import torch

    means = rng.uniform(-1, 1, (n, 3)).astype(np.float32)
    quats = rng.normal(size=(n, 4)).astype(np.float32)
    quats /= np.linalg.norm(quats, axis=1, keepdims=True)
    scales = np.exp(rng.uniform(np.log(0.004), np.log(0.02), (n, 3))).astype(np.float32)
    opac = rng.uniform(0.3, 0.95, n).astype(np.float32)
    t = torch.from_numpy
    return Gaussians(t(means), t(quats), t(scales), t(opac))


def _patch_map(height: int, width: int, regions: int, rng: np.random.Generator) -> np.ndarray:
    """[H, W] int32: the Voronoi cell of each pixel centre (a k-d tree, not an [H, W, regions]
    distance array, which at 640x480 alone took 150 MB and would count in the peak memory)."""
    from scipy.spatial import cKDTree

    seeds = rng.uniform(0, 1, (regions, 2)) * [width, height]
    ys, xs = np.mgrid[:height, :width] + 0.5
    _, cell = cKDTree(seeds).query(np.stack([xs.ravel(), ys.ravel()], 1))
    return cell.reshape(height, width).astype(np.int32)


def run_bench(n: int, views: int, width: int, height: int, regions: int, backend: str = "auto", say=print,
              breakdown: bool = False) -> dict:
    """GIT and renders of ``views`` views; ``breakdown`` also times the label trace alone (the
    kernel; ``trace_view`` = it + the visibility selection and conversion to the store)."""
    import torch

    from ..camera import Camera
    from ..engine import project, render, trace
    from ..methods.trace3d import GITStore, InstancePatches, trace_view
    from ..methods.trace3d.git import DEFAULT_TOP_K
    from .memory import peak_rss_mb

    rng = np.random.default_rng(0)
    gaussians = _cloud(n, rng)
    colors = torch.rand(n, 3)
    store = GITStore(n)
    wall: dict[str, float] = {"project": 0.0, "render": 0.0, "git": 0.0, "kernel": 0.0}
    cpu = dict(wall)  # CPU seconds of this process: less sensitive than wall time to a shared machine

    def timed(name, fn):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        wall[name] += time.perf_counter() - t0
        cpu[name] += time.process_time() - c0
        return out

    for k in range(views):
        a = 2 * np.pi * k / views
        eye = [3.0 * np.cos(a), 3.0 * np.sin(a), 0.6 + 0.3 * np.sin(3 * a)]
        cam = Camera.look_at(eye, [0, 0, 0], fov_x_deg=60, width=width, height=height, name=f"v{k}")
        pm = _patch_map(height, width, regions, rng)
        patches = InstancePatches(pm, np.eye(regions, dtype=bool), np.bincount(pm.ravel(), minlength=regions),
                                  np.arange(regions))
        proj = timed("project", lambda: project(gaussians, cam))
        steps = [lambda: timed("render", lambda: render(proj, colors, backend=backend)),
                 lambda: store.add(timed("git", lambda: trace_view(proj, patches, backend=backend)))]
        for step in steps if k % 2 == 0 else steps[::-1]:  # alternate which runs first on the fresh projection
            step()
        if breakdown:  # the same trace trace_view runs, alone
            lab = torch.from_numpy(pm)
            timed("kernel", lambda: trace(proj, lab, top_k=DEFAULT_TOP_K + 1, sparse=True, backend=backend))
        if (k + 1) % max(1, views // 10) == 0:
            say(f"view {k + 1}/{views}: GIT {wall['git']:.1f} s, render {wall['render']:.1f} s, "
                f"store {store.nbytes / 2**20:.0f} MB, peak resident {peak_rss_mb():.0f} MB")
    pairs = store.visible_pairs
    return {"gaussians": n, "views": views, "size": f"{width}x{height}", "regions": regions,
            "git_s": wall["git"], "render_s": wall["render"], "project_s": wall["project"],
            "ratio": wall["git"] / max(wall["render"], 1e-9),
            "git_cpu_s": cpu["git"], "render_cpu_s": cpu["render"], "ratio_cpu": cpu["git"] / max(cpu["render"], 1e-9),
            "kernel_s": wall["kernel"] if breakdown else None, "kernel_cpu_s": cpu["kernel"] if breakdown else None,
            "visible_pairs": pairs, "store_mb": store.nbytes / 2**20, "bytes_per_pair": store.nbytes / max(pairs, 1),
            "peak_rss_mb": peak_rss_mb()}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..preflight import positive_int

    parser.add_argument("--gaussians", type=positive_int, default=200_000, help="Gaussians in the cloud")
    parser.add_argument("--views", type=positive_int, default=30, help="cameras on a ring")
    parser.add_argument("--width", type=positive_int, default=640)
    parser.add_argument("--height", type=positive_int, default=480)
    parser.add_argument("--regions", type=positive_int, default=64, help="patches per view")
    parser.add_argument("--backend", default="auto", choices=["auto", "torch", "cpu", "gsplat"])
    parser.add_argument("--breakdown", action="store_true",
                        help="also time the label trace alone (one more trace per view, not counted in GIT)")


def run(args: argparse.Namespace) -> int:
    r = run_bench(args.gaussians, args.views, args.width, args.height, args.regions, args.backend,
                  breakdown=args.breakdown)
    print(f"{r['gaussians']:,} Gaussians x {r['views']} views at {r['size']}, {r['regions']} patches per view")
    print(f"GIT (label traces) {r['git_s']:.2f} s vs forward render {r['render_s']:.2f} s: ratio {r['ratio']:.2f} "
          f"(projection {r['project_s']:.2f} s, shared, not counted); CPU time {r['git_cpu_s']:.2f} s vs "
          f"{r['render_cpu_s']:.2f} s: ratio {r['ratio_cpu']:.2f}")
    if r["kernel_s"] is not None:
        views = r["views"]
        for what, key in (("wall", "_s"), ("CPU", "_cpu_s")):
            kern, git, ren = r["kernel" + key], r["git" + key], r["render" + key]
            print(f"per view ({what}): label trace {1e3 * kern / views:.1f} ms + selection and store "
                  f"{1e3 * (git - kern) / views:.1f} ms; render {1e3 * ren / views:.1f} ms "
                  f"(label trace alone / render: {kern / max(ren, 1e-9):.2f})")
    print(f"store {r['store_mb']:.0f} MB for {r['visible_pairs']:,} visible (Gaussian, view) pairs: "
          f"{r['bytes_per_pair']:.1f} bytes per pair; peak resident memory {r['peak_rss_mb']:.0f} MB")
    return 0

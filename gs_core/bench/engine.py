"""``gs-core bench engine``: render/trace speed per backend, measured against the torch reference.

Scenes: the real *garden* COLMAP points (``shared/data/garden_points_3cams.npz``) with Gaussian
attributes made as gsplat's ``_helper.load_test_data`` makes them (crop to [-2, 2]^3, scales
U(0, 0.02), random rotations, opacities U(0, 1)) at the cameras' full 648x420, and a synthetic
scene of 1M random Gaussians. Per backend and operation: ms per frame, Gaussian-pixel evaluations
per second (the upper bound sum over tiles of pixels x Gaussians, as DESIGN.md counts them), peak
extra resident memory, and the speed-up over ``torch``.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ..camera import Camera
from ..engine import Gaussians, project, render, trace

GARDEN = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "garden_points_3cams.npz"


@dataclass
class Row:
    scene: str
    backend: str
    op: str
    ms: float
    evals_per_s: float
    peak_mb: float
    speedup: float | None = None


def garden_scene(path: Path, seed: int = 0) -> tuple[Gaussians, Tensor, list[Camera]]:  # noqa: F821
    """Garden points with gsplat's test attributes; returns (gaussians, colours [N, 3], cameras)."""
    data = np.load(path)
    means = torch.from_numpy(data["means3d"]).float()
    colors = torch.from_numpy(data["colors"] / 255.0).float()
    sel = ((means >= -2) & (means <= 2)).all(dim=-1)
    means, colors = means[sel], colors[sel]
    gen = torch.Generator().manual_seed(seed)
    n = means.shape[0]
    g = Gaussians(means=means, quats=torch.nn.functional.normalize(torch.randn(n, 4, generator=gen), dim=-1),
                  scales=torch.rand(n, 3, generator=gen) * 0.02, opacities=torch.rand(n, generator=gen))
    width, height = int(data["width"]), int(data["height"])
    cams = []
    for i, (vm, K) in enumerate(zip(data["viewmats"], data["Ks"])):
        cams.append(Camera(fx=float(K[0, 0]), fy=float(K[1, 1]), cx=float(K[0, 2]), cy=float(K[1, 2]),
                           width=width, height=height, world_to_camera=vm.astype(np.float64), name=f"garden{i}"))
    return g, colors, cams


def random_scene(count: int, seed: int = 0, width: int = 1280, height: int = 720):
    """``count`` random Gaussians in a 4 m box seen by one camera 6 m away."""
    gen = torch.Generator().manual_seed(seed)
    means = (torch.rand(count, 3, generator=gen) - 0.5) * 4.0
    g = Gaussians(means=means, quats=torch.nn.functional.normalize(torch.randn(count, 4, generator=gen), dim=-1),
                  scales=torch.exp(torch.randn(count, 3, generator=gen) * 0.5 - 4.5),
                  opacities=torch.rand(count, generator=gen))
    cam = Camera.look_at([0.0, -6.0, 1.0], [0.0, 0.0, 0.0], fov_x_deg=50, width=width, height=height, name="box")
    return g, torch.rand(count, 3, generator=gen), [cam]


class PeakRSS:
    """Peak resident memory above the level at entry, sampled every 2 ms from /proc."""

    def __enter__(self):
        self.base = self.peak = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())

    def _run(self):
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, self._rss())

    @staticmethod
    def _rss() -> int:
        try:
            with open("/proc/self/statm") as fh:
                return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:
            return 0

    @property
    def extra_mb(self) -> float:
        return (self.peak - self.base) / 2**20


def tile_evaluations(proj) -> int:
    """Upper bound on Gaussian-pixel evaluations of a full frame: sum_t pixels(t) * Gaussians(t)."""
    ts = proj.tile_size
    per_tile = (proj.tile_offsets[1:] - proj.tile_offsets[:-1]).reshape(proj.tiles_y, proj.tiles_x)
    w = torch.full((proj.tiles_x,), ts)
    w[-1] = proj.width - ts * (proj.tiles_x - 1)
    h = torch.full((proj.tiles_y,), ts)
    h[-1] = proj.height - ts * (proj.tiles_y - 1)
    return int((per_tile * h[:, None] * w[None, :]).sum())


def region_labels(height: int, width: int, regions: int, seed: int = 0) -> torch.Tensor:  # -> [H, W]
    """A Voronoi label map with ``regions`` cells, standing in for SAM patches."""
    gen = torch.Generator().manual_seed(seed)
    seeds = torch.rand(regions, 2, generator=gen) * torch.tensor([width, height])
    ys, xs = torch.meshgrid(torch.arange(height) + 0.5, torch.arange(width) + 0.5, indexing="ij")
    d = (xs[..., None] - seeds[:, 0]) ** 2 + (ys[..., None] - seeds[:, 1]) ** 2
    return d.argmin(-1).to(torch.int32)


def _time(fn, repeats: int) -> tuple[float, float]:
    best, peak = float("inf"), 0.0
    for _ in range(repeats):
        with PeakRSS() as mem:
            t0 = time.perf_counter()
            fn()
            dt = time.perf_counter() - t0
        best, peak = min(best, dt), max(peak, mem.extra_mb)
    return best, peak


def run_scene(name: str, gaussians: Gaussians, colors, cameras: list[Camera], backends: list[str],
              repeats: int, reference_cameras: int, progress=None) -> list[Row]:
    n = len(gaussians)
    gen = torch.Generator().manual_seed(1)
    feats = {3: colors, 16: torch.rand(n, 16, generator=gen), 512: torch.rand(n, 512, generator=gen)}
    rows: list[Row] = []
    for backend in backends:
        cams = cameras[:reference_cameras] if backend == "torch" else cameras
        reps = 1 if backend == "torch" else repeats
        totals: dict[str, list[float]] = {}
        for cam in cams:
            proj_time, peak = _time(lambda: project(gaussians, cam), reps)
            proj = project(gaussians, cam)
            evals = tile_evaluations(proj)
            labels = region_labels(cam.height, cam.width, 64)
            v16 = torch.rand(cam.height, cam.width, 16, generator=gen)
            ops = {
                "project": (lambda: None, 0),
                "render D=3": (lambda: render(proj, feats[3], backend=backend), evals),
                "render D=16": (lambda: render(proj, feats[16], backend=backend), evals),
                "render D=512": (lambda: render(proj, feats[512], backend=backend), evals),
                "trace labels": (lambda: trace(proj, labels, backend=backend), evals),
                "trace D=16": (lambda: trace(proj, v16, backend=backend), evals),
            }
            for op, (fn, ev) in ops.items():
                if op == "project":
                    dt, pk = proj_time, peak
                else:
                    dt, pk = _time(fn, reps)
                totals.setdefault(op, []).append((dt, ev, pk))
                if progress:
                    progress(f"{name} {backend} {cam.name} {op}: {dt * 1e3:.1f} ms")
        for op, vals in totals.items():
            ms = 1e3 * float(np.mean([v[0] for v in vals]))
            ev = float(np.mean([v[1] / v[0] for v in vals])) if vals[0][1] else 0.0
            rows.append(Row(name, backend, op, ms, ev, max(v[2] for v in vals)))
        if backend == "cpu":
            ms = {r.op: r.ms for r in rows if r.backend == "cpu" and r.scene == name}
            rows.append(Row(name, backend, "render D=3 + trace labels", ms["project"] + ms["render D=3"]
                            + ms["trace labels"], 0.0, 0.0))
    ref = {r.op: r.ms for r in rows if r.backend == "torch"}
    for r in rows:
        if r.backend != "torch" and r.op in ref:
            r.speedup = ref[r.op] / r.ms
    return rows


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--garden", type=Path, default=GARDEN, help="garden_points_3cams.npz")
    parser.add_argument("--count", type=int, default=1_000_000, help="Gaussians in the synthetic scene (0 = skip)")
    parser.add_argument("--backends", default="auto", help="comma list of torch,cpu,gsplat (auto: all that run here)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per op (best is kept; torch runs once)")
    parser.add_argument("--reference-cameras", type=int, default=1, help="cameras the slow torch reference runs on")
    parser.add_argument("--json", type=Path, help="write the rows as JSON here")


def run(args) -> int:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if args.backends == "auto":
        from ..engine import cpu_backend, gsplat_backend

        backends = ["torch"] + (["cpu"] if cpu_backend.available() else []) + (
            ["gsplat"] if torch.cuda.is_available() and gsplat_backend.available() else [])
    else:
        backends = args.backends.split(",")
    console.print(f"backends: {backends}; torch threads: {torch.get_num_threads()}")
    scenes = []
    if args.garden and args.garden.is_file():
        scenes.append(("garden",) + garden_scene(args.garden))
    else:
        console.print(f"[yellow]garden data not found at {args.garden}; skipping it[/]")
    if args.count:
        scenes.append((f"random {args.count // 1000}k",) + random_scene(args.count))
    rows: list[Row] = []
    with console.status("") as status:
        for name, g, colors, cams in scenes:
            if "gsplat" in backends:
                g, colors = g.to("cuda"), colors.to("cuda")
            console.print(f"{name}: {len(g)} Gaussians, {len(cams)} camera(s) at {cams[0].width}x{cams[0].height}")
            rows += run_scene(name, g, colors, cams, backends, args.repeats, args.reference_cameras,
                              progress=status.update)
    table = Table(title="engine: ms per frame (best of runs; torch runs once)")
    for col in ("scene", "backend", "op", "ms/frame", "Geval/s", "peak MB", "x torch"):
        table.add_column(col, justify="right" if col not in ("scene", "backend", "op") else "left")
    for r in rows:
        table.add_row(r.scene, r.backend, r.op, f"{r.ms:.1f}", f"{r.evals_per_s / 1e9:.2f}" if r.evals_per_s else "",
                      f"{r.peak_mb:.0f}" if r.peak_mb else "", f"{r.speedup:.1f}" if r.speedup else "")
    console.print(table)
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=1))
    return 0

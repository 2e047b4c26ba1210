"""``gs-core bench engine``: render/trace speed per backend, measured against the torch reference.

Scenes: the real *garden* COLMAP points (``gs_core/data/garden_points_3cams.npz``) with Gaussian
attributes made as gsplat's ``_helper.load_test_data`` makes them (crop to [-2, 2]^3, scales
U(0, 0.02), random rotations, opacities U(0, 1)) at the cameras' full 648x420, and a synthetic
scene of 1M random Gaussians. Per backend and operation: ms per frame, Gaussian-pixel evaluations
per second (the upper bound sum over tiles of pixels x Gaussians), peak extra resident memory, and
the speed-up over ``torch``. Backends run interleaved and medians count, so one slow run of the
reference does not move a ratio. ``--contended`` measures sharing the machine instead
(:mod:`gs_core.bench.contention`).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ..camera import Camera
from ..engine import Gaussians, project, render, trace
from .memory import PeakRSS
from .scenes import (GARDEN, PARAMS, forward_backward, garden_scene, random_scene, region_labels,  # noqa: F401
                     tile_evaluations)  # (re-exported)

@dataclass
class Row:
    scene: str
    backend: str
    op: str
    ms: float
    evals_per_s: float
    peak_mb: float
    speedup: float | None = None
    cpu_ms: float | None = None  # process CPU time (all threads): less sensitive than wall time to a loaded machine


def _time_once(fn) -> tuple[float, float]:
    """(seconds, peak extra resident MB) of one call."""
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
    return dt, mem.extra_mb


def run_scene(name: str, gaussians: Gaussians, colors, cameras: list[Camera], backends: list[str],
              repeats: int, reference_cameras: int, progress=None) -> list[Row]:
    """Time every op on every backend ``repeats`` times, interleaved (op by op, backends alternating
    which goes first), so a slow spell of the machine hits all backends alike. Per camera the median
    run counts; rows average the per-camera medians. The torch reference runs on the first
    ``reference_cameras`` cameras only, and speed-ups compare both backends on those cameras.
    ``project`` runs the native kernel on ``cpu`` and the torch reference on ``torch`` (and ``gsplat``)."""
    n = len(gaussians)
    gen = torch.Generator().manual_seed(1)
    feats = {3: colors, 16: torch.rand(n, 16, generator=gen), 512: torch.rand(n, 512, generator=gen)}
    per_cam: dict[tuple[str, str], list[tuple[float, float, float]]] = {}  # (backend, op) -> [(s, evals, MB)]
    for ci, cam in enumerate(cameras):
        cam_backends = [b for b in backends if b != "torch" or ci < reference_cameras]
        proj = project(gaussians, cam)
        evals = tile_evaluations(proj)
        labels = region_labels(cam.height, cam.width, 64)
        v16 = torch.rand(cam.height, cam.width, 16, generator=gen)
        ops = {
            "project": lambda b: project(gaussians, cam, backend=b),
            "render D=3": lambda b: render(proj, feats[3], backend=b),
            "render D=16": lambda b: render(proj, feats[16], backend=b),
            "render D=512": lambda b: render(proj, feats[512], backend=b),
            "trace labels": lambda b: trace(proj, labels, backend=b),
            "trace D=16": lambda b: trace(proj, v16, backend=b),
        }
        runs: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for r in range(repeats):
            for op, fn in ops.items():
                for b in (cam_backends if r % 2 == 0 else cam_backends[::-1]):
                    dt, mb = _time_once(lambda: fn(b))
                    runs.setdefault((b, op), []).append((dt, mb))
                    if progress:
                        progress(f"{name} {cam.name} run {r + 1}/{repeats} {b} {op}: {dt * 1e3:.1f} ms")
        for key, vals in runs.items():
            ev = 0 if key[1] == "project" else evals
            per_cam.setdefault(key, []).append((float(np.median([v[0] for v in vals])), ev,
                                                max(v[1] for v in vals)))
    rows: list[Row] = []
    for (backend, op), vals in per_cam.items():
        ms = 1e3 * float(np.mean([v[0] for v in vals]))
        ev = float(np.mean([v[1] / v[0] for v in vals])) if vals[0][1] else 0.0
        row = Row(name, backend, op, ms, ev, max(v[2] for v in vals))
        ref = per_cam.get(("torch", op))
        if backend != "torch" and ref:
            k = len(ref)  # the reference cameras come first
            row.speedup = float(np.mean([v[0] for v in ref]) / np.mean([v[0] for v in vals[:k]]))
        rows.append(row)
    if "cpu" in backends:
        ms = {r.op: r.ms for r in rows if r.backend == "cpu"}
        rows.append(Row(name, "cpu", "project + render D=3 + trace labels",
                        ms["project"] + ms["render D=3"] + ms["trace labels"], 0.0, 0.0))
    return rows


def band_pixels(cam: Camera, tile_rows: int, tile_size: int = 16):  # -> [P, 2] (x, y)
    """The pixels of ``tile_rows`` rows of tiles across the middle of the image."""
    y0 = (cam.height // tile_size // 2) * tile_size
    ys, xs = torch.meshgrid(torch.arange(y0, min(cam.height, y0 + tile_rows * tile_size)), torch.arange(cam.width),
                            indexing="ij")
    return torch.stack([xs.reshape(-1), ys.reshape(-1)], 1)


def _time_cpu(fn) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds of this process, peak extra resident MB) of one call."""
    with PeakRSS() as mem:
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
    return dt, dc, mem.extra_mb


def run_backward(name: str, gaussians: Gaussians, colors, cameras: list[Camera], backends: list[str], repeats: int,
                 band_rows: int, progress=None) -> list[Row]:
    """Forward + backward of every parameter per frame, against the forward alone (the same process,
    interleaved, medians) and, on a band of ``band_rows`` tile rows, against the torch reference
    (its autograd over a whole frame took over 10 minutes on a loaded 2-core machine; it runs once
    per camera). Speed-ups compare wall times; CPU times are beside them."""
    gen = torch.Generator().manual_seed(2)
    fast = [b for b in backends if b != "torch"]
    runs: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    for cam in cameras:
        full = torch.randn(cam.height, cam.width, 3, generator=gen)
        band = band_pixels(cam, band_rows)
        band_grad = torch.randn(band.shape[0], 3, generator=gen)
        ops = {"forward: project + render D=3": lambda b: _no_grad(lambda: render(project(gaussians, cam, backend=b),
                                                                                   colors, backend=b)),
               "forward + backward, all parameters": lambda b: forward_backward(gaussians, colors, cam, b, full),
               f"forward + backward, {band_rows} tile rows": lambda b: forward_backward(gaussians, colors, cam, b,
                                                                                         band_grad, band)}
        for r in range(repeats):
            for op, fn in ops.items():
                order = fast if r % 2 == 0 else fast[::-1]
                for b in order + (["torch"] if "torch" in backends and r == 0 and "tile rows" in op else []):
                    runs.setdefault((b, op), []).append(_time_cpu(lambda: fn(b)))
                    if progress:
                        progress(f"{name} {cam.name} run {r + 1}/{repeats} {b} {op}: {runs[(b, op)][-1][0] * 1e3:.0f} ms")
    rows = []
    for (backend, op), vals in runs.items():
        rows.append(Row(name, backend, op, 1e3 * float(np.median([v[0] for v in vals])), 0.0,
                        max(v[2] for v in vals), cpu_ms=1e3 * float(np.median([v[1] for v in vals]))))
    by = {(r.backend, r.op): r for r in rows}
    for r in rows:
        ref = by.get(("torch", r.op))
        if r.backend != "torch" and ref:
            r.speedup = ref.ms / r.ms
    return rows


def _no_grad(fn):
    with torch.no_grad():
        return fn()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..preflight import positive_int

    parser.add_argument("--garden", type=Path, default=GARDEN,
                        help="garden points file (default: the copy shipped in gs_core/data)")
    parser.add_argument("--count", type=int, default=1_000_000,
                        help="Gaussians in the synthetic scene; 0 skips it. Peak memory grows with it (the run "
                             "prints its peak; 1M with the torch reference was reported at 10.5 GB, the garden "
                             "scene alone peaked at 2.8 GB here): use --count 0 or a smaller scene on an 8 GB machine")
    parser.add_argument("--backends", default="auto", help="comma list of torch,cpu,gsplat (auto: all that run here)")
    parser.add_argument("--repeats", type=positive_int, default=3,
                        help="timed runs per op and backend, interleaved; the median counts")
    parser.add_argument("--reference-cameras", type=positive_int, default=1,
                        help="garden cameras the slow torch reference runs on")
    parser.add_argument("--json", type=Path, help="write the rows as JSON here")
    parser.add_argument("--band-rows", type=positive_int, default=2,
                        help="garden backward: tile rows the torch reference's forward + backward is compared on")
    parser.add_argument("--no-backward", action="store_true", help="skip the forward + backward rows (garden)")
    parser.add_argument("--contended", action="store_true",
                        help="instead: time the cpu backend quiet and beside a CPU-bound process it starts, "
                             "with passive and spinning OpenMP threads, and print the slow-down ratios")
    parser.add_argument("--rounds", type=positive_int, default=5,
                        help="with --contended: interleaved rounds (medians over rounds)")
    parser.add_argument("--isa", action="store_true",
                        help="instead: time the cpu ops of every prebuilt kernel variant this CPU runs (avx512, "
                             "avx2, portable) on the garden cameras (--reference-cameras of them), interleaved, "
                             "and print each variant's times and ratios to the widest")


def _backends(spec: str) -> list[str]:
    from ..engine import cpu_backend, gsplat_backend
    from ..errors import UserError

    if spec == "auto":
        return ["torch"] + (["cpu"] if cpu_backend.available() else []) + (
            ["gsplat"] if torch.cuda.is_available() and gsplat_backend.available() else [])
    backends = spec.split(",")
    for b in backends:
        if b not in ("torch", "cpu", "gsplat"):
            raise UserError(f"--backends: unknown backend {b!r}; choose from torch, cpu, gsplat")
        if b == "cpu" and not cpu_backend.available():
            raise UserError("--backends cpu: the native CPU kernels are not available here (see the warning above)")
        if b == "gsplat" and not (torch.cuda.is_available() and gsplat_backend.available()):
            raise UserError("--backends gsplat: needs an NVIDIA GPU with CUDA and the gsplat package")
    return backends


def run(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from ..errors import UserError

    console = Console()
    if args.count < 0:
        raise UserError(f"--count {args.count}: must be 0 (skip the synthetic scene) or more")
    if args.garden and not args.garden.is_file():
        raise UserError(f"--garden {args.garden}: no such file")
    if args.json:
        from ..preflight import check_output_path

        check_output_path(args.json, "--json")
    if args.contended:
        return _run_contended(args, console)
    if args.isa:
        return _run_isa(args, console)
    backends = _backends(args.backends)
    console.print(f"backends: {backends}; torch threads: {torch.get_num_threads()}; "
                  f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(libgomp default)')}")
    scenes = []
    if args.garden:
        scenes.append(("garden",) + garden_scene(args.garden))
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
            if name == "garden" and not args.no_backward:
                rows += run_backward(name, g, colors, cams[:args.reference_cameras], backends, args.repeats,
                                     args.band_rows, progress=status.update)
    table = Table(title=f"engine: ms per frame (median of {args.repeats} interleaved runs per backend)")
    for col in ("scene", "backend", "op", "ms/frame", "CPU ms", "Geval/s", "peak MB", "x torch"):
        table.add_column(col, justify="right" if col not in ("scene", "backend", "op") else "left")
    for r in rows:
        table.add_row(r.scene, r.backend, r.op, f"{r.ms:.1f}", f"{r.cpu_ms:.0f}" if r.cpu_ms else "",
                      f"{r.evals_per_s / 1e9:.2f}" if r.evals_per_s else "",
                      f"{r.peak_mb:.0f}" if r.peak_mb else "", f"{r.speedup:.1f}" if r.speedup else "")
    console.print(table)
    by = {(r.scene, r.backend, r.op): r for r in rows}
    for b in ("cpu", "gsplat"):
        fwd, both = by.get(("garden", b, "forward: project + render D=3")), by.get(
            ("garden", b, "forward + backward, all parameters"))
        if fwd and both:
            console.print(f"garden {b}: forward + backward of every parameter = {both.ms / fwd.ms:.2f}x the forward "
                          f"(wall), {both.cpu_ms / fwd.cpu_ms:.2f}x (CPU time); target <= 3x")
    if args.json:
        from ..io.atomic import write_text

        write_text(args.json, json.dumps([asdict(r) for r in rows], indent=1))
    return 0


def _run_contended(args, console) -> int:
    from . import contention
    from ..engine import cpu_backend
    from ..errors import UserError

    if not args.garden:
        raise UserError("--contended needs the garden points (--garden)")
    if not cpu_backend.available():
        raise UserError("--contended times the cpu backend, which is not available here")
    load = os.getloadavg()[0]
    console.print(f"load average before: {load:.2f} on {os.cpu_count()} CPUs"
                  + (" [yellow](not a quiet machine: the 'quiet' column includes that load)[/]" if load > 0.5 else ""))
    with console.status("") as status:
        medians = contention.measure(args.garden, rounds=args.rounds, progress=status.update)
    result = contention.report(medians, console)
    if args.json:
        from ..io.atomic import write_text

        write_text(args.json, json.dumps(result, indent=1))
    return 0


def _run_isa(args, console) -> int:
    from . import isa as isa_bench
    from ..engine import cpu_backend
    from ..errors import UserError

    if not args.garden:
        raise UserError("--isa needs the garden points (--garden)")
    variants = cpu_backend.prebuilt_variants()
    if not variants:
        raise UserError("--isa compares the prebuilt kernel variants, and none imports here (install with "
                        "./install.sh, or pip install --no-build-isolation, to build them)")
    missing = [v for v in cpu_backend.runnable_variants() if v not in variants]
    console.print(f"CPU: {isa_bench.cpu_name()}; variants: {', '.join(variants)}"
                  + (f" (not prebuilt or stale: {', '.join(missing)})" if missing else "")
                  + f"; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    with console.status("") as status:
        rows = isa_bench.measure(args.garden, variants, args.repeats, args.reference_cameras,
                                 backward=not args.no_backward, progress=status.update)
    result = isa_bench.report(rows, variants, console)
    if args.json:
        from ..io.atomic import write_text

        write_text(args.json, json.dumps(result, indent=1))
    return 0

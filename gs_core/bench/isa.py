"""``gs-core bench engine --isa``: the native kernels' instruction-set variants against each other.

Every prebuilt variant this CPU runs (``avx512``, ``avx2``, ``portable``; see
:mod:`gs_core.engine.isa`) times the same cpu ops on the garden cameras in one process: the
variant is switched between runs (:func:`gs_core.engine.cpu_backend.use`), runs interleave op by op
with the variants' order alternating, and medians count, so a slow spell of a shared machine hits
every variant alike. Ratios are against the widest variant. The targets (issue 24): AVX2 within
1.6x of AVX-512 and portable within 3x, per op and for a garden frame (project + render D=3 + label
trace), and on a CPU without AVX-512 a garden frame under 150 ms.
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

FRAME = ("project", "render D=3", "trace labels")
FRAME_OP = "garden frame (project + render D=3 + trace labels)"
TARGETS = {"avx2": 1.6, "portable": 3.0}  # at most this many times the avx512 variant's time
FRAME_TARGET_MS = 150.0  # a garden frame on a CPU without AVX-512


@dataclass
class IsaRow:
    variant: str
    op: str
    ms: float  # mean over cameras of the per-camera median
    cpu_ms: float  # the same, process CPU time (all threads)
    ratio: float | None = None  # ms / the widest variant's ms


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``; ``platform.processor()`` elsewhere)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith(("model name", "Model", "CPU part")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def measure(garden: Path, variants: list[str], repeats: int, cameras: int, backward: bool = True,
            progress=None) -> list[IsaRow]:
    """Time the cpu ops of every variant in ``variants`` on the first ``cameras`` garden cameras."""
    from ..engine import cpu_backend, project, render, trace
    from .scenes import forward_backward, garden_scene, region_labels

    g, colors, cams = garden_scene(garden)
    gen = torch.Generator().manual_seed(1)
    n = len(g)
    feats = {16: torch.rand(n, 16, generator=gen), 512: torch.rand(n, 512, generator=gen)}
    previous = cpu_backend.variant()
    runs: dict[tuple[str, str], list[list[tuple[float, float]]]] = {}  # (variant, op) -> per camera [(s, cpu s)]
    try:
        for cam in cams[:cameras]:
            cpu_backend.use(variants[0])
            proj = project(g, cam, backend="cpu")
            labels = region_labels(cam.height, cam.width, 64)
            v16 = torch.rand(cam.height, cam.width, 16, generator=gen)
            grad = torch.randn(cam.height, cam.width, 3, generator=gen)
            ops = {
                "project": lambda: project(g, cam, backend="cpu"),
                "render D=3": lambda: render(proj, colors, backend="cpu"),
                "render D=16": lambda: render(proj, feats[16], backend="cpu"),
                "render D=512": lambda: render(proj, feats[512], backend="cpu"),
                "trace labels": lambda: trace(proj, labels, backend="cpu"),
                "trace D=16": lambda: trace(proj, v16, backend="cpu"),
            }
            if backward:
                ops["forward + backward, all parameters"] = lambda: forward_backward(g, colors, cam, "cpu", grad)
            for key in ((v, op) for v in variants for op in ops):
                runs.setdefault(key, []).append([])
            for r in range(repeats):
                for op, fn in ops.items():
                    for v in (variants if r % 2 == 0 else variants[::-1]):
                        cpu_backend.use(v)
                        t0, c0 = time.perf_counter(), time.process_time()
                        fn()
                        dt, dc = time.perf_counter() - t0, time.process_time() - c0
                        runs[(v, op)][-1].append((dt, dc))
                        if progress:
                            progress(f"{cam.name} run {r + 1}/{repeats} {v} {op}: {dt * 1e3:.1f} ms")
    finally:
        cpu_backend.use(previous if previous in cpu_backend.isa.VARIANTS else None)
    rows = []
    for (v, op), per_cam in runs.items():
        rows.append(IsaRow(v, op, 1e3 * float(np.mean([np.median([t for t, _ in c]) for c in per_cam])),
                           1e3 * float(np.mean([np.median([t for _, t in c]) for c in per_cam]))))
    for v in variants:
        mine = {r.op: r for r in rows if r.variant == v}
        rows.append(IsaRow(v, FRAME_OP, sum(mine[op].ms for op in FRAME), sum(mine[op].cpu_ms for op in FRAME)))
    widest = {r.op: r.ms for r in rows if r.variant == variants[0]}
    for r in rows:
        r.ratio = r.ms / widest[r.op]
    return rows


def report(rows: list[IsaRow], variants: list[str], console) -> dict:
    """Print the table (ms per variant, ratios to the widest) and the targets; returns a JSON-able dict."""
    from rich.table import Table

    from ..engine import cpu_backend

    widest = variants[0]
    table = Table(title=f"kernel variants on {cpu_name()}: ms per garden frame (medians, interleaved); "
                        f"x = times the {widest} variant")
    table.add_column("op")
    for v in variants:
        table.add_column(f"{v} ms", justify="right")
        if v != widest:
            table.add_column(f"x {widest}", justify="right")
    by = {(r.variant, r.op): r for r in rows}
    for op in dict.fromkeys(r.op for r in rows):
        cells = []
        for v in variants:
            r = by[(v, op)]
            cells.append(f"{r.ms:.1f}")
            if v != widest:
                cells.append(f"{r.ratio:.2f}")
        table.add_row(op, *cells)
    console.print(table)
    info = {v: {"vector_width": getattr(cpu_backend.prebuilt(v), "vector_width", None),
                "fused_madd": getattr(cpu_backend.prebuilt(v), "fused_madd", None)} for v in variants}
    console.print("vector widths (floats): " + ", ".join(f"{v} {i['vector_width']}" for v, i in info.items()))
    if widest == "avx512":
        for v, limit in TARGETS.items():
            if v in variants:
                worst = max((r for r in rows if r.variant == v), key=lambda r: r.ratio)
                console.print(f"{v}: at most {worst.ratio:.2f}x avx512 ({worst.op}); target <= {limit}x: "
                              + ("met" if worst.ratio <= limit else "[red]not met[/]"))
    else:
        console.print(f"no AVX-512 here ({widest} is the widest variant): the avx2 <= 1.6x and portable <= 3x "
                      "targets need an AVX-512 CPU to measure")
    console.print("garden frame: " + ", ".join(f"{v} {by[(v, FRAME_OP)].ms:.1f} ms" for v in variants))
    if widest != "avx512" and "avx2" in variants:
        ms = by[("avx2", FRAME_OP)].ms
        console.print(f"avx2 garden frame on this CPU without AVX-512: {ms:.1f} ms; target < {FRAME_TARGET_MS:.0f} ms: "
                      + ("met" if ms < FRAME_TARGET_MS else "[red]not met[/]"))
    return {"cpu": cpu_name(), "variants": info,
            "rows": [{"variant": r.variant, "op": r.op, "ms": r.ms, "cpu_ms": r.cpu_ms, "ratio": r.ratio}
                     for r in rows]}

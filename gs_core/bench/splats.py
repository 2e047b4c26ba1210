"""``gs-core bench splats``: what drawing splats costs in Blender, per frame, on this machine's CPU.

The viewport (``blender_addon/splat_draw.py``) runs its per-splat math on the GPU; the CPU's share is
the first frame (reading the splats and packing the shader's texture, :func:`splat_display.pack_splats`)
and per new view the back-to-front sort (:func:`splat_display.view_depths` and ``draw_order``; while
the view keeps moving and that is slow, the 16-bit ``coarse_draw_order``). The alternative the issue
names, a draw handler showing images the backend's engine renders for the viewport camera, is timed
beside it in the same process: the native engine's project + render of the same view at the same size. The final render (F12) is the engine's layer per frame
(:func:`gs_core.render_layer.render_layer`) plus the add-on's side (the content key of each object,
and writing its file when it changed).

Scenes: N random Gaussians (SH degree 3) in a 4 m box, 6 m from the camera (``bench engine``'s
``random_scene``); a few cameras around it for the orbit. Each figure is the best of ``--repeats``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..preflight import positive_int

    parser.add_argument("--counts", type=positive_int, nargs="+", default=[100_000, 1_000_000],
                        help="splat counts (default 100k and 1M)")
    parser.add_argument("--repeats", type=positive_int, default=3, help="runs per figure; the best is reported")


def _best(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _scene(count: int, seed: int = 0):
    from ..splat_view import ObjectSplats
    from .engine import random_scene

    g, _, _ = random_scene(count, seed)
    rng = np.random.default_rng(seed)
    sh = (0.3 * rng.standard_normal((count, 16, 3))).astype(np.float32)
    return ObjectSplats(g.means.numpy(), g.quats.numpy(), g.scales.numpy(), g.opacities.numpy(), sh, np.eye(4))


def _orbit(width: int, height: int, views: int = 6):
    from ..camera import Camera

    angles = np.linspace(0, 2 * np.pi, views, endpoint=False)
    return [Camera.look_at([6 * np.sin(a), -6 * np.cos(a), 1.0], [0, 0, 0], fov_x_deg=50, width=width,
                           height=height, name=f"orbit{i}") for i, a in enumerate(angles)]


def run(args) -> int:
    import torch
    from rich.console import Console
    from rich.table import Table

    from .. import render_layer, splat_view
    from ..blender_host import import_addon
    from ..engine import project, render

    import_addon("bench splats", with_bpy=False)
    from blender_addon import splat_display

    console = Console(width=120)
    table = Table(title=f"splat drawing, CPU work per frame in ms (best of {args.repeats}); viewport 1280x720, "
                        "final render 1920x1080")
    for col in ("splats", "pack (1st frame)", "sort (still)", "coarse (moving)", "engine image", "engine / sort",
                "F12 layer", "key / write"):
        table.add_column(col, justify="right")
    for count in args.counts:
        obj = _scene(count)
        cams = _orbit(1280, 720)
        pack = _best(lambda: splat_display.pack_splats([obj]), args.repeats)
        views = iter(cams * (args.repeats + 1))
        sort = _best(lambda: splat_display.draw_order(splat_display.view_depths([obj], next(views).world_to_camera)),
                     args.repeats)
        views = iter(cams * (args.repeats + 1))
        coarse = _best(lambda: splat_display.coarse_draw_order(
            splat_display.view_depths([obj], next(views).world_to_camera)), args.repeats)
        g = render_layer.world_gaussians([obj])
        colors = torch.rand(count, 3)

        def engine_frame():
            with torch.no_grad():
                render(project(g, cams[1]), colors)

        engine = _best(engine_frame, args.repeats)
        final_cam = _orbit(1920, 1080, 1)[0]
        layer = _best(lambda: render_layer.render_layer([obj], final_cam), args.repeats)
        key = _best(lambda: splat_display.content_key(obj), args.repeats)
        with tempfile.TemporaryDirectory() as tmp:
            write = _best(lambda: splat_view.save_splats(Path(tmp) / "o.npz", obj), args.repeats)
        table.add_row(f"{count:,}", f"{pack * 1e3:.0f}", f"{sort * 1e3:.0f}", f"{coarse * 1e3:.0f}",
                      f"{engine * 1e3:.0f}",
                      f"{engine / sort:.0f}x", f"{layer * 1e3:.0f}", f"{key * 1e3:.0f} / {write * 1e3:.0f}")
    console.print(table)
    console.print("first frame: the viewport's texture packing (object-space covariances, SH) once per change of "
                  "the splats; sort: the exact depth order per new view; coarse: the 16-bit order drawn while "
                  "the view moves and the exact sort is slow; engine image: what a backend-rendered "
                  "viewport would cost per view instead (native engine, project + render). The GPU's own draw "
                  "time is not measured here (no GPU drawing without a display).", highlight=False)
    return 0

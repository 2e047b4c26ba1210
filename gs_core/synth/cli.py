"""``gs-core synth``: write one synthetic dataset (scene.ply, COLMAP, images, masks, gt)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..preflight import non_negative_float
    from .world import LAYOUTS, SIZES

    parser.add_argument("--out", type=Path, required=True, help="dataset folder to write")
    parser.add_argument("--layout", default="room", choices=LAYOUTS, help="scene layout (default: room)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the scene and its masks (default: 0)")
    parser.add_argument("--size", default="small", choices=list(SIZES),
                        help="density, resolution, views (default: small)")
    parser.add_argument("--noise", type=non_negative_float, default=1.0,
                        help="mask noise: 0 = clean, 1 = typical SAM (default: 1)")
    parser.add_argument("--kind", default="3dgs", choices=["3dgs", "2dgs"],
                        help="splat kind written to scene.ply (default: 3dgs)")
    parser.add_argument("--hard-cases", action="store_true",
                        help="put the hard cases on the table (touching look-alikes, containers with contents, "
                             "thin long things, stacks) and give the masks their failures on them")
    parser.add_argument("--backend", default="auto", choices=["auto", "torch", "cpu", "gsplat"],
                        help="engine backend for rendering the views (default: auto)")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import Progress

    from ..preflight import check_output_dir
    from .masks import MaskNoise
    from .views import render_views
    from .world import SynthConfig, make_world
    from .writer import write_dataset

    console = Console()
    check_output_dir(args.out, "--out")
    t0 = time.perf_counter()
    config = SynthConfig.sized(args.size, layout=args.layout, seed=args.seed, kind=args.kind,
                                hard_cases=args.hard_cases)
    world = make_world(config)
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("rendering views", total=len(world.cameras))
        views = render_views(world, world.cameras, backend=args.backend, progress=lambda: progress.advance(task))
    write_dataset(args.out, world, views, MaskNoise.level(args.noise, hard=args.hard_cases))
    h = world.hierarchy
    console.print(f"{args.out}: {len(world.scene)} {config.kind.upper()} splats "
                  f"({int((~world.labels.clean).sum())} artefacts), {len(h.objects)} objects, {len(h.parts)} parts, "
                  f"{len(h.groups)} groups, {len(world.train_cameras)} train + {len(world.test_cameras)} test views "
                  f"at {config.width}x{config.height}, mask noise {args.noise:g}, {time.perf_counter() - t0:.1f} s")
    return 0

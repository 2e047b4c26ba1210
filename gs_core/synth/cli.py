"""``gs-core synth``: write one synthetic dataset (scene.ply, COLMAP, images, masks, gt)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..preflight import non_negative_float
    from .world import LAYOUTS, SIZES

    parser.add_argument("--out", type=Path, required=True, help="dataset folder to write")
    parser.add_argument("--layout", default="room", choices=[*LAYOUTS, "city"],
                        help="scene layout (default: room); city: streets and buildings, --size tiny or xl")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the scene and its masks (default: 0)")
    parser.add_argument("--size", default="small", choices=[*SIZES, "xl"],
                        help="density, resolution, views (default: small); xl: the city (2M+ splats, 1,000+ views)")
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
    if args.size == "xl" or args.layout == "city":
        return _city(args, console)
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


def _city(args: argparse.Namespace, console) -> int:
    """``--size xl`` / ``--layout city``: the city, written view by view (:mod:`gs_core.synth.city`)."""
    from dataclasses import replace

    from rich.progress import Progress

    from ..errors import UserError
    from .city import CITY_SIZES, build_city
    from .masks import MaskNoise

    if args.size not in CITY_SIZES:
        raise UserError(f"--layout city: --size is one of {', '.join(CITY_SIZES)}, not {args.size}")
    if args.kind != "3dgs" or args.hard_cases:
        raise UserError("the city is written as 3DGS splats without hard cases (drop --kind / --hard-cases)")
    t0 = time.perf_counter()
    config = replace(CITY_SIZES[args.size], seed=args.seed)
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("rendering views", total=config.n_train + config.n_test)
        world = build_city(args.out, config, MaskNoise.level(args.noise), backend=args.backend,
                           progress=lambda: progress.advance(task))
    console.print(f"{args.out}: a city of {len(world.scene)} 3DGS splats, {len(world.hierarchy.objects)} objects, "
                  f"{len(world.hierarchy.parts)} parts, {len(world.train_cameras)} train + {len(world.test_cameras)} "
                  f"test views at {config.width}x{config.height}, mask noise {args.noise:g}, "
                  f"{time.perf_counter() - t0:.1f} s")
    return 0

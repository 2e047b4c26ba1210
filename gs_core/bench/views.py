"""``gs-core bench views``: what fewer mask views cost (issue 12 item 2), and segmenting from virtual
views when only the splat file exists (item 6), on the synthetic world.

Per scene and noise level: a method (default ``git-consistent``) runs on covering subsets of the
training views (:func:`gs_core.viewselect.covering_views`, N of the 12) and, separately, on virtual
views placed from the splats alone (:func:`gs_core.virtual_views.choose_virtual_views`); everything is
scored on the same held-out real views. The virtual views' masks come from the mask simulator run on
their ground truth (the same noise), so the comparison isolates camera placement; SAM on the
renders is what the real pipeline runs.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

DEFAULT_COUNTS = [12, 8, 6, 4, 3]


def run_bench(scenes: list[str], noise: float, counts: list[int], virtual: int, size: str, method: str,
              out: Path, say=print) -> list[dict]:
    from ..dataset import Dataset
    from ..synth import GroundTruth, MaskNoise, SynthConfig, make_world, render_views, write_dataset
    from ..viewselect import cover_radius, covering_views
    from ..virtual_views import VirtualViewConfig, choose_virtual_views
    from .methods import METHODS, MethodInput
    from .segmentation import Evaluation, parse_scene

    rows = []
    for spec in scenes:
        layout, seed = parse_scene(spec)
        world = make_world(SynthConfig.sized(size, layout=layout, seed=seed))
        cfg = world.config
        say(f"{spec}: rendering the real views")
        root = write_dataset(out / f"{layout}{seed}_real", world, render_views(world, world.cameras), MaskNoise.level(noise))
        ds, gt = Dataset.load(root), GroundTruth.load(root)
        ev = Evaluation.prepare(ds, gt)
        train_cams = [ds.cameras[v] for v in ev.train]
        for n in counts:
            if n > len(ev.train):
                continue
            pick = covering_views(train_cams, n)
            say(f"{spec}: {method} on {n} real views")
            t0 = time.perf_counter()
            result = METHODS[method](MethodInput(ds, [ev.train[k] for k in pick]))
            seconds = time.perf_counter() - t0
            rows.append({"scene": spec, "views": f"real {n}", "cover_radius": cover_radius(train_cams, pick),
                         **ev.score(result).metrics, "seconds": seconds})
        if virtual:
            say(f"{spec}: placing {virtual} virtual views from the splats alone")
            t0 = time.perf_counter()
            cams, stats = choose_virtual_views(world.scene, VirtualViewConfig(views=virtual, width=cfg.width,
                                               height=cfg.height, fov_x_deg=cfg.fov_x_deg))
            placing = time.perf_counter() - t0
            vworld = replace(world, train_cameras=cams)
            vroot = write_dataset(out / f"{layout}{seed}_virtual", vworld, render_views(vworld, vworld.cameras),
                                  MaskNoise.level(noise))
            vds, vgt = Dataset.load(vroot), GroundTruth.load(vroot)
            vev = Evaluation.prepare(vds, vgt)
            say(f"{spec}: {method} on {len(cams)} virtual views")
            t0 = time.perf_counter()
            result = METHODS[method](MethodInput(vds, vev.train))
            rows.append({"scene": spec, "views": f"virtual {len(cams)}", "placing_seconds": placing,
                         "placement": stats, **vev.score(result).metrics, "seconds": time.perf_counter() - t0})
    (out / "results.json").write_text(json.dumps(rows, indent=1, default=float))
    return rows


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..synth import SIZES

    parser.add_argument("--scenes", nargs="+", default=["tabletop:0", "room:0"], help="layout[:seed]")
    parser.add_argument("--noise", type=float, default=0.5, help="mask-noise level (0 clean, 1 typical SAM)")
    parser.add_argument("--counts", nargs="+", type=int, default=DEFAULT_COUNTS, help="numbers of real views to keep")
    parser.add_argument("--virtual", type=int, default=12, help="virtual views placed from the splats (0: none)")
    parser.add_argument("--size", default="small", choices=list(SIZES))
    parser.add_argument("--method", default="git-consistent")
    parser.add_argument("--out", type=Path, default=Path("bench_views"))


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from .methods import METHODS

    if args.method not in METHODS:
        from ..errors import UserError

        raise UserError(f"--method {args.method}: choose from {', '.join(METHODS)}")
    console = Console()
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with console.status("starting") as status:
        rows = run_bench(args.scenes, args.noise, args.counts, args.virtual, args.size, args.method, args.out,
                         say=status.update)
    table = Table(title=f"{args.method} vs mask views (noise {args.noise:g}), scored on the held-out real views")
    for title in ("scene", "views", "NV mIoU", "Ext mIoU", "Pan mIoU", "As mIoU", "time s"):
        table.add_column(title, justify="left" if title in ("scene", "views") else "right")
    for r in rows:
        cells = [f"{100 * r[k]:.1f}" if np.isfinite(r[k]) else "-" for k in ("nv_miou", "ext_miou", "pan_miou",
                                                                                "assoc_miou")]
        table.add_row(r["scene"], r["views"], *cells, f"{r['seconds']:.1f}")
    console.print(table)
    console.print(f"{time.perf_counter() - t0:.0f} s; rows in {args.out}/results.json")
    return 0

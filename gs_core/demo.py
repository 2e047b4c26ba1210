"""``gs-core demo``: the main job on the built-in sample.

Builds a small synthetic table-top dataset (splats with training artefacts, COLMAP cameras, images,
SAM-like masks, ground truth) in ``--out``, loads it back through :class:`~gs_core.dataset.Dataset`
as real data would be, runs the baseline methods (naive lifting; the ground-truth oracle for
reference), prints their scores, and writes a picture of the results and the extracted PLY of one
object.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

STEPS = ("generate", "render", "write", "load", "prepare", "naive", "oracle", "extract")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from .preflight import non_negative_float

    parser.add_argument("--out", type=Path, default=Path("gs_core_demo"),
                        help="output folder (default: gs_core_demo); a re-run clears only the files the "
                             "last demo run wrote there")
    parser.add_argument("--layout", default="tabletop", choices=["tabletop", "room"],
                        help="synthetic scene: objects on a table, or a furnished room (default: tabletop)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the scene and its masks (default: 0)")
    parser.add_argument("--noise", type=non_negative_float, default=1.0,
                        help="mask noise: 0 = clean, 1 = typical SAM (default: 1)")
    parser.add_argument("--size", default="small", choices=["tiny", "small", "medium"],
                        help="scene density, image size and number of views (default: small)")
    parser.add_argument("--backend", default="auto", choices=["auto", "torch", "cpu", "gsplat"],
                        help="engine backend: auto picks gsplat on an NVIDIA GPU, else the native cpu "
                             "kernels, else torch (default: auto)")


def _extract(out: Path, ev, labels) -> str:
    """Save the Gaussians the naive method selects for the largest queried table-top item."""
    import numpy as np

    from .bench.segmentation import select

    objects = ev.gt.hierarchy.objects
    items = [q for q in ev.queries if objects[q.object].support is not None] or ev.queries
    if not items:
        return "no object to extract"
    sizes = [int((ev.gt.gaussians.object == q.object).sum()) for q in items]
    query = items[int(np.argmax(sizes))]
    chosen = select(labels, query)
    path = out / f"{query.name}.ply"
    ev.dataset.load_scene().subset(chosen).save(path)
    return f"extracted {query.name} (naive lifting): {int(chosen.sum())} Gaussians -> {path}"


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from .outputs import OutputRecord
    from .preflight import check_output_dir

    console = Console()
    out = check_output_dir(args.out, "--out")
    record = OutputRecord(out, "demo")
    record.clear_previous()  # the last demo run's files, nothing else
    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=console) as bar:
            overall = bar.add_task("demo", total=len(STEPS))
            rows, extracted = _run(args, out, bar, overall)
    except KeyboardInterrupt:
        console.print(f"[yellow]demo cancelled[/]; partial output left in {out}")
        return 130
    finally:
        record.save()
    from .bench.segmentation import print_table

    print_table(rows, console)
    console.print(f"dataset in {out / 'dataset'}; picture {out / 'results.png'}")
    console.print(extracted)
    return 0


def _run(args, out: Path, bar, overall) -> tuple[list[dict], str]:
    from .bench.methods import MethodInput, naive_lifting, oracle
    from .bench.segmentation import Evaluation, figure
    from .dataset import Dataset
    from .synth import GroundTruth, MaskNoise, SynthConfig, make_world, render_views, write_dataset

    def step(name: str) -> None:
        bar.update(overall, description=name)

    t0 = time.perf_counter()
    step("generating the world")
    world = make_world(SynthConfig.sized(args.size, layout=args.layout, seed=args.seed))
    bar.advance(overall)
    step("rendering views")
    views_task = bar.add_task("  views", total=len(world.cameras))
    views = render_views(world, world.cameras, backend=args.backend,
                         progress=lambda: bar.advance(views_task))
    bar.advance(overall)
    step("writing the dataset")
    root = write_dataset(out / "dataset", world, views, MaskNoise.level(args.noise))
    bar.advance(overall)
    step("loading it back")
    ds, gt = Dataset.load(root), GroundTruth.load(root)
    bar.advance(overall)
    step("preparing the evaluation")
    ev = Evaluation.prepare(ds, gt, args.backend)
    bar.advance(overall)
    rows, scores, results = [], {}, {}
    for name, method in (("naive", naive_lifting), ("oracle", oracle)):
        step(f"running {name}")
        t = time.perf_counter()
        results[name] = method(MethodInput(ds, ev.train, args.backend))
        seconds = time.perf_counter() - t
        scores[name] = ev.score(results[name])
        rows.append({"scene": f"{args.layout}:{args.seed}", "noise": args.noise, "method": name,
                     **scores[name].metrics, "seconds": seconds})
        bar.advance(overall)
    step("extracting an object")
    figure(out / "results.png", ev, scores)
    extracted = _extract(out, ev, results["naive"].labels)
    bar.advance(overall)
    step(f"done in {time.perf_counter() - t0:.1f} s")
    return rows, extracted

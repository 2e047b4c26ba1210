"""``gs-core bench segmentation``: segmentation methods x synthetic scenes x mask-noise levels.

Per scene (``layout:seed``) the world is generated and rendered once; per noise level its dataset
is written (``<out>/data/<tag>/``, named by :func:`dataset_tag` with the size and kind,
as ``bench clicks`` names it; with ``--reuse-data DIR`` in DIR, where one written for the same world and noise
is kept, :func:`gs_core.synth.write_or_reuse`, so both commands share one DIR) and read back through :class:`Dataset`
like real data; every method in :data:`gs_core.eval.METHODS` runs on it and is scored on the held-out views
by the protocol of :mod:`gs_core.eval.protocol`. Output: a rich table, ``results.json``,
``results.md`` and one PNG per dataset (training view: image, masks, GT, each method's map; test
view: image, GT, each method's map).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..dataset import Dataset
from ..eval import COLUMNS, METHODS, Evaluation, MethodInput, Score
from ..synth import SIZES, GroundTruth, MaskNoise, SceneViews, SynthConfig, write_or_reuse
from ..synth.masks import KNOBS
from ..viz import label_colors, mask_overlay, panel, to_uint8

DEFAULT_SCENES = ["room:0", "room:1", "tabletop:0", "tabletop:1"]
DEFAULT_NOISE = [0.0, 0.5, 1.0]

# the training-free methods, seconds per scene; the trained ones (contrastive, proto-saga, iqgs,
# trace3d-retrain, ...) are named with --methods
DEFAULT_METHODS = ("oracle", "naive", "gaga", "git-consistent", "git-density", "trace3d", "closed-form")


def parse_scene(spec: str) -> tuple[str, int]:
    """``"room:3"`` -> ("room", 3); a bare layout means seed 0."""
    layout, _, seed = spec.partition(":")
    try:
        return layout, int(seed or 0)
    except ValueError:
        raise ValueError(f"scene {spec!r}: expected layout[:seed], e.g. room:3") from None


def dataset_tag(layout: str, seed: int, size: str, level: float, kind: str = "3dgs", hard_cases: bool = False) -> str:
    """The dataset's folder name under ``OUT/data`` (or ``--reuse-data``), ``bench clicks``' and this one's alike."""
    return f"{layout}{seed}{'_hard' if hard_cases else ''}_{size}{'' if kind == '3dgs' else '_' + kind}_n{level:g}"


# ---- the run ------------------------------------------------------------------------------------

@dataclass
class BenchConfig:
    methods: list[str] = field(default_factory=lambda: list(DEFAULT_METHODS))
    scenes: list[str] = field(default_factory=lambda: list(DEFAULT_SCENES))
    noise: list[float] = field(default_factory=lambda: list(DEFAULT_NOISE))
    size: str = "small"
    kind: str = "3dgs"
    backend: str = "auto"
    noise_only: list[str] | None = None  # keep only these MaskNoise knobs at each level (None: all)
    hard_cases: bool = False  # the hard cases on the table, and the masks' failures on them
    reuse_data: str | None = None  # datasets kept here when written for the same world and noise (None: OUT/data, anew)

    def mask_noise(self, level: float) -> MaskNoise:
        noise = MaskNoise.level(level, hard=self.hard_cases)
        return noise.only(*self.noise_only) if self.noise_only else noise

    def __post_init__(self):
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise ValueError(f"unknown methods {unknown}; available: {sorted(METHODS)}")
        for spec in self.scenes:
            parse_scene(spec)
        if self.noise_only:
            MaskNoise().only(*self.noise_only)  # raises on an unknown knob


def figure(path: Path, ev: Evaluation, scores: dict[str, Score]) -> None:
    """Training view: image, masks, GT, each method's map; first test view: image, GT, each method's map."""
    ds, v_train, v_test = ev.dataset, ev.train[0], ev.test[0]
    masks = ds.masks(v_train)
    image = ds.image(v_train)
    train_row = [("image " + ds.names[v_train], to_uint8(image)),
                 (f"masks ({0 if masks is None else len(masks)})",
                  mask_overlay(image, masks) if masks is not None else to_uint8(image)),
                 ("GT objects", label_colors(ev.gt_train[0]))]
    test_row = [("image " + ds.names[v_test], to_uint8(ds.image(v_test))), ("", np.zeros_like(train_row[0][1])),
                ("GT objects", label_colors(ev.gt_test[0]))]
    for name, s in scores.items():
        train_row.append((name, label_colors(s.train_map)))
        test_row.append((name, label_colors(s.test_map)))
    panel([train_row, test_row], path)


def run_bench(config: BenchConfig, out: Path, progress=None) -> dict:
    """Run the benchmark, write ``out``/results.json, results.md and PNGs; returns the results.

    ``results.json`` holds the config, per scene the generator config, splat count and
    generation+rendering time, per dataset the masks per view and the evaluation set-up time, and
    one row per (scene, noise, method) with every metric and the method's own time.
    ``progress(message)`` is called before each step.
    """
    out = Path(out)
    data = Path(config.reuse_data) if config.reuse_data is not None else out / "data"
    out.mkdir(parents=True, exist_ok=True)
    data.mkdir(parents=True, exist_ok=True)
    rows, scenes, datasets = [], [], []
    say = progress or (lambda message: None)
    for spec in config.scenes:
        layout, seed = parse_scene(spec)
        scene = SceneViews(SynthConfig.sized(config.size, layout=layout, seed=seed, kind=config.kind,
                                             hard_cases=config.hard_cases), config.backend)
        for noise in config.noise:
            tag = (dataset_tag(layout, seed, config.size, noise, config.kind, config.hard_cases)
                   + ("_" + "+".join(config.noise_only) if config.noise_only else ""))
            say(f"{spec} noise {noise:g}: writing and loading {tag}")
            root = data / tag
            reused = write_or_reuse(root, scene, config.mask_noise(noise), reuse=config.reuse_data is not None)
            ds, gt = Dataset.load(root), GroundTruth.load(root)
            t0 = time.perf_counter()
            ev = Evaluation.prepare(ds, gt, config.backend)
            masks = [len(ds.masks(v)) for v in ev.train]
            datasets.append({"scene": spec, "noise": noise, "path": str(root), "masks_per_view": float(np.mean(masks)),
                             "queries": len(ev.queries), "prepare_seconds": time.perf_counter() - t0,
                             "dataset": "reused" if reused else "written"})
            scores = {}
            for name in config.methods:
                say(f"{spec} noise {noise:g}: {name}")
                t0, cpu0 = time.perf_counter(), time.process_time()
                result = METHODS[name](MethodInput(ds, ev.train, config.backend))
                # a reference measured inside the method (GIT vs forward render) is not the method's time
                seconds = time.perf_counter() - t0 - result.stages.get("render_all_views", 0.0)
                cpu_seconds = time.process_time() - cpu0  # all threads of this process (incl. that reference)
                scores[name] = ev.score(result)
                rows.append({"scene": spec, "noise": noise, "method": name, **scores[name].metrics,
                             "seconds": seconds, "cpu_seconds": cpu_seconds, "stages": result.stages,
                             "info": result.info})
            figure(out / f"{tag}.png", ev, scores)
        scenes.append({"scene": spec, "config": scene.config.to_json(), "gaussians": len(gt.gaussians),
                       "objects": len(gt.hierarchy.objects), "seconds": scene.seconds, "made": scene.world is not None})
    results = {"config": config.__dict__, "scenes": scenes, "datasets": datasets, "rows": rows}
    (out / "results.json").write_text(json.dumps(results, indent=1))
    (out / "results.md").write_text(markdown(rows))
    return results


def _cell(row: dict, key: str, scale: float) -> str:
    value = row[key]
    return "-" if value is None or not np.isfinite(value) else f"{value * scale:.1f}"


def markdown(rows: list[dict]) -> str:
    head = ["scene", "noise", "method"] + [title for _, title, _ in COLUMNS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["scene"], f"{r['noise']:g}", r["method"]] + [_cell(r, k, s) for k, _, s in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    legend = ("\nNV: novel-view 2D segmentation of queried objects (Trace3D Tab. 3/4). Ext: 3D object extraction, "
              "selected Gaussians rendered alone (Trace3D Tab. 2). Pan: instance mIoU / precision / recall with "
              "Hungarian matching over all test views (Gaga, Proto-SaGa Tab. 1). PV: IQGS Tab. 1's panoptic mIoU, "
              "each test view matched on its own, mean over predicted segments (unmatched ones count 0). As: "
              "association, the same on the training views' consistent maps (Proto-SaGa Tab. 3). Percentages except PSNR (dB) and time (s, "
              "method only).\n")
    return "\n".join(lines) + "\n" + legend


def print_table(rows: list[dict], console) -> None:
    """The rows as a rich table (at full width when the output is not a terminal)."""
    from rich.console import Console
    from rich.table import Table

    if not console.is_terminal:  # piped or logged: do not squeeze the table into 80 columns
        console = Console(width=160)
    table = Table(title="segmentation benchmark")
    for title in ["scene", "noise", "method"] + [t for _, t, _ in COLUMNS]:
        table.add_column(title, justify="left" if title in ("scene", "method") else "right")
    for r in rows:
        table.add_row(r["scene"], f"{r['noise']:g}", r["method"], *[_cell(r, k, s) for k, _, s in COLUMNS])
    console.print(table)


# ---- CLI ----------------------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS), choices=sorted(METHODS),
                        help=f"default: {' '.join(DEFAULT_METHODS)} (the trained methods take minutes per scene "
                        "on a CPU: name them)")
    parser.add_argument("--scenes", nargs="+", default=DEFAULT_SCENES, help="layout[:seed], layouts: room, tabletop")
    parser.add_argument("--noise", nargs="+", type=float, default=DEFAULT_NOISE,
                        help="mask-noise levels (0 = clean masks, 1 = typical SAM)")
    parser.add_argument("--noise-only", nargs="+", choices=list(KNOBS), metavar="KNOB",
                        help="keep only these failure modes of each noise level, the others off, to measure what "
                        f"each costs ({', '.join(KNOBS)})")
    parser.add_argument("--size", default="small", choices=list(SIZES), help="scene density, resolution, views")
    parser.add_argument("--kind", default="3dgs", choices=["3dgs", "2dgs"])
    parser.add_argument("--backend", default="auto", choices=["auto", "torch", "cpu", "gsplat"])
    parser.add_argument("--hard-cases", action="store_true",
                        help="scenes with the hard cases on the table and the masks' failures on them")
    parser.add_argument("--reuse-data", type=Path, metavar="DIR",
                        help="keep the datasets in DIR (e.g. an earlier run's OUT/data) written for the same world "
                             "and mask noise, write the others there, named as bench clicks names them (default: "
                             "every dataset written again in OUT/data); the generator's code is not compared: after "
                             "changing gs_core/synth, leave it out")
    parser.add_argument("--out", type=Path, default=Path("bench_segmentation"))


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from ..errors import UserError

    console = Console()
    if args.reuse_data is not None and args.reuse_data.exists() and not args.reuse_data.is_dir():
        raise UserError(f"--reuse-data {args.reuse_data}: not a folder")
    config = BenchConfig(args.methods, args.scenes, args.noise, args.size, args.kind, args.backend, args.noise_only,
                         args.hard_cases, None if args.reuse_data is None else str(args.reuse_data))
    t0 = time.perf_counter()
    with console.status("starting") as status:
        results = run_bench(config, args.out, progress=status.update)
    print_table(results["rows"], console)
    if config.noise_only:
        console.print(f"mask noise: only {', '.join(config.noise_only)} of each level, the other failure modes off")
    console.print(f"{time.perf_counter() - t0:.1f} s; results in {args.out}/results.json, results.md and PNGs")
    return 0

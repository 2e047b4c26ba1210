"""``gs-core bench segmentation``: segmentation methods x synthetic scenes x mask-noise levels.

Per scene (``layout:seed``) the world is generated and rendered once; per noise level its dataset
is written (``<out>/data/<scene>_n<noise>/``) and read back through :class:`Dataset` like real
data; every method in :data:`~gs_core.bench.methods.METHODS` runs on it and is scored on the
held-out views. Output: a rich table, ``results.json``, ``results.md`` and one PNG per dataset
(training view: image, masks, GT, each method's map; test view: image, GT, each method's map).

Queried objects (per-object metrics): every non-structure object visible in a test view and in a
training view (at least :data:`MIN_QUERY_PIXELS` each). The query is the object's ground-truth mask
in the training view where it is largest, as Trace3D queries an image and a mask (Sec. 4.1). The
same rule turns any method's labels into a selection: the mask is traced onto the Gaussians and a
label is selected when more than half of its traced weight in that view falls inside the mask
(the label of largest weight inside if none does).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..dataset import Dataset
from ..engine import Gaussians, Projection, project, render, trace
from ..labelmaps import render_labels
from ..query import from_mask_weights
from ..metrics import association_scores, novel_view_segmentation, object_extraction, panoptic_scores
from ..synth import SIZES, GroundTruth, MaskNoise, SynthConfig, make_world, render_views, write_dataset
from ..synth.masks import KNOBS
from ..viz import label_colors, mask_overlay, panel, to_uint8
from .methods import METHODS, MethodInput, MethodResult

DEFAULT_SCENES = ["room:0", "room:1", "tabletop:0", "tabletop:1"]
DEFAULT_NOISE = [0.0, 0.5, 1.0]
MIN_QUERY_PIXELS = 16

# (key, column title, scale) of the printed table; fractions print as percentages
COLUMNS = [("nv_miou", "NV mIoU", 100), ("nv_macc", "NV mAcc", 100), ("ext_miou", "Ext mIoU", 100),
           ("ext_psnr", "Ext PSNR", 1), ("pan_miou", "Pan mIoU", 100), ("pan_pv_miou", "PV mIoU", 100),
           ("pan_p", "Pan P", 100), ("pan_r", "Pan R", 100), ("assoc_miou", "As mIoU", 100), ("assoc_p", "As P", 100),
           ("assoc_r", "As R", 100), ("test_psnr", "PSNR", 1), ("seconds", "time s", 1)]


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


@dataclass
class Query:
    """One queried object: its reference view and the traced weights of its mask there."""

    object: int
    name: str
    ref_view: int  # dataset index of the training view holding the query mask
    inside: np.ndarray  # [N] traced weight from pixels of the object's mask
    total: np.ndarray  # [N] traced weight from all labelled pixels of that view


def select(labels: np.ndarray, query: Query) -> np.ndarray:  # labels [N] -> [N] bool
    """The Gaussians whose label is selected by ``query`` (:func:`gs_core.query.from_mask_weights`)."""
    return from_mask_weights(labels, query.inside, query.total).selected


@dataclass
class SceneContext:
    """What scoring needs of one scene (the dataset's, or a method's refined one)."""

    gaussians: Gaussians
    colors: torch.Tensor  # [N, 3]
    test_proj: list[Projection]
    queries: list[Query]
    test_psnr: float  # base colours at the test views against the test photos


@dataclass
class Score:
    metrics: dict[str, float]
    train_map: np.ndarray  # [H, W] the method's labels at the first training view
    test_map: np.ndarray  # [H, W] at the first test view


@dataclass
class Evaluation:
    """Everything about one dataset that does not depend on the method, computed once."""

    dataset: Dataset
    gt: GroundTruth
    backend: str
    gaussians: Gaussians  # of scene.ply
    colors: torch.Tensor  # [N, 3]
    train: list[int]
    test: list[int]
    gt_train: np.ndarray  # [Vtr, H, W] GT object ids
    gt_test: np.ndarray  # [Vte, H, W]
    test_proj: list[Projection]
    queries: list[Query]
    gt_objects: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # id -> (rgb, alpha)
    base: SceneContext | None = None

    @classmethod
    @torch.no_grad()
    def prepare(cls, dataset: Dataset, gt: GroundTruth, backend: str = "auto") -> "Evaluation":
        index = {name: k for k, name in enumerate(dataset.names)}
        train, test = [index[n] for n in gt.train], [index[n] for n in gt.test]
        if not test:
            raise ValueError(f"{dataset.root}: no held-out views to score on")
        scene = dataset.load_scene()
        gaussians = scene.to_gaussians()
        colors = torch.as_tensor(scene.base_colors, dtype=torch.float32)
        gt_train = np.stack([gt.instance_map(dataset.names[v]) for v in train])
        gt_test = np.stack([gt.instance_map(dataset.names[v]) for v in test])
        ev = cls(dataset, gt, backend, gaussians, colors, train, test, gt_train, gt_test,
                 [project(gaussians, dataset.cameras[v]) for v in test], [])
        ev.queries = ev._queries(gaussians)
        ev.base = SceneContext(gaussians, colors, ev.test_proj, ev.queries, ev._test_psnr(gaussians, colors, ev.test_proj))
        clean = gt.gaussians.clean
        for q in ev.queries:
            ev.gt_objects[q.object] = ev.render_alone(clean & (gt.gaussians.object == q.object))
        return ev

    def context(self, scene) -> SceneContext:
        """Scoring context of a method's refined scene: its projections and query weights."""
        gaussians = scene.to_gaussians()
        colors = torch.as_tensor(scene.base_colors, dtype=torch.float32)
        proj = [project(gaussians, self.dataset.cameras[v]) for v in self.test]
        return SceneContext(gaussians, colors, proj, self._queries(gaussians), self._test_psnr(gaussians, colors, proj))

    def _test_psnr(self, gaussians: Gaussians, colors: torch.Tensor, projections: list[Projection]) -> float:
        from ..methods.trace3d.density import render_psnr

        return render_psnr(projections, colors, [self.dataset.image(v) for v in self.test], self.backend)

    def _queries(self, gaussians: Gaussians) -> list[Query]:
        things = self.gt.hierarchy.things
        area_train = np.stack([np.bincount(m[m >= 0], minlength=len(self.gt.hierarchy.objects)) for m in self.gt_train])
        area_test = np.stack([np.bincount(m[m >= 0], minlength=len(self.gt.hierarchy.objects)) for m in self.gt_test])
        wanted = [o for o in things if area_test[:, o].max() >= MIN_QUERY_PIXELS
                  and area_train[:, o].max() >= MIN_QUERY_PIXELS]
        ref = {o: int(np.argmax(area_train[:, o])) for o in wanted}
        queries = []
        for k in sorted(set(ref.values())):
            v = self.train[k]
            out = trace(project(gaussians, self.dataset.cameras[v]), torch.from_numpy(self.gt_train[k]),
                        top_k=4, backend=self.backend)
            labels, weights, total = out.labels.numpy(), out.weights.numpy(), out.weight_sum.numpy()
            for o in (o for o in wanted if ref[o] == k):
                inside = np.where(labels == o, weights, 0).sum(1)
                queries.append(Query(o, self.gt.hierarchy.objects[o].name, v, inside, total))
        return sorted(queries, key=lambda q: q.object)

    def render_alone(self, keep: np.ndarray, ctx: SceneContext | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Gaussians ``keep`` [N] bool rendered by themselves at the test views:
        (premultiplied rgb [V, H, W, 3], alpha [V, H, W]). The others get opacity 0, which blends
        exactly like projecting the subset alone, without projecting again."""
        ctx = ctx or self.base or SceneContext(self.gaussians, self.colors, self.test_proj, [], float("nan"))
        H, W = self.gt_test.shape[1:]
        rgb = np.zeros((len(self.test), H, W, 3), np.float32)
        alpha = np.zeros((len(self.test), H, W), np.float32)
        if keep.any():
            mask = torch.from_numpy(keep).float()
            for k, proj in enumerate(ctx.test_proj):
                out = render(proj.with_opacities(proj.opacities * mask), ctx.colors, backend=self.backend)
                rgb[k], alpha[k] = out.features.numpy(), out.alpha.numpy()
        return rgb, alpha

    @torch.no_grad()
    def score(self, result: MethodResult) -> Score:
        labels = np.asarray(result.labels, dtype=np.int64)
        ctx = self.base if result.scene is None else self.context(result.scene)
        if labels.shape != (len(ctx.gaussians),):
            raise ValueError(f"method returned {labels.shape} labels for {len(ctx.gaussians)} Gaussians")

        def view_map(v: int, proj: Projection | None = None) -> np.ndarray:
            if v in result.view_maps:
                return np.asarray(result.view_maps[v])
            proj = proj if proj is not None else project(ctx.gaussians, self.dataset.cameras[v])
            return render_labels(proj, labels, backend=self.backend)

        test_maps = np.stack([view_map(v, p) for v, p in zip(self.test, ctx.test_proj)])
        train_maps = np.stack([view_map(v) for v in self.train])
        pan = panoptic_scores(test_maps, self.gt_test)
        per_view = panoptic_scores(test_maps, self.gt_test, per_view=True)  # IQGS Tab. 1's protocol
        assoc = association_scores(train_maps, self.gt_train)
        nv, ext = [], []
        for q in ctx.queries:
            chosen = select(labels, q)
            picked = np.unique(labels[chosen])
            nv.append(novel_view_segmentation(np.isin(test_maps, picked) & (test_maps >= 0), self.gt_test == q.object))
            ext.append(object_extraction(*self.render_alone(chosen, ctx), *self.gt_objects[q.object]))

        def mean(values):
            values = [x for x in values if np.isfinite(x)]
            return float(np.mean(values)) if values else float("nan")

        metrics = {"nv_miou": mean(s.miou for s in nv), "nv_macc": mean(s.macc for s in nv),
                   "ext_miou": mean(s.miou for s in ext), "ext_psnr": mean(s.psnr for s in ext),
                   "pan_miou": pan.miou, "pan_pv_miou": per_view.miou_pred, "pan_p": pan.precision,
                   "pan_r": pan.recall,
                   "assoc_miou": assoc.miou, "assoc_p": assoc.precision, "assoc_r": assoc.recall,
                   "test_psnr": ctx.test_psnr, "gaussians": len(ctx.gaussians), "queries": len(ctx.queries)}
        return Score(metrics, train_maps[0], test_maps[0])


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
    (out / "data").mkdir(parents=True, exist_ok=True)
    rows, scenes, datasets = [], [], []
    say = progress or (lambda message: None)
    for spec in config.scenes:
        layout, seed = parse_scene(spec)
        say(f"{spec}: generating and rendering")
        t0 = time.perf_counter()
        world = make_world(SynthConfig.sized(config.size, layout=layout, seed=seed, kind=config.kind,
                                             hard_cases=config.hard_cases))
        views = render_views(world, world.cameras, backend=config.backend)
        scenes.append({"scene": spec, "config": world.config.to_json(), "gaussians": len(world.scene),
                       "objects": len(world.hierarchy.objects), "seconds": time.perf_counter() - t0})
        for noise in config.noise:
            tag = (f"{layout}{seed}{'_hard' if config.hard_cases else ''}_n{noise:g}"
                   + ("_" + "+".join(config.noise_only) if config.noise_only else ""))
            say(f"{spec} noise {noise:g}: writing and loading {tag}")
            root = write_dataset(out / "data" / tag, world, views, config.mask_noise(noise))
            ds, gt = Dataset.load(root), GroundTruth.load(root)
            t0 = time.perf_counter()
            ev = Evaluation.prepare(ds, gt, config.backend)
            masks = [len(ds.masks(v)) for v in ev.train]
            datasets.append({"scene": spec, "noise": noise, "path": str(root), "masks_per_view": float(np.mean(masks)),
                             "queries": len(ev.queries), "prepare_seconds": time.perf_counter() - t0})
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
    parser.add_argument("--out", type=Path, default=Path("bench_segmentation"))


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    console = Console()
    config = BenchConfig(args.methods, args.scenes, args.noise, args.size, args.kind, args.backend, args.noise_only,
                         args.hard_cases)
    t0 = time.perf_counter()
    with console.status("starting") as status:
        results = run_bench(config, args.out, progress=status.update)
    print_table(results["rows"], console)
    if config.noise_only:
        console.print(f"mask noise: only {', '.join(config.noise_only)} of each level, the other failure modes off")
    console.print(f"{time.perf_counter() - t0:.1f} s; results in {args.out}/results.json, results.md and PNGs")
    return 0

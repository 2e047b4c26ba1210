"""``gs-core bench clicks``: what the artist spends, in clicks (NoC@85 / NoC@90, :mod:`gs_core.interactive`).

Per scene (``layout:seed``) and mask-noise level a synthetic dataset is written and prepared by the
CLI's own ``prepare`` (``--method``); its work folder's merge-tree levels answer the clicks as the
``query`` command and the add-on's server do, through the same two functions (:class:`ViewClicks`:
:func:`gs_core.query.click_weights`, then :meth:`gs_core.query.LabelLevels.from_clicks`).

Queried objects: every non-structure object covering at least :data:`MIN_PIXELS` pixels of a
training view; each is clicked in the training view where it covers most pixels, and IoU is measured
there, between the selection's mask (:func:`gs_core.query.selection_mask`: the pixels where the selected
Gaussians carry at least half the blend) and the object's mask by the same rule on the world without its
training artefacts (:func:`gs_core.eval.truth_mask`, also the reference of ``gs-core demo``'s click;
``--truth blend``). The ground-truth map gives a pixel to the object with the most weight among all
objects, which may be less than half (a thin object's edge: 0.4 against 0.3 and 0.3 of two others); no
binary selection can show such a pixel, so the map's mask (``--truth map``, the reference before) is no
reference for one. The clicker starts at granularity 0.5 (the default).

Six variants run on every object, so before and after are measured in one process: the negative
click's rule (``remove``: the earlier rule, the instance under it leaves the selection; ``split``:
the finest split of the merge tree that separates it from the positive click, every positive click
adding the splats it points at too), each with clicks only and with the granularity slider (one notch
counted as one click); and, clicks only, ``split-whole`` (the split rule before positive clicks added
the splats they point at) and ``split-support`` (opt-in: a later positive click adds only the part of
its instance it supports) (:meth:`gs_core.query.LabelLevels.from_clicks`). Beside them, a reference: the IoU
of the object's true Gaussians selected and rendered the same way (where prepare kept the rows); not a
strict bound, as a selection with a few splats behind the object can render more of its pixels.

Where an object that one click at the default level does not give (IoU < 90%) is decided
(:func:`where_decided`): ``cut`` when one click at some other level of the merge tree gives it (the
tree holds the split, the default cut misses it); ``render`` when its own true Gaussians do not render
to 90% of its mask (by the reference's construction, other objects' training artefacts over it:
straddlers, intruders, floaters); ``merges`` when the masks separate it
(a mask at IoU > 50% with it, so with no other object) in at least half the training views that see it, yet no level of the
tree does (the association and the Eq. 3 merges lose it); ``patches`` when the masks rarely separate it.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..interactive import MAX_CLICKS, Click, ClickRun, next_click, run_clicker

MIN_PIXELS = 16
DEFAULT_SCENES = ["tabletop:0", "room:0"]
VARIANTS = [("remove", False), ("split", False), ("remove", True), ("split", True), ("split-whole", False),
            ("split-support", False)]


def variant_name(rule: str, slider: bool) -> str:
    return f"{rule}{'+slider' if slider else ''}"


@dataclass
class ObjectClicks:
    scene: str
    noise: float
    object: int
    name: str
    category: str
    view: str
    pixels: int  # the object's pixels in the clicked view (its IoU reference)
    runs: dict  # variant -> {"noc85", "noc90", "best_iou", "actions"}
    oracle_iou: float  # the object's true Gaussians selected and rendered the same way (NaN: rows differ)
    level_ious: list | None = None  # [levels] IoU of the first positive click alone at each level
    start_level: int = 0  # the default level's index
    patch_views: float = float("nan")  # share of training views seeing it where a mask matches it (IoU > 50%)

    @property
    def where(self) -> str:
        return where_decided(self)


PATCH_IOU = 0.5  # above half, a mask matches at most one object: it separates that one from the rest


def where_decided(r: "ObjectClicks") -> str:
    """``ok``, ``cut``, ``render``, ``merges`` or ``patches``: see the module's docstring."""
    if not r.level_ious:
        return "?"
    if r.level_ious[r.start_level] >= 0.9:
        return "ok"
    if max(r.level_ious) >= 0.9:
        return "cut"
    if r.oracle_iou < 0.9:
        return "render"
    return "merges" if r.patch_views >= 0.5 else "patches"


def patch_views(ds, maps: dict, objects: list[int]) -> dict[int, float]:
    """Per object: share of the training views that see it (>= :data:`MIN_PIXELS`) where some mask of the
    view's stack matches it at IoU > :data:`PATCH_IOU` (each view's stack read once)."""
    index = {name: k for k, name in enumerate(ds.names)}
    seen, hit = dict.fromkeys(objects, 0), dict.fromkeys(objects, 0)
    for name, m in maps.items():
        area = np.bincount(m[m >= 0], minlength=max(objects, default=0) + 1)
        here = [o for o in objects if area[o] >= MIN_PIXELS]
        if not here:
            continue
        stack, _ = ds.mask_stack(index[name])
        flat = None if stack is None or not len(stack) else stack.reshape(len(stack), -1)
        sizes = None if flat is None else flat.sum(1)
        for o in here:
            seen[o] += 1
            if flat is None:
                continue
            gt = (m == o).ravel()
            inter = flat[:, gt].sum(1)
            union = sizes + int(area[o]) - inter
            hit[o] += bool((inter / np.maximum(union, 1) > PATCH_IOU).any())
    return {o: hit[o] / seen[o] if seen[o] else float("nan") for o in objects}


TRUTHS = ("blend", "map")  # the IoU reference: gs_core.eval.truth_mask (default), or the ground-truth map's pixels


class ViewClicks:
    """Clicks in one view answered as ``gs-core query WORK --view V --pixel X Y --negative X Y --level L``
    answers them: each clicked pixel becomes Gaussians by the CLI's and the server's own function
    (:func:`gs_core.query.click_weights`, traced once per pixel), and the selection is
    :meth:`gs_core.query.LabelLevels.from_clicks` with the scene's centres and base colours."""

    def __init__(self, scene, levels, camera, backend: str = "auto", proj=None):
        self.scene, self.levels, self.camera, self.backend = scene, levels, camera, backend
        self.proj = proj  # the scene's projection in camera, where the caller has it (projected once a view)
        self.traced: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}

    def weights(self, c: Click) -> tuple[np.ndarray, np.ndarray]:  # (indices [K] int64, weights [K] float32)
        """The Gaussians blending into the clicked pixel and their weights there."""
        from ..query import click_weights

        if (c.x, c.y) not in self.traced:
            pos, _ = click_weights(self.scene, self.camera, np.array([[c.x, c.y]]), (), self.backend,
                                   proj=self.proj)
            self.traced[c.x, c.y] = pos[0]
        return self.traced[c.x, c.y]

    def select(self, clicks: list[Click], level: float, rule: str = "split"):
        """The :class:`gs_core.query.Selection` of ``clicks`` at granularity ``level``."""
        return self.levels.from_clicks(level, [self.weights(c) for c in clicks if c.positive],
                                       [self.weights(c) for c in clicks if not c.positive], rule=rule,
                                       means=self.scene.means, colors=self.scene.sh_dc)


def click_objects(dataset: Path, work: Path, backend: str = "auto", variants=VARIANTS,
                  max_clicks: int = MAX_CLICKS, objects: list[int] | None = None,
                  truth: str = "blend") -> list[ObjectClicks]:
    """Run the automatic clicker on every queried object (or ``objects``) of a prepared synthetic dataset.
    ``truth``: the IoU reference, :func:`gs_core.eval.truth_mask` (``blend``: the pixels where the object
    holds at least half the blend) or the ground-truth map's pixels of the object (``map``, the reference
    before; see the module's docstring)."""
    import torch

    from ..dataset import Dataset
    from ..engine import project
    from ..eval import truth_mask
    from ..metrics import iou
    from ..pipeline.segment import load_levels
    from ..pipeline.workdir import WorkDir
    from ..query import selection_mask
    from ..scene import GaussianScene
    from ..synth import GroundTruth

    if truth not in TRUTHS:
        raise ValueError(f"truth must be one of {TRUTHS}, got {truth!r}")
    ds, gt = Dataset.load(dataset), GroundTruth.load(dataset)
    world = ds.load_scene().to_gaussians() if truth == "blend" else None
    if world is not None and len(world.means) != len(gt.gaussians.object):
        raise ValueError(f"{dataset}: scene.ply has {len(world.means)} splats, gt/gaussians.npz "
                         f"{len(gt.gaussians.object)}")
    wd = WorkDir(work, must_exist=True)
    levels = load_levels(wd)
    scene = GaussianScene.load(wd.scene_path)
    gaussians = scene.to_gaussians()
    index = {name: k for k, name in enumerate(ds.names)}
    maps = {name: gt.instance_map(name) for name in gt.train}
    n_obj = len(gt.hierarchy.objects)
    area = {name: np.bincount(m[m >= 0], minlength=n_obj) for name, m in maps.items()}
    wanted = objects if objects is not None else gt.hierarchy.things
    start = levels.index(0.5)
    matched = patch_views(ds, maps, list(wanted))
    out = []
    for o in wanted:
        name = max(gt.train, key=lambda n: area[n][o])
        if area[name][o] < MIN_PIXELS:
            continue
        mask = maps[name] == o
        if world is not None:
            mask = truth_mask(project(world, ds.cameras[index[name]]), gt.gaussians.clean, gt.gaussians.object, o,
                              backend)
            if not mask.any():
                continue
        proj = project(gaussians, ds.cameras[index[name]])
        view = ViewClicks(scene, levels, ds.cameras[index[name]], backend, proj)

        runs = {}
        for rule, slider in variants:
            rendered: dict = {}

            def predict(clicks: list[Click], level: int) -> np.ndarray:
                key = (tuple(clicks), level)
                if key not in rendered:
                    sel = view.select(clicks, levels.levels[level], rule)
                    with torch.no_grad():
                        rendered[key] = selection_mask(proj, sel.selected, backend=backend)
                return rendered[key]

            run: ClickRun = run_clicker(predict, mask, start, len(levels.levels), slider, max_clicks=max_clicks)
            runs[variant_name(rule, slider)] = {"noc85": run.noc(0.85, max_clicks), "noc90": run.noc(0.90, max_clicks),
                                                "reached90": run.reached(0.90, max_clicks),
                                                "best_iou": run.best_iou, "actions": "".join(
                                                    {"finer": "<", "coarser": ">"}.get(a, a) for a in run.actions),
                                                "ious": run.ious, "levels": run.levels,
                                                "clicks": [[c.x, c.y, int(c.positive)] for c in run.clicks]}
        oracle = float("nan")
        if len(gt.gaussians.object) == len(levels.labels[0]):  # the work scene keeps the dataset's rows
            with torch.no_grad():
                oracle = iou(selection_mask(proj, gt.gaussians.object == o, backend=backend), mask)
        first = next_click(np.zeros_like(mask), mask)
        level_ious = []
        for level in levels.levels:
            sel = view.select([first], level)
            with torch.no_grad():
                level_ious.append(iou(selection_mask(proj, sel.selected, backend=backend), mask))
        info = gt.hierarchy.objects[o]
        out.append(ObjectClicks("", 0.0, o, info.name, info.category, name, int(mask.sum()), runs, oracle,
                                level_ious, start, matched[o]))
    return out


def summarise(rows: list[ObjectClicks], key=lambda r: r.category) -> dict:
    """Per group (``key``) and variant: median and mean NoC@85/90, objects never at 90%, mean best IoU."""
    groups: dict[str, list[ObjectClicks]] = {}
    for r in rows:
        groups.setdefault(key(r), []).append(r)
    out = {}
    for g, members in sorted(groups.items()):
        out[g] = {}
        for variant in members[0].runs:
            runs = [m.runs[variant] for m in members]
            n85 = np.array([x["noc85"] for x in runs], float)
            n90 = np.array([x["noc90"] for x in runs], float)
            out[g][variant] = {"objects": len(runs), "noc85_median": float(np.median(n85)), "noc85_mean": float(n85.mean()),
                               "noc90_median": float(np.median(n90)), "noc90_mean": float(n90.mean()),
                               "failed90": int(sum(not x["reached90"] for x in runs)),
                               "best_iou_mean": float(np.mean([x["best_iou"] for x in runs])),
                               "oracle_below90": int(sum(m.oracle_iou < 0.9 for m in members))}
    return out


def summarise_where(rows: list[ObjectClicks], key=lambda r: r.category) -> dict:
    """Per group (``key``): mean one-click IoU at the default level, best level, and where each object is decided."""
    groups: dict[str, list[ObjectClicks]] = {}
    for r in rows:
        groups.setdefault(key(r), []).append(r)
    return {g: {"one_click_iou_mean": float(np.mean([m.level_ious[m.start_level] for m in members])),
                "best_level_iou_mean": float(np.mean([max(m.level_ious) for m in members])),
                "patch_views_mean": float(np.nanmean([m.patch_views for m in members])),
                "where": {w: sum(m.where == w for m in members) for w in WHERE if any(m.where == w for m in members)}}
            for g, members in sorted(groups.items()) if all(m.level_ious for m in members)}


WHERE = ("ok", "cut", "render", "merges", "patches", "?")


def run_bench(scenes: list[str], noise: list[float], size: str, method: str, out: Path, backend: str = "auto",
              kind: str = "3dgs", say=print, hard_cases: bool = False, truth: str = "blend",
              reuse: Path | None = None) -> dict:
    """Per scene and noise level: a dataset written (or reused), prepared by ``prepare --method``, clicked
    (:func:`click_objects` with ``truth``); ``OUT/clicks.json``. Datasets go to ``OUT/data``, every run anew;
    with ``reuse``, to that folder, where one already written for the same world and mask noise is kept
    instead (:func:`gs_core.synth.write_or_reuse`; its work folder, if prepared from it before, is then up to
    date)."""
    from ..pipeline.prepare import PrepareOptions, prepare
    from ..synth import GroundTruth, MaskNoise, SceneViews, SynthConfig, write_or_reuse
    from .segmentation import dataset_tag, parse_scene

    if truth not in TRUTHS:
        raise ValueError(f"truth must be one of {TRUTHS}, got {truth!r}")
    out = Path(out)
    data = Path(reuse) if reuse is not None else out / "data"
    rows, prepared = [], []
    for spec in scenes:
        layout, seed = parse_scene(spec)
        scene = SceneViews(SynthConfig.sized(size, layout=layout, seed=seed, kind=kind, hard_cases=hard_cases), backend)
        for level in noise:
            tag = dataset_tag(layout, seed, size, level, kind, hard_cases)
            root = data / tag
            t0 = time.perf_counter()  # the scene's world is made (and rendered) with its first dataset written
            reused = write_or_reuse(root, scene, MaskNoise.level(level, hard=hard_cases), reuse=reuse is not None)
            data_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            manifest = prepare(PrepareOptions(root, out / "work" / f"{tag}_{method}", method=method, backend=backend),
                               log=lambda *_: None)
            prep_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            objs = click_objects(root, out / "work" / f"{tag}_{method}", backend, truth=truth)
            for r in objs:
                r.scene, r.noise = spec, level
            rows += objs
            prepared.append({"scene": spec, "noise": level, "path": str(root),
                             "gaussians": len(GroundTruth.load(root).gaussians), "objects": len(objs),
                             "dataset": "reused" if reused else "written", "dataset_s": round(data_s, 2),
                             "prepare": "up to date" if manifest.get("up_to_date") else "prepared",
                             "prepare_s": round(prep_s, 2), "clicks_s": round(time.perf_counter() - t0, 2)})
            say(f"{spec} noise {level:g}: {len(objs)} objects, dataset {prepared[-1]['dataset']} "
                f"{data_s:.1f} s, prepare {prepared[-1]['prepare']} {prep_s:.1f} s, clicker "
                f"{prepared[-1]['clicks_s']:.1f} s")
    results = {"config": {"scenes": scenes, "noise": noise, "size": size, "method": method, "kind": kind,
                          "hard_cases": hard_cases, "max_clicks": MAX_CLICKS, "truth": truth},
               "datasets": prepared, "objects": [{**asdict(r), "where": r.where} for r in rows],
               "categories": summarise(rows), "all": summarise(rows, key=lambda r: "all")["all"] if rows else {},
               "where": {**summarise_where(rows), "ALL": summarise_where(rows, key=lambda r: "all").get("all", {})}}
    out.mkdir(parents=True, exist_ok=True)
    from ..io.atomic import write_text

    write_text(out / "clicks.json", json.dumps(results, indent=1))
    return results


def print_results(results: dict, console) -> None:
    from rich.console import Console
    from rich.table import Table

    if not console.is_terminal:
        console = Console(width=200)
    names = [variant_name(r, s) for r, s in VARIANTS]
    t = Table(title="per object: NoC@85 / NoC@90 (best IoU %) ; actions: + - clicks, < > slider notches")
    for c in ["scene", "noise", "object", "px", "oracle"] + names:
        t.add_column(c, justify="left" if c in ("scene", "object") else "right")
    for r in results["objects"]:
        t.add_row(r["scene"], f"{r['noise']:g}", r["name"], str(r["pixels"]), f"{100 * r['oracle_iou']:.0f}",
                  *[f"{r['runs'][n]['noc85']}/{r['runs'][n]['noc90']} ({100 * r['runs'][n]['best_iou']:.0f}) "
                    f"{r['runs'][n]['actions'][:12]}" for n in names])
    console.print(t)
    t = Table(title=f"per category: NoC@90 median / mean (NoC@85 median / mean), objects not at 90% in {MAX_CLICKS}; "
                    "oracle<90: objects whose true Gaussians render below 90% IoU")
    for c in ["category", "n", "oracle<90", "1 click: default / best level", "where decided"] + names:
        t.add_column(c, justify="left" if c in ("category", "where decided") else "right")
    for cat, v in [*results["categories"].items(), ("ALL", results["all"])]:
        if not v:
            continue
        d = results.get("where", {}).get(cat, {})
        nan = float("nan")
        t.add_row(cat, str(v[names[0]]["objects"]), str(v[names[0]]["oracle_below90"]),
                  f"{100 * d.get('one_click_iou_mean', nan):.0f} / {100 * d.get('best_level_iou_mean', nan):.0f}",
                  " ".join(f"{w}:{n}" for w, n in d.get("where", {}).items()),
                  *[f"{v[n]['noc90_median']:g} / {v[n]['noc90_mean']:.1f} ({v[n]['noc85_median']:g} / "
                    f"{v[n]['noc85_mean']:.1f}) {v[n]['failed90']}" for n in names])
    console.print(t)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..synth import SIZES

    parser.add_argument("--scenes", nargs="+", default=DEFAULT_SCENES, help="layout[:seed], layouts: room, tabletop")
    parser.add_argument("--noise", nargs="+", type=float, default=[0.5], help="mask-noise levels (1 = typical SAM)")
    parser.add_argument("--size", default="small", choices=list(SIZES), help="scene density, resolution, views")
    parser.add_argument("--kind", default="3dgs", choices=["3dgs", "2dgs"])
    parser.add_argument("--method", default="git-consistent", help="prepare's --method (default git-consistent)")
    parser.add_argument("--backend", default="auto", choices=["auto", "torch", "cpu", "gsplat"])
    parser.add_argument("--hard-cases", action="store_true",
                        help="scenes with the hard cases on the table and the masks' failures on them")
    parser.add_argument("--truth", default="blend", choices=list(TRUTHS),
                        help="IoU reference: blend = the pixels where the object's own Gaussians hold at least half "
                             "the blend, the only ones a selection can show (default); map = the ground-truth map's "
                             "pixels of the object (the reference before)")
    parser.add_argument("--reuse-data", type=Path, metavar="DIR",
                        help="keep the datasets in DIR (e.g. an earlier run's OUT/data) written for the same world "
                             "and mask noise, write the others there (default: every dataset written again in "
                             "OUT/data); the generator's code is not compared: after changing gs_core/synth, "
                             "leave it out")
    parser.add_argument("--out", type=Path, default=Path("bench_clicks"))


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from ..errors import UserError
    from ..pipeline.prepare import PREPARERS
    from .segmentation import parse_scene

    if args.method not in PREPARERS:
        raise UserError(f"--method {args.method}: choose from {', '.join(PREPARERS)}")
    from ..synth import LAYOUTS

    for spec in args.scenes:
        try:
            layout, _ = parse_scene(spec)
        except ValueError as exc:
            raise UserError(f"--scenes {exc}") from None
        if layout not in LAYOUTS:
            raise UserError(f"--scenes {spec}: layout must be one of {', '.join(LAYOUTS)}")
    console = Console()
    t0 = time.perf_counter()
    if args.reuse_data is not None and args.reuse_data.exists() and not args.reuse_data.is_dir():
        raise UserError(f"--reuse-data {args.reuse_data}: not a folder")
    results = run_bench(args.scenes, args.noise, args.size, args.method, args.out, args.backend, args.kind,
                        say=console.print, hard_cases=args.hard_cases, truth=args.truth, reuse=args.reuse_data)
    print_results(results, console)
    if args.truth != "blend":
        console.print(f"IoU reference: --truth {args.truth}")
    console.print(f"{time.perf_counter() - t0:.1f} s; results in {args.out}/clicks.json")
    return 0

"""``gs-core demo``: the main job on the built-in sample.

Builds a small synthetic table-top dataset (splats with training artefacts, COLMAP cameras, images,
SAM-like masks, ground truth) in ``OUT/dataset`` and runs the pipeline on it exactly as on a user's
own capture, through the typed jobs each command runs (:mod:`gs_core.pipeline`):

1. ``prepare OUT/dataset --out OUT/work`` (Trace3D: GIT, consistent maps, density control);
2. ``segment OUT/work --out OUT/labels.npy``;
3. ``query OUT/work --view V --pixel X Y --out OUT/selection.npy``: a click on the centre of the
   largest table-top item in the training view where it is largest (read from the ground truth,
   the one thing a user would do by eye);
4. ``extract OUT/work --selection ... --out OUT/<item>.ply --rest OUT/scene_without_<item>.ply``.

It then scores the result against the ground truth (:mod:`gs_core.eval`) next to the naive baseline
and the oracle and
writes ``OUT/report/report.html`` (PNGs beside it): input view, SAM-like masks, consistent
instance maps, a PCA picture of briefly trained contrastive features, the extracted object alone
and the scene without it, the scores and every stage's time.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .click import Click, choose_click

STEPS = ("generate", "render", "write", "prepare", "segment", "query", "extract", "features", "score", "report")
# the PCA picture's contrastive training: chunks of FEATURE_CHUNK steps until FEATURE_STEPS[1] steps or
# FEATURE_BUDGET seconds; fewer than FEATURE_STEPS[0] steps by then and the picture is skipped with a note.
# 100 steps of 512 pixels already separate the instances of the small table top.
FEATURE_BUDGET = 10.0
FEATURE_CHUNK = 25
FEATURE_STEPS = (50, 200)
FEATURE_PIXELS = 512
MAX_MAP_VIEWS = 6  # consistent maps shown


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..preflight import non_negative_float

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
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                        help="where prepare's engine runs (GIT, density control's re-traces); the other steps "
                             "run on the CPU (default: cpu)")
    parser.add_argument("--blender", type=Path, metavar="OUT.blend",
                        help="run the job in Blender instead (bpy wheel, the add-on, headless): import, prepare, "
                             "click-select, separate, move, export, re-import, save OUT.blend, render OUT.png")


@dataclass
class _Steps:
    """The overall progress bar, the step running now and each step's wall time."""

    bar: object
    task: int
    current: str = "starting"
    started: float = field(default_factory=time.perf_counter)
    times: dict[str, float] = field(default_factory=dict)
    # what the demo writes in OUT (files, and folders it writes whole): only these go in its output record
    outputs: list[str] = field(default_factory=lambda: ["dataset", "work", "report", "labels.npy", "selection.npy"])

    def begin(self, name: str, description: str) -> None:
        self.current, self.started = name, time.perf_counter()
        self.bar.update(self.task, description=description)

    def end(self) -> None:
        self.times[self.current] = time.perf_counter() - self.started
        self.bar.advance(self.task)


@dataclass
class _Outcome:
    rows: list[dict]
    summary: list[str]
    report: Path
    seconds: float


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..outputs import OutputRecord
    from ..preflight import check_output_dir

    if getattr(args, "blender", None) is not None:
        from .blender import run as run_blender
        from ..preflight import check_output_file

        check_output_file(args.blender, "--blender")
        return run_blender(args, args.blender)
    if getattr(args, "device", "cpu") == "cuda":
        import torch

        from ..errors import UserError

        if not torch.cuda.is_available():
            raise UserError("--device cuda: torch sees no NVIDIA GPU here; use --device cpu")
    console = Console()
    out = check_output_dir(args.out, "--out")
    record = OutputRecord(out, "demo")
    record.clear_previous()  # the last demo run's files, nothing else
    steps = _Steps(None, 0)
    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console) as bar:
            steps.bar, steps.task = bar, bar.add_task("demo", total=len(STEPS))
            outcome = _run(args, out, steps)
    except KeyboardInterrupt:
        where = f" during '{steps.current}'" if steps.bar is not None else ""
        console.print(f"[yellow]demo cancelled[/] (Ctrl-C){where}; partial output left in {out}; "
                      "run the demo again to start over (it clears this run's files first)", soft_wrap=True)
        return 130
    finally:
        record.save(steps.outputs)
    _print_summary(console, outcome)
    return 0


def _print_summary(console, outcome: _Outcome) -> None:
    from rich.table import Table

    table = Table(title="demo: scores on the held-out views against the ground truth")
    for title in ("method", "NV mIoU", "Ext mIoU", "Pan mIoU", "As mIoU", "Gaussians", "time s"):
        table.add_column(title, justify="left" if title == "method" else "right")
    for r in outcome.rows:
        table.add_row(r["method"], *[_pct(r[k]) for k in ("nv_miou", "ext_miou", "pan_miou", "assoc_miou")],
                      f"{r['gaussians']:,}", f"{r['seconds']:.1f}")
    console.print(table)
    for line in outcome.summary:
        console.print(line, soft_wrap=True, markup=False, highlight=False)
    console.print(f"done in {outcome.seconds:.1f} s; report: [bold]{outcome.report}[/]", soft_wrap=True)


def _pct(value) -> str:
    return "-" if value is None or not np.isfinite(value) else f"{100 * value:.1f}"


# ---- the click -----------------------------------------------------------------------------------

# ---- pictures ------------------------------------------------------------------------------------

def _mark(image: np.ndarray, xy: tuple[int, int]) -> np.ndarray:
    """A small white cross with a black outline at ``xy`` on a uint8 image."""
    out = image.copy()
    x, y = xy
    h, w = out.shape[:2]
    for colour, r, t in (((0, 0, 0), 4, 1), ((255, 255, 255), 3, 0)):
        out[max(y - t, 0):y + t + 1, max(x - r, 0):min(x + r + 1, w)] = colour
        out[max(y - r, 0):min(y + r + 1, h), max(x - t, 0):x + t + 1] = colour
    return out


def _on_checker(rgb: np.ndarray, alpha: np.ndarray, cell: int = 8) -> np.ndarray:
    """Premultiplied ``rgb`` [H, W, 3] with ``alpha`` [H, W] over a grey checkerboard -> uint8."""
    from ..viz import to_uint8

    h, w = alpha.shape
    yy, xx = np.mgrid[:h, :w]
    board = np.where(((yy // cell) + (xx // cell)) % 2 == 0, 0.75, 0.55)[..., None]
    return to_uint8(rgb + (1 - alpha[..., None]) * board)


def _pca_rgb(features: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Rendered features [H, W, D] (premultiplied) -> their first three principal components as RGB."""
    out = np.zeros(features.shape[:2] + (3,), np.uint8)
    fg = alpha > 0.5
    if fg.sum() < 4:
        return out
    x = features[fg] / alpha[fg][:, None]
    x = x - x.mean(0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    y = x @ vt[:3].T
    lo, hi = np.percentile(y, 2, axis=0), np.percentile(y, 98, axis=0)
    y = np.clip((y - lo) / np.maximum(hi - lo, 1e-9), 0, 1)
    out[fg] = np.round(y * 255).astype(np.uint8)
    return out


def _train_features(projections, maps, backend: str):
    """Contrastive features on the consistent maps, in chunks until FEATURE_BUDGET seconds pass.
    Returns (features [N, 16] or None, steps, seconds)."""
    from dataclasses import replace

    from ..lifting.contrastive import ContrastiveConfig, train_contrastive

    config = ContrastiveConfig(steps=FEATURE_CHUNK, pixels_per_step=FEATURE_PIXELS, backend=backend)
    views = list(zip(projections, maps))
    feats, steps, t0 = None, 0, time.perf_counter()
    while steps < FEATURE_STEPS[1] and time.perf_counter() - t0 < FEATURE_BUDGET:
        result = train_contrastive(views, replace(config, seed=steps), init=feats)
        feats, steps = result.features, steps + FEATURE_CHUNK
    seconds = time.perf_counter() - t0
    return (feats if steps >= FEATURE_STEPS[0] else None), steps, seconds


# ---- the run -------------------------------------------------------------------------------------

def _run(args, out: Path, steps: _Steps) -> _Outcome:
    import torch

    from .. import synth
    from ..errors import UserError
    from ..dataset import Dataset
    from ..engine import project, render
    from ..eval import Evaluation, MethodInput, MethodResult, naive_lifting, oracle
    from ..pipeline import extract as extract_job
    from ..pipeline import query_command as query_job
    from ..pipeline import segment as segment_job
    from ..pipeline.prepare import PrepareOptions, prepare
    from ..pipeline.workdir import WorkDir, save_npy
    from ..scene import GaussianScene

    bar = steps.bar
    t_start = time.perf_counter()
    device = getattr(args, "device", "cpu")
    # prepare runs on ``device``; the other steps on CPU tensors, where a CUDA-only backend cannot
    backend = "auto" if args.backend == "gsplat" else args.backend

    steps.begin("generate", "generating the world")
    world = synth.make_world(synth.SynthConfig.sized(args.size, layout=args.layout, seed=args.seed))
    steps.end()

    steps.begin("render", "rendering the views")
    views_task = bar.add_task("  views", total=len(world.cameras))
    views = synth.render_views(world, world.cameras, backend=backend, progress=lambda: bar.advance(views_task))
    bar.remove_task(views_task)
    steps.end()

    steps.begin("write", "writing the dataset")
    root = synth.write_dataset(out / "dataset", world, views, synth.MaskNoise.level(args.noise))
    ds, gt = Dataset.load(root), synth.GroundTruth.load(root)
    steps.end()

    # -- the pipeline, as on a user's capture --
    work_dir = out / "work"
    steps.begin("prepare", "gs-core prepare (trace3d)")
    sub: dict[str, int] = {}

    def progress(stage: str, done: int, total: int) -> None:
        if stage not in sub:
            sub[stage] = bar.add_task(f"  {stage}", total=total)
        bar.update(sub[stage], completed=done, total=total)

    options = PrepareOptions(root, work_dir, method="trace3d", device=device, backend=args.backend, force=True)
    manifest = prepare(options, progress)
    for task in sub.values():
        bar.remove_task(task)
    steps.end()

    work = WorkDir(work_dir, must_exist=True)
    labels_path = out / "labels.npy"
    steps.begin("segment", "gs-core segment")
    labels = segment_job.segment(work, 0.5)
    save_npy(labels_path, labels)
    steps.end()

    click = choose_click(ds, gt)
    view_name = ds.names[click.view]
    selection_path = out / "selection.npy"
    steps.begin("query", f"gs-core query: click ({click.xy[0]}, {click.xy[1]}) in {view_name}")
    selected = query_job.click_selection(work, work.camera(view_name), [click.xy], backend=backend).selected
    save_npy(selection_path, selected)
    steps.end()

    object_path, rest_path = out / f"{click.name}.ply", out / f"scene_without_{click.name}.ply"
    steps.outputs += [object_path.name, rest_path.name]
    steps.begin("extract", "gs-core extract")
    if not selected.any():
        raise UserError(f"demo: the click at ({click.xy[0]}, {click.xy[1]}) in {view_name} selected nothing")
    extract_job.extract(work, selected, object_path, rest_path)
    steps.end()

    # -- what the work folder holds, for the report --
    refined = GaussianScene.load(work.scene_path)
    gaussians = refined.to_gaussians()
    colors = torch.as_tensor(refined.base_colors, dtype=torch.float32)
    labels = labels.astype(np.int64)
    work_cams = work.cameras()
    with np.load(work_dir / "view_maps.npz", allow_pickle=False) as z:
        work_maps = [z[f"view_{k:05d}"] for k in range(len(work_cams))]
    index = {name: k for k, name in enumerate(ds.names)}
    view_maps = {index[c.name]: m for c, m in zip(work_cams, work_maps)}
    click_cam = next(k for k, c in enumerate(work_cams) if c.name == view_name)

    steps.begin("features", "training contrastive features (PCA picture)")
    with torch.no_grad():
        projections = [project(gaussians, c) for c in work_cams]
    feats, feat_steps, feat_seconds = _train_features(projections, work_maps, backend)
    pca = None
    if feats is not None:
        with torch.no_grad():
            f = render(projections[click_cam], feats, backend=backend)
        pca = _pca_rgb(f.features.numpy(), f.alpha.numpy())
    steps.end()

    steps.begin("score", "scoring trace3d, naive and oracle against the ground truth")
    ev = Evaluation.prepare(ds, gt, backend)
    results, seconds = {"trace3d": MethodResult(labels, view_maps, scene=refined)}, {"trace3d": manifest["seconds"]}
    for name, method in (("naive", naive_lifting), ("oracle", oracle)):
        t = time.perf_counter()
        results[name] = method(MethodInput(ds, ev.train, backend))
        seconds[name] = time.perf_counter() - t
    rows = []
    for name, result in results.items():
        score = ev.score(result)
        rows.append({"scene": f"{args.layout}:{args.seed}", "noise": args.noise, "method": name,
                     **score.metrics, "seconds": seconds[name]})
    with torch.no_grad():
        picked = _check_selection(ev, gaussians, colors, selected, click, projections[click_cam], backend)
    steps.end()

    steps.begin("report", "writing the report")
    summary = [f"clicked ({click.xy[0]}, {click.xy[1]}) in {view_name} on {click.name}: "
               f"{picked.n_object:,} of {len(selected):,} Gaussians selected; novel-view IoU with the true "
               f"{click.name} {_pct(picked.iou)}%; in those views it covers {_covers(picked.covers)}",
               f"extracted {click.name} -> {object_path} ({picked.n_object:,} Gaussians); "
               f"the rest -> {rest_path} ({picked.n_rest:,})"]
    paths = {"dataset": root, "work": work_dir, "labels": labels_path, "selection": selection_path,
             "object": object_path, "rest": rest_path}
    report = _write_report(out / "report", args, ds, gt, click, picked, manifest, work_cams, work_maps,
                           (pca, feat_steps, feat_seconds), rows, steps, paths)
    steps.end()
    bar.update(steps.task, description=f"done in {time.perf_counter() - t_start:.1f} s")
    return _Outcome(rows, summary, report, time.perf_counter() - t_start)


@dataclass
class _Picked:
    """The click's selection checked against the ground truth, and its renders."""

    n_object: int
    n_rest: int
    iou: float  # novel-view IoU with the clicked object over the held-out views
    covers: list[tuple[str, float, float]]  # (object, share of the selection's pixels, share of it covered)
    pictures: dict[str, tuple]  # "click"/"test" -> (view, alone rgb, alone alpha, rest rgb, rest alpha)


def _check_selection(ev, gaussians, colors, selected: np.ndarray, click: Click, click_proj, backend: str) -> _Picked:
    """The selection's 2D masks in the held-out views against the clicked object's ground truth and
    what they lie on; the selection alone and the scene without it in the clicked and a held-out view
    (per-Gaussian opacity masking, like :meth:`Evaluation.render_alone`).

    The IoU reference is :func:`gs_core.eval.truth_mask`, the pixels where the object's clean Gaussians hold
    at least half the blend (a selection is shown by that rule), as in ``gs-core bench clicks``; what the
    selection lies on is read from the ground-truth maps.

    Args:
        gaussians: the work folder's scene (rows as ``selected`` [N] bool), projected into the held-out views.
        colors: [N, 3] its base colours.
    """
    import torch

    from ..engine import project, render
    from ..eval import truth_mask
    from ..query import selection_mask

    n_obj = len(ev.gt.hierarchy.objects)
    inter = union = 0
    picked_px, object_px = np.zeros(n_obj + 1, np.int64), np.zeros(n_obj + 1, np.int64)  # index 0: background
    views = {"click": (click.view, click_proj)}
    for k, v in enumerate(ev.test):
        proj = project(gaussians, ev.dataset.cameras[v])
        mask = selection_mask(proj, selected, backend=backend)
        truth = truth_mask(ev.test_proj[k], ev.gt.gaussians.clean, ev.gt.gaussians.object, click.object, backend)
        inter, union = inter + int((mask & truth).sum()), union + int((mask | truth).sum())
        picked_px += np.bincount(ev.gt_test[k][mask] + 1, minlength=n_obj + 1)
        object_px += np.bincount(ev.gt_test[k].ravel() + 1, minlength=n_obj + 1)
        if k == 0:
            views["test"] = (v, proj)
    share = picked_px / max(picked_px.sum(), 1)
    covers = [(ev.gt.hierarchy.objects[o - 1].name if o else "background", float(share[o]),
               float(picked_px[o] / max(object_px[o], 1))) for o in np.argsort(-share) if share[o] >= 0.05]
    keep = torch.from_numpy(selected).float()
    pictures = {}
    for key, (v, proj) in views.items():
        alone = render(proj.with_opacities(proj.opacities * keep), colors, backend=backend)
        rest = render(proj.with_opacities(proj.opacities * (1 - keep)), colors, backend=backend)
        pictures[key] = (v, alone.features.numpy(), alone.alpha.numpy(), rest.features.numpy(), rest.alpha.numpy())
    return _Picked(int(selected.sum()), int((~selected).sum()), inter / union if union else float("nan"), covers,
                   pictures)


def _write_report(folder: Path, args, ds, gt, click: Click, picked: _Picked, manifest: dict, work_cams, work_maps,
                  features, rows: list[dict], steps: _Steps, paths: dict) -> Path:
    from ..eval import COLUMNS
    from ..report import Report
    from ..viz import label_colors, mask_overlay, to_uint8

    r = Report(folder, "gs-core demo: segmenting the built-in sample")
    r.paragraph(f"Synthetic {args.layout} scene (seed {args.seed}, size {args.size}, mask noise {args.noise:g}), "
                f"{len(ds)} views ({len(gt.train)} for training, {len(gt.test)} held out), "
                f"{manifest.get('gaussians', 0):,} Gaussians after density control. The pipeline ran as on "
                "a user's own data; the commands that run the same jobs are below. Scores use the ground truth only the "
                "synthetic sample has.")
    r.code("\n".join([
        f"gs-core prepare {paths['dataset']} --out {paths['work']}",
        f"gs-core segment {paths['work']} --out {paths['labels']}",
        f"gs-core query {paths['work']} --view {ds.names[click.view]} --pixel {click.xy[0]} {click.xy[1]} "
        f"--out {paths['selection']}",
        f"gs-core extract {paths['work']} --selection {paths['selection']} --out {paths['object']} "
        f"--rest {paths['rest']}"]))

    image = ds.image(click.view)
    masks = ds.masks(click.view)
    name = ds.names[click.view]
    r.section("Input", f"Training view {name} with the click on {click.name} (white cross), the SAM-like masks "
              "the pipeline starts from (smallest on top; they overlap, disagree between views and have "
              "holes and leaks, as SAM's do), and the ground truth for comparison.")
    r.figures([(f"{name} and the click at ({click.xy[0]}, {click.xy[1]})", _mark(to_uint8(image), click.xy), "input"),
               (f"SAM-like masks ({0 if masks is None else len(masks)})",
                mask_overlay(image, masks) if masks is not None else to_uint8(image), "masks"),
               ("ground-truth objects", label_colors(gt.instance_map(name)), "ground_truth")])

    shown = np.linspace(0, len(work_cams) - 1, min(MAX_MAP_VIEWS, len(work_cams))).round().astype(int)
    click_cam = next(k for k, c in enumerate(work_cams) if c.name == name)
    shown[np.argmin(np.abs(shown - click_cam))] = click_cam  # the clicked view is one of them
    shown = np.unique(shown)
    r.section("Consistent instance maps",
              f"From work/view_maps.npz: every training view's masks associated into {manifest.get('instances', 0)} "
              "instances shared by all views (the same colour is the same instance id in every view; "
              "black: no instance).")
    r.figures([(f"{work_cams[k].name}: {len(np.unique(work_maps[k][work_maps[k] >= 0]))} instances",
                label_colors(work_maps[k]), f"consistent_{Path(work_cams[k].name).stem}") for k in shown])

    pca, steps_done, seconds = features
    n_object, n_rest, covers = picked.n_object, picked.n_rest, picked.covers
    r.section("Contrastive features")
    if pca is not None:
        r.paragraph(f"16-d per-Gaussian features trained for {steps_done} steps ({seconds:.1f} s) on the consistent "
                    f"maps (Trace3D Eq. 5), rendered in {name}; their first three principal components as RGB. "
                    "Instances separate into distinct colours; a short run, so edges stay soft.")
        r.figures([(f"feature PCA, {name}", pca, "features_pca")])
    else:
        r.paragraph(f"Skipped: {steps_done} training steps took {seconds:.1f} s on this machine, fewer than the "
                    f"{FEATURE_STEPS[0]} a readable picture needs within the {FEATURE_BUDGET:.0f} s budget.",
                    note=True)

    r.section("Click query and extraction",
              f"The click selected {n_object:,} Gaussians ({click.name}; the rest of the scene has {n_rest:,}). "
              f"Novel-view IoU of the selection's mask with the true {click.name} (the pixels where its own "
              "Gaussians hold at least half the blend, as a selection is shown) over the held-out views: "
              f"{_pct(picked.iou)}%; there, the selection's pixels lie on {_covers(covers)}. Rendered with "
              "per-Gaussian opacity masking, which blends exactly like the extracted PLYs "
              f" {paths['object'].name} and {paths['rest'].name}.")
    others = [c for c in covers if c[0] not in (click.name, "background")]
    if others and others[0][1] > 0.5:
        r.paragraph(f"The click selected more than {click.name}: the consistent maps above merged it with "
                    f"{others[0][0]} into one instance, so the query returns both. This is the pipeline's known "
                    "weakness at high mask noise (small table-top items merged into their support); cleaner "
                    "masks (a lower --noise) usually keep the item apart.", note=True)
    tiles = []
    for key, label in (("click", "clicked view"), ("test", "held-out view")):
        v, rgb, alpha, rest_rgb, rest_alpha = picked.pictures[key]
        tiles.append((f"{click.name} alone, {label} {ds.names[v]}", _on_checker(rgb, alpha), f"object_{key}_view"))
        tiles.append((f"scene without {click.name}, {label}", _on_checker(rest_rgb, rest_alpha), f"rest_{key}_view"))
    r.figures(tiles)

    r.section("Scores against the ground truth",
              "trace3d is the pipeline above; naive lifts each view's masks independently (no association); "
              "the oracle uses the true objects (the ceiling). NV: novel-view segmentation of queried "
              "objects; Ext: each object's selected Gaussians rendered alone against its true render; Pan: "
              "panoptic instance scores on the held-out views; As: association of the training views' maps. "
              "Percentages except PSNR (dB) and time (s; trace3d: all of prepare).")
    r.table(["method"] + [t for _, t, _ in COLUMNS] + ["Gaussians"],
            [[row["method"]] + [_cell(row.get(k), s) for k, _, s in COLUMNS] + [f"{row['gaussians']:,}"]
             for row in rows])

    r.section("Time", "Each demo step (wall clock), and the stages of prepare as its manifest.json records them.")
    r.table(["demo step", "seconds"], [[k, f"{v:.2f}"] for k, v in steps.times.items()])
    stages = manifest.get("stages", {})
    r.table(["prepare stage", "seconds"],
            [[("  of which traces" if k == "git_traces" else k), f"{v:.2f}"] for k, v in stages.items()]
            + [["prepare total", f"{manifest.get('seconds', 0):.2f}"]])
    return r.save()


def _covers(covers) -> str:
    """``table_0 81% (97% of it), box_0 6% (100% of it)``: objects under a selection's pixels."""
    return ", ".join(f"{name} {100 * share:.0f}% ({100 * part:.0f}% of it)" if name != "background"
                     else f"background {100 * share:.0f}%" for name, share, part in covers) or "nothing"


def _cell(value, scale: float) -> str:
    return "-" if value is None or not np.isfinite(value) else f"{value * scale:.1f}"

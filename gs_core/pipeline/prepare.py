"""``gs-core prepare DATASET --out WORK``: patches, GIT, consistent maps, density control and the
per-Gaussian instance ids at every granularity, written to the work folder (:mod:`.workdir`).

Resumable: each view's GIT is cached under ``WORK/cache`` keyed on the scene, the view's masks and
the settings, so a run stopped by Ctrl-C or a crash continues where it stopped; a completed run
with the same inputs is not repeated (``--force`` repeats it).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import UserError
from ..methods.base import PreparedResult, PrepareInput, Preparer
from .workdir import WorkDir, file_fingerprint, fingerprint

if TYPE_CHECKING:
    from ..models.clip import ClipOptions
    from .sam_masks import SamOptions

LEVELS = np.round(np.linspace(0.0, 1.0, 11), 2)  # granularity grid: 0 finest, 0.5 objects, 1 groups
FINEST_SCORE = 0.95  # the merge score that level 0 cuts the tree at
WORK_FORMAT = 2  # bumped when what prepare writes changes meaning (2: nested levels), so old WORKs recompute


def level_threshold(level: float, theta: float, floor: float) -> float:
    """Merge-tree cut for a granularity ``level`` in [0, 1]: 0 -> only near-certain merges (parts
    stay apart), 0.5 -> ``theta`` (objects), 1 -> ``floor`` (groups); linear in between."""
    if level <= 0.5:
        return FINEST_SCORE + (theta - FINEST_SCORE) * level / 0.5
    return theta + (floor - theta) * (level - 0.5) / 0.5


@dataclass
class PrepareOptions:
    dataset: Path | None  # None: only a splat file (--scene); virtual views are rendered (issue 12)
    out: Path
    scene: Path | None = None
    method: str = "trace3d"
    device: str = "cpu"
    backend: str = "auto"
    theta: float = 0.5
    force: bool = False
    sam: "SamOptions | None" = None  # SAM makes the masks when the dataset has none (issue 12)
    clip: "ClipOptions | None" = None  # CLIP features for text queries


class DiskViewCache:
    """Per-view GIT on disk, keyed on the scene's arrays (so the refined scene gets its own)."""

    def __init__(self, work: WorkDir, key: str):
        self.work, self.key = work, key

    def _path(self, scene, view: int) -> Path:
        scene_key = fingerprint(scene.means, scene.log_scales, scene.quats, scene.opacity_logits)
        return self.work.cache_dir(self.key) / scene_key / f"{view:05d}.npz"

    def get(self, scene, view: int):
        from ..trace3d import ViewGIT

        path = self._path(scene, view)
        if not path.is_file():
            return None
        try:
            with np.load(path) as z:
                return ViewGIT(z["gaussians"], z["patches"], z["weights"], z["seen"], z["total"], int(z["num_patches"]))
        except (OSError, ValueError, KeyError):
            return None  # a torn file from a crash: trace again

    def put(self, scene, view: int, git) -> None:
        import io

        from ..io.atomic import atomic_write

        path = self._path(scene, view)
        path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        np.savez(buffer, gaussians=git.gaussians, patches=git.patches, weights=git.weights, seen=git.seen,
                 total=git.total, num_patches=git.num_patches)
        with atomic_write(path, "wb") as fh:
            fh.write(buffer.getvalue())


def _mask_stacks(ds) -> tuple[list[int], list[np.ndarray], list[str]]:
    """Views that have masks (SAM-style stacks, else instance PNGs), their stacks and fingerprints."""
    from ..io.masks import labels_to_stack

    views, stacks, prints = [], [], []
    for i in range(len(ds)):
        stack = ds.masks(i)
        source = ds.mask_source(i) if stack is not None else None
        if stack is None:
            ids = ds.label_map(i)
            if ids is not None:
                stack, _ = labels_to_stack(ids)
                source = ds.object_mask_dir / Path(ds.names[i]).with_suffix(".png")
        if stack is None:
            continue
        views.append(i)
        stacks.append(np.asarray(stack, bool))
        prints.append(file_fingerprint(source) if source.is_file() else
                      [file_fingerprint(p) for p in sorted(source.glob("*.png"))])
    if not views:
        raise UserError(f"{ds.root}: no masks for any view (expected masks/<image stem>.npz or "
                        "object_mask/<image stem>.png); give --sam-checkpoint FILE to make SAM masks")
    return views, stacks, prints


def _trace3d_config(options: PrepareOptions):
    from ..methods.trace3d import Trace3DConfig
    from ..trace3d import ConsistencyConfig

    config = Trace3DConfig(consistency=ConsistencyConfig(theta=options.theta), backend=options.backend,
                           device=options.device)
    return replace(config, density=None) if options.method == "git-consistent" else config


def _run_trace3d(inp: PrepareInput, progress) -> PreparedResult:
    """Trace3D: GIT, consistent maps, density control; every granularity from the merge tree."""
    from ..methods import trace3d
    from ..trace3d.consistency import nested_level_labels

    config = _trace3d_config(inp.options)
    result = trace3d.run(inp.scene, inp.cameras, inp.stacks, config, images=inp.images, progress=progress,
                         cache=inp.cache)
    inst, cc = result.instances, config.consistency
    cuts = [inst.tree.cut(level_threshold(level, cc.theta, cc.floor), inst.store.patch_view if cc.absorb_unconfirmed
                          else None) for level in LEVELS]
    level_labels = nested_level_labels(inst.store, cuts, anchor=int(np.argmin(np.abs(LEVELS - 0.5))))
    return PreparedResult(result.scene, result.labels, result.confidence, LEVELS, level_labels,
                          result.view_maps(), inst.num_instances, result.stages, result.info)


def _trace_settings(options: PrepareOptions) -> str:
    """What one view's GIT depends on, beside the scene and the view's masks."""
    c = _trace3d_config(options)
    return repr((c.top_k, c.power, c.min_area, c.visibility, c.backend, c.device))


TRACE3D = Preparer(settings=lambda options: repr(_trace3d_config(options)), run=_run_trace3d,
                   cache_settings=_trace_settings)


def _iqgs_settings(options: PrepareOptions) -> str:
    from ..methods import iqgs

    return repr(iqgs.prepare_config(options))


def _iqgs_run(inp: PrepareInput, progress) -> PreparedResult:
    from ..methods import iqgs

    return iqgs.prepare_iqgs(inp, progress)


IQGS = Preparer(settings=_iqgs_settings, run=_iqgs_run)


def _proto_saga_settings(options: PrepareOptions) -> str:
    from ..methods import proto_saga

    return repr(proto_saga.prepare_config(options))


def _proto_saga_run(inp: PrepareInput, progress) -> PreparedResult:
    from ..methods import proto_saga

    return proto_saga.prepare_proto_saga(inp, progress)


PROTO_SAGA = Preparer(settings=_proto_saga_settings, run=_proto_saga_run)

# --method name -> Preparer. A method adds one line here; its module is imported inside its functions,
# so `prepare` loads only the method it runs.
PREPARERS: dict[str, Preparer] = {"trace3d": TRACE3D, "git-consistent": TRACE3D, "iqgs": IQGS, "iqgs-h": IQGS,
                                  "proto-saga": PROTO_SAGA}


def prepare(options: PrepareOptions, progress=None, log=print) -> dict:
    """Run the pipeline of ``options``; returns the manifest written to WORK/manifest.json. ``log``
    prints messages such as SAM's time estimate."""
    from ..dataset import Dataset
    from ..io.errors import SceneFormatError
    from ..scene import GaussianScene

    say = progress or (lambda stage, done, total: None)
    if options.method not in PREPARERS:
        raise UserError(f"--method {options.method}: choose from {', '.join(PREPARERS)}")
    if options.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise UserError("--device cuda: torch sees no NVIDIA GPU here; use --device cpu")
    out = Path(options.out).resolve()
    if options.dataset is None:
        if options.scene is None or options.sam is None:
            raise UserError("give a DATASET folder, or --scene PLY with --sam-checkpoint FILE to segment a splat file "
                            "that came without its photos")
        from ..preflight import check_output_dir
        from ..virtual_views import dataset_for_splats

        check_output_dir(out, "--out")
        options = replace(options, dataset=dataset_for_splats(Path(options.scene), out, progress=say, log=log))
    dataset_root = Path(options.dataset).resolve()
    if out == dataset_root or dataset_root in out.parents:
        raise UserError(f"--out {options.out}: must not be inside the dataset folder {options.dataset} "
                        "(the dataset is never written to)")
    t_start = time.perf_counter()
    ds = Dataset.load(options.dataset)
    if options.sam is not None:
        from .sam_masks import has_masks, masks_for_prepare

        if not has_masks(ds):
            from ..preflight import check_output_dir

            check_output_dir(out, "--out")
            ds, _, _ = masks_for_prepare(ds, out, options.sam, say, log)
        else:
            log(f"{ds.root} has masks: --sam-checkpoint is not used (remove its masks/ to make new ones)")
    scene_path = Path(options.scene) if options.scene else ds.scene_path
    if scene_path is None:
        raise UserError(f"{ds.root / 'scene.ply'}: no such file; give the trained splats with --scene PLY")
    if not scene_path.is_file():
        raise UserError(f"--scene {scene_path}: no such file")
    try:
        scene = GaussianScene.load(scene_path)
    except SceneFormatError as exc:  # PLY, compressed PLY, SPZ or .splat
        raise UserError(str(exc)) from None
    views, stacks, mask_prints = _mask_stacks(ds)
    cameras = [ds.cameras[v] for v in views]
    preparer = PREPARERS[options.method]
    settings = preparer.settings(options)
    inputs_print = (WORK_FORMAT, file_fingerprint(scene_path), [(c.name, c.fx, c.fy, c.cx, c.cy, c.width, c.height,
                    np.round(c.world_to_camera, 9).tolist()) for c in cameras], mask_prints)
    key = fingerprint(*inputs_print, settings, None if options.clip is None else options.clip.to_json())
    from ..preflight import check_output_dir

    check_output_dir(out, "--out")
    work = WorkDir(out)
    if not options.force and work.manifest_path.is_file():
        try:
            old = work.manifest()
        except UserError:
            old = {}
        if old.get("status") == "complete" and old.get("key") == key and work.scene_path.is_file():
            say("up to date", 1, 1)
            return {**old, "up_to_date": True}
    manifest = {"status": "running", "key": key, "dataset": str(dataset_root), "scene": str(scene_path.resolve()),
                "method": options.method, "views": [ds.names[v] for v in views], "config": settings}
    work.write_manifest(manifest)
    cache_key = key if preparer.cache_settings is None else fingerprint(*inputs_print, preparer.cache_settings(options))
    inputs = PrepareInput(scene, cameras, stacks, images=lambda k: ds.image(views[k]), options=options,
                          cache=DiskViewCache(work, cache_key))
    result = preparer.run(inputs, say)
    say("writing", 0, 1)
    write_prepared(work, result, cameras, views=ds.cameras)
    if options.clip is not None:
        from ..language import prepare_language

        manifest["clip"] = prepare_language(work.root, result.scene, cameras, stacks, inputs.images, options.clip, say,
                                             options.backend)
    manifest.update(status="complete", gaussians=len(result.scene), instances=result.num_instances,
                    stages=result.stages, info=result.info, seconds=time.perf_counter() - t_start)
    work.write_manifest(manifest)
    work.clear_cache()
    say("writing", 1, 1)
    return manifest


def write_prepared(work: WorkDir, result: PreparedResult, cameras, views=None) -> None:
    """The arrays every later command reads (:mod:`.workdir`), each written atomically; ``views``: every
    posed image of the dataset (clicks from views that were not trained on)."""
    result.scene.save(work.scene_path)
    work.save_npy("labels.npy", result.labels.astype(np.int32))
    work.save_npy("confidence.npy", result.confidence.astype(np.float32))
    work.save_npz("levels.npz", levels=np.asarray(result.levels, np.float64),
                  labels=np.asarray(result.level_labels).astype(np.int32))
    work.save_npz("view_maps.npz", **{f"view_{k:05d}": m.astype(np.int32) for k, m in enumerate(result.view_maps)})
    work.save_cameras(cameras, views)


# ---- command line ------------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", type=Path, nargs="?", help="dataset folder: images/, sparse/0 or transforms.json, "
                        "scene.ply, masks/ (or object_mask/)")
    parser.add_argument("--out", type=Path, required=True, help="work folder to write (never inside the dataset)")
    parser.add_argument("--scene", type=Path, help="trained splats: INRIA PLY, PlayCanvas compressed PLY, SPZ or .splat "
                        "(default DATASET/scene.ply); SPZ is read in its right-up-back axes, turned to PLY's")
    parser.add_argument("--method", default="trace3d", choices=sorted(PREPARERS),
                        help="trace3d: consistent maps + density control; git-consistent: no density control; "
                        "iqgs / iqgs-h: instance queries trained on the consistent maps / on each view's masks")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where the engine runs")
    parser.add_argument("--backend", default="auto", choices=["auto", "torch", "cpu", "gsplat"],
                        help="engine backend (auto: native CPU kernels, gsplat on CUDA)")
    parser.add_argument("--theta", type=float, default=0.5,
                        help="merge threshold of the consistent maps (paper 0.5, released code 0.4)")
    parser.add_argument("--force", action="store_true", help="recompute even if WORK is up to date")
    from ..models import clip
    from . import sam_masks

    sam_masks.add_arguments(parser)
    clip.add_arguments(parser)


def run_cli(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    if not 0.0 < args.theta < 1.0:
        raise UserError(f"--theta {args.theta}: must be between 0 and 1")
    console = Console(stderr=True)
    options = PrepareOptions(args.dataset, args.out, args.scene, args.method, args.device, args.backend,
                             args.theta, args.force)
    from ..models import clip
    from . import sam_masks

    options.sam, options.clip = sam_masks.options_from_args(args), clip.options_from_args(args)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=False) as bar:
        tasks: dict[str, int] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        manifest = prepare(options, progress, log=bar.console.print)
    if manifest.get("up_to_date"):
        console.print(f"{args.out} is up to date with its inputs (use --force to recompute)")
        return 0
    stages = ", ".join(f"{k} {v:.1f}s" for k, v in manifest.get("stages", {}).items() if not k.startswith("git_"))
    console.print(f"prepared {manifest.get('gaussians')} Gaussians, {manifest.get('instances')} instances "
                  f"in {manifest.get('seconds', 0):.1f} s ({stages}) -> {args.out}")
    return 0


run = run_cli

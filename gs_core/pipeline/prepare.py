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
from ..methods.registry import REGISTRY
from .workdir import WorkDir, file_fingerprint, fingerprint

if TYPE_CHECKING:
    from ..models.clip import ClipOptions
    from .sam_masks import SamOptions

WORK_FORMAT = 2  # bumped when what prepare writes changes meaning (2: nested levels), so old WORKs recompute


@dataclass
class PrepareOptions:
    dataset: Path | None  # None: only a splat file (--scene); virtual views are rendered (issue 12)
    out: Path
    scene: Path | None = None
    method: str = "git-consistent"  # density control (trace3d) did not pay for its time (docs/benchmarks.md, issue 26)
    device: str = "cpu"
    backend: str = "auto"
    theta: float = 0.5
    force: bool = False
    sam: "SamOptions | None" = None  # SAM makes the masks when the dataset has none (issue 12)
    clip: "ClipOptions | None" = None  # CLIP features for text queries
    ray: str | None = None  # run the per-view steps on Ray: "local" (a cluster on this machine) or an address
    blocks: tuple[int, int] | None = None  # split the scene into NX x NY blocks with overlap (trace3d's core)


class DiskViewCache:
    """Per-view GIT on disk, keyed on the scene's arrays (so the refined scene gets its own).

    An entry that does not load as a GIT of this scene (torn by a crash, damaged) is traced again
    and rewritten; ``read=False`` (``--force``) traces every view and only writes. Each folder it
    makes carries :data:`~.workdir.CACHE_MARKER`, so :meth:`WorkDir.clear_cache` deletes only its own files.
    """

    def __init__(self, work: WorkDir, key: str, read: bool = True):
        self.work, self.key, self.read = work, key, read

    def _path(self, scene, view: int) -> Path:
        scene_key = fingerprint(scene.means, scene.log_scales, scene.quats, scene.opacity_logits)
        return self.work.cache_dir(self.key) / scene_key / f"{view:05d}.npz"

    def get(self, scene, view: int):
        from ..io.safe_load import UnsafeFileError, load_npz
        from ..methods.trace3d import ViewGIT

        path = self._path(scene, view)
        if not self.read or not path.is_file():
            return None
        try:
            z = load_npz(path, ("gaussians", "patches", "weights", "seen", "total", "num_patches"),
                         hint="delete the work folder's cache folder")
        except UnsafeFileError:
            raise  # planted code: say so, never drop it silently
        except UserError:
            return None  # a torn file from a crash: trace again
        n, e = len(scene), len(z["gaussians"])
        ints = all(np.issubdtype(z[k].dtype, np.integer) for k in ("gaussians", "patches", "seen", "num_patches"))
        if (not ints or z["num_patches"].shape != () or any(z[k].shape != (e,) for k in ("patches", "weights"))
                or z["total"].shape != z["seen"].shape or z["seen"].ndim != 1
                or any(len(z[k]) and not (0 <= z[k].min() and z[k].max() < n) for k in ("gaussians", "seen"))
                or (e and not (0 <= z["patches"].min() and z["patches"].max() < int(z["num_patches"])))):
            return None  # not a GIT of this scene: trace again
        return ViewGIT(z["gaussians"], z["patches"], z["weights"], z["seen"], z["total"], int(z["num_patches"]))

    def get_labels(self, scene, block: int) -> np.ndarray | None:
        """A block's labels (``--blocks``, whose key is its own: its folder holds only blocks), or None."""
        path = self._path(scene, block)
        if not self.read or not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                labels = z["labels"]
        except (OSError, ValueError, KeyError):
            return None  # torn: run the block again
        ok = labels.ndim == 1 and np.issubdtype(labels.dtype, np.integer) and labels.min(initial=-1) >= -1
        return labels if ok else None  # not a block's labels: run it again

    def put_labels(self, scene, block: int, labels: np.ndarray) -> None:
        import io

        from ..io.atomic import atomic_write
        from .workdir import CACHE_MARKER

        path = self._path(scene, block)
        path.parent.mkdir(parents=True, exist_ok=True)
        if not (path.parent / CACHE_MARKER).is_file():
            (path.parent / CACHE_MARKER).write_text("per-view GIT cache of gs-core prepare\n")
        buffer = io.BytesIO()
        np.savez(buffer, labels=labels)
        with atomic_write(path, "wb") as fh:
            fh.write(buffer.getvalue())

    def put(self, scene, view: int, git) -> None:
        import io

        from ..io.atomic import atomic_write
        from .workdir import CACHE_MARKER

        path = self._path(scene, view)
        path.parent.mkdir(parents=True, exist_ok=True)
        if not (path.parent / CACHE_MARKER).is_file():
            (path.parent / CACHE_MARKER).write_text("per-view GIT cache of gs-core prepare\n")
        buffer = io.BytesIO()
        np.savez(buffer, gaussians=git.gaussians, patches=git.patches, weights=git.weights, seen=git.seen,
                 total=git.total, num_patches=git.num_patches)
        with atomic_write(path, "wb") as fh:
            fh.write(buffer.getvalue())


def _mask_stacks(ds) -> tuple[list[int], list[np.ndarray], list[str]]:
    """Views that have masks (:meth:`~gs_core.dataset.Dataset.mask_stack`), their stacks and fingerprints."""
    views, stacks, prints = [], [], []
    for i in range(len(ds)):
        stack, source = ds.mask_stack(i)
        if stack is None:
            continue
        views.append(i)
        stacks.append(np.asarray(stack, bool))
        prints.append(file_fingerprint(source) if source.is_file() else
                      [file_fingerprint(p) for p in sorted(source.glob("*.png"))])
    if not views:
        raise UserError(f"{ds.root}: no masks for any view (expected masks/<image stem>.npz or "
                        "object_mask/<image stem>.png); give --sam-checkpoint FILE to make SAM masks")
    if not any(stack.shape[0] and stack.any() for stack in stacks):  # a view with none is fine (a blank wall)
        where = ds.masks_dir if ds.masks_dir is not None else ds.object_mask_dir
        raise UserError(f"{where}: every view's mask stack is empty ({len(views)} views), so there is nothing to "
                        "segment; with SAM masks, check the checkpoint (or try more --sam-points)")
    return views, stacks, prints


# --method name -> Preparer: every method with a ``preparer`` in the one registry
PREPARERS: dict[str, Preparer] = {name: entry.preparer for name, entry in REGISTRY.items() if entry.preparer}


def _blocks_settings(options) -> str:
    from ..methods import blocks

    return blocks.prepare_settings(options)


def _blocks_run(inp: PrepareInput, progress) -> PreparedResult:
    from ..methods import blocks

    return blocks.prepare_blocks(inp, progress)


BLOCKS = Preparer(settings=_blocks_settings, run=_blocks_run)  # --blocks NXxNY: the scene in blocks, stitched


def prepare(options: PrepareOptions, progress=None, log=print, executor=None) -> dict:
    """Run the pipeline of ``options``; returns the manifest written to WORK/manifest.json. ``log``
    prints messages such as SAM's time estimate. ``executor`` runs the per-view steps
    (:mod:`gs_core.parallel`; default: a RayExecutor with ``options.ray``, else here)."""
    if executor is not None or options.ray is None:  # where the per-view steps run is not in the key
        return _prepare(options, progress, log, executor)
    owned = ray_executor(options, log)
    try:
        return _prepare(options, progress, log, owned)
    finally:
        owned.close()


def check_ray(options: PrepareOptions) -> None:
    """A one-line error when ``options`` cannot run on Ray (``--ray`` given with a GPU device, or Ray
    not installed); nothing is started."""
    if options.device != "cpu":
        raise UserError("--ray: the per-view steps run on the cluster's CPU workers; use --device cpu with --ray")
    from .distributed import require_ray

    require_ray()


def ray_executor(options: PrepareOptions, log=None):
    """The :class:`~gs_core.pipeline.distributed.RayExecutor` for ``options.ray`` (it connects on first
    use), after :func:`check_ray`. The server keeps one across prepares; ``prepare`` without an
    ``executor`` makes one per run."""
    check_ray(options)
    from .distributed import RayExecutor

    say = (lambda ex: log(f"--ray {options.ray}: {ex.workers} CPUs")) if log is not None else None
    return RayExecutor(options.ray, on_connect=say)


def _prepare(options: PrepareOptions, progress, log, executor) -> dict:
    from ..dataset import Dataset
    from ..io.errors import SceneFormatError
    from ..scene import GaussianScene

    say = progress or (lambda stage, done, total: None)
    if options.method not in PREPARERS:
        raise UserError(f"--method {options.method}: choose from {', '.join(PREPARERS)}")
    if options.blocks is not None and options.method not in ("trace3d", "git-consistent"):
        raise UserError(f"--blocks: runs the Trace3D core per block; --method {options.method} does not split")
    if options.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise UserError("--device cuda: torch sees no NVIDIA GPU here; use --device cpu")
    if not (isinstance(options.theta, (int, float)) and 0.0 < options.theta < 1.0):
        raise UserError(f"--theta {options.theta}: must be between 0 and 1")
    out = Path(options.out).resolve()
    work = WorkDir(out)
    work.claim("--out")  # before anything is written there
    for flag, given in (("--scene", options.scene), ("DATASET", options.dataset)):
        if given is not None and work.owns(given) and Path(given).resolve() != out / "virtual":
            raise UserError(f"{flag} {given}: is inside the work folder {options.out}, where prepare writes; "
                            "prepare would overwrite its own input (copy it elsewhere first)")
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
            ds, _, _ = masks_for_prepare(ds, out, options.sam, say, log, executor)
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
    preparer = PREPARERS[options.method] if options.blocks is None else BLOCKS
    settings = preparer.settings(options)
    inputs_print = (WORK_FORMAT, file_fingerprint(scene_path), [(c.name, c.fx, c.fy, c.cx, c.cy, c.width, c.height,
                    np.round(c.world_to_camera, 9).tolist()) for c in cameras], mask_prints)
    key = fingerprint(*inputs_print, settings, None if options.clip is None else options.clip.to_json())
    from ..preflight import check_output_dir

    check_output_dir(out, "--out")
    if work.owns(scene_path):
        raise UserError(f"--scene {scene_path}: is inside the work folder {options.out}, where prepare writes; "
                        "prepare would overwrite its own input (copy it elsewhere first)")
    if not options.force and work.manifest_path.is_file():
        try:
            old = work.manifest()
        except UserError:  # damaged: rebuilt below
            old = {}
        if old.get("status") == "complete" and old.get("key") == key and work.outputs_intact(old):
            say("up to date", 1, 1)
            return {**old, "up_to_date": True}
    manifest = {"status": "running", "key": key, "dataset": str(dataset_root), "scene": str(scene_path.resolve()),
                "method": options.method, "views": [ds.names[v] for v in views], "config": settings}
    work.write_manifest(manifest)
    cache_key = key if preparer.cache_settings is None else fingerprint(*inputs_print, preparer.cache_settings(options))
    inputs = PrepareInput(scene, cameras, stacks, images=lambda k: ds.image(views[k]), options=options,
                          cache=DiskViewCache(work, cache_key, read=not options.force), executor=executor)
    result = preparer.run(inputs, say)
    say("writing", 0, 1)
    write_prepared(work, result, cameras, views=ds.cameras)
    if options.clip is not None:
        from ..language import prepare_language

        manifest["clip"] = prepare_language(work.root, result.scene, cameras, stacks, inputs.images, options.clip, say,
                                             options.backend, result.view_maps, result.labels)
    manifest.update(status="complete", gaussians=len(result.scene), instances=result.num_instances,
                    stages=result.stages, info=result.info, seconds=time.perf_counter() - t_start,
                    outputs=work.output_prints())
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
    parser.add_argument("--method", default="git-consistent", choices=sorted(PREPARERS),
                        help="git-consistent (default): consistent maps, your splats as they are; trace3d: + density "
                        "control (splits/prunes splats: several times the time, no gain measured); "
                        "iqgs / iqgs-h: instance queries trained on the consistent maps / on each view's masks")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where the engine runs")
    parser.add_argument("--backend", default="auto", choices=["auto", "torch", "cpu", "gsplat"],
                        help="engine backend (auto: native CPU kernels, gsplat on CUDA)")
    parser.add_argument("--theta", type=float, default=0.5,
                        help="merge threshold of the consistent maps (paper 0.5, released code 0.4)")
    parser.add_argument("--force", action="store_true", help="recompute even if WORK is up to date")
    parser.add_argument("--blocks", type=_grid, metavar="NXxNY",
                        help="split the scene into NX x NY spatial blocks with overlap, run the Trace3D core "
                        "(no density control) per block on its views, and stitch the ids across the borders "
                        "(for scenes too large for one machine; with --ray the blocks run on the cluster)")
    parser.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                        help="run the per-view steps (patches, traces, density control's renders) as Ray tasks: "
                        "alone, a local cluster on this machine's cores; with ADDRESS (host:port of `ray start "
                        "--head`), that cluster (needs pip install 'gs-core[ray]'; the results are the same)")
    from ..models import clip
    from . import sam_masks

    sam_masks.add_arguments(parser)
    clip.add_arguments(parser)


def _grid(text: str) -> tuple[int, int]:
    """``--blocks 2x3`` -> (2, 3)."""
    try:
        nx, ny = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected NXxNY, e.g. 2x2") from None
    if nx < 1 or ny < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: block counts must be at least 1")
    return nx, ny


def run_cli(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    if not 0.0 < args.theta < 1.0:
        raise UserError(f"--theta {args.theta}: must be between 0 and 1")
    console = Console(stderr=True)
    options = PrepareOptions(args.dataset, args.out, args.scene, args.method, args.device, args.backend,
                             args.theta, args.force, ray=args.ray, blocks=args.blocks)
    from ..models import clip
    from . import sam_masks

    options.sam, options.clip = sam_masks.options_from_args(args), clip.options_from_args(args)
    # the bars start with the first stage: a mistake found before any work is one line, with no bar before it
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   console=console, transient=False)
    tasks: dict[str, int] = {}

    def progress(stage: str, done: int, total: int) -> None:
        if not tasks:
            bar.start()
        if stage not in tasks:
            tasks[stage] = bar.add_task(stage, total=total)
        bar.update(tasks[stage], completed=done, total=total)

    try:
        manifest = prepare(options, progress, log=console.print)
    finally:
        if tasks:
            bar.stop()
    if manifest.get("up_to_date"):
        console.print(f"{args.out} is up to date with its inputs (use --force to recompute)")
        return 0
    stages = ", ".join(f"{k} {v:.1f}s" for k, v in manifest.get("stages", {}).items() if not k.startswith("git_"))
    console.print(f"prepared {manifest.get('gaussians')} Gaussians, {manifest.get('instances')} instances "
                  f"in {manifest.get('seconds', 0):.1f} s ({stages}) -> {args.out}")
    return 0


run = run_cli

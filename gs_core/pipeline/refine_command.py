"""``gs-core refine WORK``: photometric refinement of a prepared work folder's scene against its
training photos (:func:`gs_core.refine.refine`), written back to ``WORK/scene.ply`` (or ``--out``).

Rows are neither added nor removed, so every per-Gaussian array of WORK still indexes the scene.
Ctrl-C stops after the current step and keeps a checkpoint in ``WORK/cache/refine``; running the same
command again resumes from it. A completed run is recorded in the manifest, and asking again for the
same refinement of the scene it produced is a no-op (``--force`` refines again).
"""

from __future__ import annotations

import argparse
import signal
from pathlib import Path

from ..errors import UserError
from .workdir import WorkDir, file_fingerprint, fingerprint


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..preflight import positive_int

    parser.add_argument("work", type=Path, help="work folder written by gs-core prepare")
    parser.add_argument("--steps", type=positive_int, default=1000, help="optimisation steps (one random view each)")
    parser.add_argument("--crop", type=positive_int, help="render a random CROP x CROP window per step instead of "
                        "the whole view (faster steps, SSIM still sees neighbourhoods)")
    parser.add_argument("--ssim-weight", type=float, default=0.2, help="lambda of the D-SSIM term (3DGS: 0.2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", default="auto", choices=["auto", "torch", "cpu", "gsplat"])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where the optimisation runs")
    parser.add_argument("--out", type=Path, help="write the refined PLY here instead of WORK/scene.ply")
    parser.add_argument("--force", action="store_true", help="refine even if this refinement was already done")


def _training_views(work: WorkDir):
    """The work folder's cameras and a loader of their photos from the dataset it was prepared from."""
    from ..dataset import Dataset

    manifest = work.manifest()
    root = manifest.get("dataset")
    if not root or not Path(root).is_dir():
        raise UserError(f"{work.manifest_path}: its dataset folder {root!r} is gone; the photos are needed to refine")
    ds = Dataset.load(root)
    cameras = work.cameras()
    index = {name: i for i, name in enumerate(ds.names)}
    missing = [c.name for c in cameras if c.name not in index]
    if missing:
        raise UserError(f"{root}: no image for view {missing[0]} of {work.root / 'cameras.json'}")
    return cameras, lambda k: ds.image(index[cameras[k].name])


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..io.ply import PlyError
    from ..refine import RefineConfig, refine
    from ..scene import GaussianScene

    if not 0.0 <= args.ssim_weight <= 1.0:
        raise UserError(f"--ssim-weight {args.ssim_weight}: must be between 0 and 1")
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise UserError("--device cuda: torch sees no NVIDIA GPU here; use --device cpu")
    console = Console(stderr=True)
    work = WorkDir(args.work, must_exist=True)
    if args.out is not None and Path(args.out).resolve() == work.scene_path.resolve():
        args.out = None  # the default: refine WORK/scene.ply in place
    if args.out is not None:
        from ..preflight import check_not_inputs

        check_not_inputs([("--out", args.out)], [], work)
    try:
        scene = GaussianScene.load(work.scene_path)
    except PlyError as exc:
        raise UserError(str(exc)) from None
    cameras, images = _training_views(work)
    config = RefineConfig(steps=args.steps, crop=args.crop, ssim_weight=args.ssim_weight, seed=args.seed,
                          backend=args.backend, device=args.device)
    manifest = work.manifest()
    done = manifest.get("refine", {})
    scene_key = fingerprint(scene.means, scene.quats, scene.log_scales, scene.opacity_logits, scene.sh_dc)
    if (not args.force and args.out is None and done.get("scene_after") == scene_key
            and done.get("config") == repr(config)):
        console.print(f"{work.scene_path} is already this refinement's result (use --force to refine again)")
        return 0
    stop = {"asked": False}

    def on_interrupt(signum, frame):  # finish the step, save a checkpoint, then stop
        stop["asked"] = True

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        with Progress(TextColumn("refine"), BarColumn(), MofNCompleteColumn(), TextColumn("loss {task.fields[loss]}"),
                      TimeElapsedColumn(), console=console) as bar:
            task = bar.add_task("refine", total=config.steps, loss="-")
            refined, report = refine(scene, cameras, images, config,
                                     progress=lambda s, n, loss: bar.update(task, completed=s, loss=f"{loss:.4f}"),
                                     should_stop=lambda: stop["asked"],
                                     checkpoint=work.root / "cache" / "refine" / "checkpoint.pt")
    finally:
        signal.signal(signal.SIGINT, previous)
    if report.cancelled:
        console.print(f"cancelled after step {report.steps} of {config.steps}; run the same command again to resume")
        return 130
    out = args.out or work.scene_path
    refined.save(out)
    if args.out is None:
        record = {k: v for k, v in report.to_json().items() if k != "losses"}
        manifest["refine"] = {**record, "config": repr(config), "scene_after": fingerprint(
            refined.means, refined.quats, refined.log_scales, refined.opacity_logits, refined.sh_dc)}
        if isinstance(manifest.get("outputs"), dict):  # the refined scene is WORK's output now (prepare keeps it)
            manifest["outputs"]["scene.ply"] = file_fingerprint(work.scene_path)
        work.write_manifest({k: v for k, v in manifest.items() if k != "format"})
    console.print(f"refined {len(refined)} Gaussians over {report.steps} steps"
                  + (f" (resumed at step {report.resumed_from})" if report.resumed_from else "")
                  + f": training-view PSNR {report.psnr_before:.2f} -> {report.psnr_after:.2f} dB "
                  f"in {report.seconds:.1f} s -> {out}")
    return 0

"""``gs-core query WORK --text "red chair"`` (CLIP relevancy, :func:`gs_core.language.text_query`) and
``gs-core query WORK --view V --pixel X Y --online --sam-checkpoint FILE`` (self-prompting with SAM's
point predictor over the dataset's views, :func:`gs_core.selfprompt.self_prompt`): the two queries
that need foundation models, as options of ``gs-core query``."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ..errors import UserError
from .workdir import WorkDir, save_npy


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--text", help="a text query scored against the work folder's CLIP features "
                        "(prepare --clip-model); the threshold is automatic unless --threshold is given")
    parser.add_argument("--text-on", choices=["instances", "gaussians"], default=None,
                        help="with --text: score the consistent instances (one CLIP embedding each, from the masks "
                        "associated with it across views) or each Gaussian's lifted per-pixel features (default: "
                        "instances where prepare wrote them)")
    parser.add_argument("--threshold", type=float, help="with --text: relevancy above which a Gaussian is selected")
    parser.add_argument("--scores", type=Path, help="with --text: also write the per-Gaussian relevancy [N] (.npy)")
    parser.add_argument("--online", action="store_true", help="with --view/--pixel: self-prompting, SAM asked again "
                        "in view after view from the selection so far (needs --sam-checkpoint and the photos)")
    parser.add_argument("--sam-checkpoint", type=Path, help="with --online: the SAM checkpoint")
    parser.add_argument("--sam-model", default="auto", help="with --online: checkpoint type (auto: from the file)")
    parser.add_argument("--sam-device", default="cpu", choices=["cpu", "cuda"])


def wanted(args: argparse.Namespace) -> bool:
    return args.text is not None or args.online


def run(args: argparse.Namespace, work: WorkDir) -> int:
    if args.text is not None and args.online:
        raise UserError("give --text or --online, not both")
    if args.text is not None:
        if args.gaussians is not None or args.view is not None or args.mask is not None:
            raise UserError("--text takes no --gaussians, --view or --mask")
        return _text(args, work)
    return _online(args, work)


def _text(args: argparse.Namespace, work: WorkDir) -> int:
    from ..language import text_query

    if args.scores is not None:
        from ..preflight import check_output_file

        check_output_file(args.scores, "--scores")
    if args.threshold is not None and not 0.0 <= args.threshold <= 1.0:
        raise UserError(f"--threshold {args.threshold}: relevancy is in [0, 1]")
    q = text_query(work.root, args.text, threshold=args.threshold, mode=args.text_on)
    save_npy(args.out, q.selected)
    if args.scores is not None:
        save_npy(args.scores, q.score)
    print(f"{args.text!r}: selected {int(q.selected.sum())} Gaussians (relevancy > {q.threshold:.3f}, "
          f"{q.method}) -> {args.out}")
    return 0


def _online(args: argparse.Namespace, work: WorkDir) -> int:
    from ..dataset import Dataset
    from ..models.sam import SamPointPredictor, is_sam2, load_sam, read_checkpoint
    from ..scene import GaussianScene
    from ..selfprompt import self_prompt

    if args.view is None or not args.pixel:
        raise UserError("--online needs --view NAME and at least one --pixel X Y")
    if args.sam_checkpoint is None:
        raise UserError("--online needs --sam-checkpoint FILE (SAM's point predictor)")
    cam = work.camera(args.view)
    root = Path(work.manifest().get("dataset", ""))
    if not root.is_dir():
        raise UserError(f"--online: the photos' dataset folder {root} (from {work.manifest_path}) is gone")
    ds = Dataset.load(root)
    if cam.name not in ds.names:
        raise UserError(f"--online: view {cam.name} is not in the dataset {root}")
    ref = ds.names.index(cam.name)
    for x, y in [*args.pixel, *args.negative]:
        if not (0 <= x < cam.width and 0 <= y < cam.height):
            raise UserError(f"--view {args.view} --pixel/--negative: pixel ({x}, {y}) is outside the "
                            f"{cam.width}x{cam.height} view")
    state = read_checkpoint(args.sam_checkpoint)
    if args.sam_model.startswith("sam2") or (args.sam_model == "auto" and is_sam2(state)):
        from ..models.sam2 import Sam2PointPredictor, load_sam2

        predictor = Sam2PointPredictor(load_sam2(args.sam_checkpoint, args.sam_model, args.sam_device, state)[0])
    else:
        predictor = SamPointPredictor(load_sam(args.sam_checkpoint, args.sam_model, args.sam_device, state)[0])
    del state
    gaussians = GaussianScene.load(work.scene_path).to_gaussians()
    res = self_prompt(gaussians, ds.cameras, lambda k, p, lab: predictor.predict(ds.image(k), p, lab, key=k), ref,
                      np.array(args.pixel), np.array(args.negative).reshape(-1, 2))
    save_npy(args.out, res.selected)
    print(f"selected {int(res.selected.sum())} Gaussians by self-prompting over {len(res.views)} views -> {args.out}")
    return 0

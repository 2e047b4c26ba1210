"""``gs-core query WORK (--gaussians ids.npy | --view NAME --pixel X Y ... [--negative X Y ...] [--refine] |
--view NAME --mask PNG) [--level L] --out selection.npy``: a bool array [N] selecting the instances
pointed at. ``--view`` is any posed image of the dataset (trained on or not); ``--camera JSON`` gives
intrinsics and pose instead (:mod:`.view_camera`). A reference mask selects the instances with most of their
weight inside it
(:func:`gs_core.query.from_mask_weights`); with ``--fit``, the set of instances and the granularity
that fit it best (:func:`gs_core.query.fit_mask_levels`)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from .. import query
from ..errors import UserError
from . import foundation_query
from .segment import load_levels
from .view_camera import add_camera_argument, view_camera
from .workdir import WorkDir, save_npy

def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..preflight import pixel_coordinate

    parser.add_argument("work", type=Path, help="work folder written by gs-core prepare")
    parser.add_argument("--gaussians", type=Path, help=".npy of Gaussian indices (or a bool mask [N]) the user picked")
    parser.add_argument("--view", help="image name of the clicked view (with or without extension): any image of "
                        "the dataset with a camera, trained on or not")
    add_camera_argument(parser)
    parser.add_argument("--pixel", type=pixel_coordinate, nargs=2, action="append", metavar=("X", "Y"), default=[],
                        help="a positive click (repeatable)")
    parser.add_argument("--negative", type=pixel_coordinate, nargs=2, action="append", metavar=("X", "Y"), default=[],
                        help="a negative click (repeatable)")
    parser.add_argument("--refine", action="store_true",
                        help="the --pixel clicks after the first refine its object (a missed part of it): each adds "
                        "only as much of its instance as the selection supports, not a whole other object")
    parser.add_argument("--mask", type=Path, help="a reference mask of the view (PNG, non-zero = inside): the "
                        "instances with most of their weight inside it")
    parser.add_argument("--fit", action="store_true", help="with --mask: the set of instances, and the granularity "
                        "unless --level is given, that fit the mask best (for parts or groups of objects)")
    parser.add_argument("--level", type=float, default=None,
                        help="granularity: 0 parts, 0.5 objects (default), 1 groups")
    parser.add_argument("--backend", default="auto", choices=["auto", "torch", "cpu", "gsplat"],
                        help="engine backend; auto: a click on a 3DGS scene is computed in numpy "
                        "(gs_core.click_rays, no torch start), masks and 2DGS on the native kernels")
    parser.add_argument("--out", type=Path, required=True, help="bool array [N] (.npy)")
    foundation_query.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from ..preflight import check_not_inputs, check_output_file

    check_output_file(args.out, "--out")
    work = WorkDir(args.work, must_exist=True)
    check_not_inputs([("--out", args.out), ("--scores", getattr(args, "scores", None))],
                     [("--gaussians", args.gaussians), ("--mask", args.mask),
                      ("--sam-checkpoint", getattr(args, "sam_checkpoint", None))], work)
    if args.refine and (not args.pixel or args.mask is not None or foundation_query.wanted(args)):
        raise UserError("--refine is for --pixel clicks (the later ones refine the first one's object), "
                        "not --mask, --text or --online")
    if foundation_query.wanted(args):
        return foundation_query.run(args, work)
    levels = load_levels(work)
    labels = levels.at(0.5 if args.level is None else args.level)
    pointed = args.view is not None or args.camera is not None
    if (args.gaussians is None) == (not pointed):
        raise UserError("give either --gaussians ids.npy or --view NAME (or --camera JSON) with --pixel X Y "
                        "(or --mask PNG)")
    if args.gaussians is not None:
        from ..io.safe_load import load_npy

        try:
            picked = load_npy(args.gaussians)
        except UserError as exc:
            raise UserError(f"--gaussians {exc}") from None
        if picked.dtype != bool and not np.issubdtype(picked.dtype, np.integer):
            raise UserError(f"--gaussians {args.gaussians}: expected integer indices or a bool mask, got {picked.dtype}")
        try:
            sel = query.from_gaussians(labels, picked)
        except UserError as exc:
            raise UserError(f"--gaussians {args.gaussians}: {exc}") from None
    else:
        if not args.pixel and args.mask is None:
            raise UserError(f"{_where(args)} needs at least one --pixel X Y, or a --mask PNG")
        if args.pixel and args.mask is not None:
            raise UserError("give --pixel clicks or a --mask, not both")
        from ..scene import GaussianScene

        cam = view_camera(args, work)
        scene = GaussianScene.load(work.scene_path)
        if args.mask is not None:
            from ..engine import project

            sel = _mask_query(args, project(scene.to_gaussians(), cam), levels)
        else:
            try:
                sel = click_selection(work, cam, args.pixel, args.negative, args.level, args.backend, scene=scene,
                                      levels=levels, rule="split-support" if args.refine else "split")
            except UserError as exc:
                raise UserError(f"{_where(args)} --pixel/--negative: {exc}") from None
    save_npy(args.out, sel.selected)
    part = "part of " if sel.partial else ""
    print(f"selected {int(sel.selected.sum())} Gaussians in {part}{len(sel.labels)} instance(s) -> {args.out}")
    return 0


def click_selection(work: WorkDir, camera, positive, negative=(), level: float | None = None,
                    backend: str = "auto", scene=None, levels: "query.LabelLevels | None" = None,
                    rule: str = "split") -> "query.Selection":
    """The instances selected by positive and negative clicks ([K, 2] pixels each) in ``camera`` on the
    work folder's scene, at granularity ``level`` (default 0.5, objects): the one click rule of the CLI,
    the server and the demo (:meth:`gs_core.query.LabelLevels.from_clicks`; ``rule`` "split-support":
    the later positive clicks refine, ``--refine``). ``scene`` and ``levels``: the work folder's, when the
    caller has them loaded."""
    from ..scene import GaussianScene

    scene = GaussianScene.load(work.scene_path) if scene is None else scene
    levels = load_levels(work) if levels is None else levels
    pos, neg = query.click_weights(scene, camera, positive, negative, backend)
    return levels.from_clicks(0.5 if level is None else level, pos, neg, rule=rule, means=scene.means,
                              colors=scene.sh_dc)


def _where(args: argparse.Namespace) -> str:
    return f"--view {args.view}" if args.view is not None else "--camera"


def _mask_query(args: argparse.Namespace, proj, levels) -> "query.Selection":
    from ..io.masks import MaskError, load_label_map

    try:
        mask = load_label_map(args.mask) != 0
    except MaskError as exc:
        raise UserError(f"--mask {exc}") from None
    if mask.shape != (proj.height, proj.width):
        raise UserError(f"--mask {args.mask}: {mask.shape[1]}x{mask.shape[0]}, the view {args.view or '(--camera)'} is "
                        f"{proj.width}x{proj.height}")
    if not mask.any():
        raise UserError(f"--mask {args.mask}: the mask is empty")
    weights = query.mask_weights(proj, mask, backend=args.backend)
    if not args.fit:
        return query.from_mask_weights(levels.at(0.5 if args.level is None else args.level), *weights)
    if args.level is not None:
        sel, iou = query.fit_mask_weights(levels.at(args.level), *weights)
        level = args.level
    else:
        sel, level, iou = query.fit_mask_levels(levels, *weights)
    print(f"reference mask fitted at granularity {level:.2f} (weighted IoU {iou:.2f})")
    return sel

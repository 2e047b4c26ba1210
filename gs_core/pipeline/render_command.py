"""``gs-core render WORK --view NAME [--selection selection.npy] --out image.png``: the view's image
(base colours), or with ``--selection`` the selection's 2D mask as a black/white PNG."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ..errors import UserError
from .view_camera import add_camera_argument, view_camera
from .workdir import WorkDir


def load_selection(path: Path, n: int) -> np.ndarray:
    from ..io.safe_load import load_npy

    try:
        sel = load_npy(path)
    except UserError as exc:
        raise UserError(f"--selection {exc}") from None
    if sel.shape != (n,) or sel.dtype != bool:
        raise UserError(f"--selection {path}: expected a bool array of {n} entries (gs-core query --out), "
                        f"got {sel.dtype} {sel.shape}")
    return sel


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("work", type=Path, help="work folder written by gs-core prepare")
    parser.add_argument("--view", help="image name (with or without extension): any image of the dataset with a camera")
    add_camera_argument(parser)
    parser.add_argument("--selection", type=Path, help="bool array [N] from gs-core query: render its mask")
    parser.add_argument("--backend", default="auto", choices=["auto", "torch", "cpu", "gsplat"])
    parser.add_argument("--out", type=Path, required=True, help="PNG to write")


def run(args: argparse.Namespace) -> int:
    import torch
    from PIL import Image

    from ..engine import project, render
    from ..io.atomic import atomic_write
    from ..query import selection_mask
    from ..scene import GaussianScene

    from ..preflight import check_not_inputs, check_output_file

    check_output_file(args.out, "--out")
    work = WorkDir(args.work, must_exist=True)
    check_not_inputs([("--out", args.out)], [("--selection", args.selection)], work)
    cam = view_camera(args, work)
    scene = GaussianScene.load(work.scene_path)
    proj = project(scene.to_gaussians(), cam)
    if args.selection is not None:
        mask = selection_mask(proj, load_selection(args.selection, len(scene)), backend=args.backend)
        pixels = (mask * 255).astype(np.uint8)
        what = f"mask of {int(mask.sum())} pixels"
    else:
        rgb = render(proj, torch.as_tensor(scene.base_colors, dtype=torch.float32), backend=args.backend).features
        pixels = (rgb.clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)
        what = "image"
    with atomic_write(args.out, "wb") as fh:
        Image.fromarray(pixels).save(fh, format="PNG")
    print(f"{cam.name}: {what} -> {args.out}")
    return 0

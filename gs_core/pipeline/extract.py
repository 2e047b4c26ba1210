"""``gs-core extract WORK --selection selection.npy --out object.ply [--rest rest.ply]``: the selected
Gaussians as their own PLY (every column kept), and optionally the scene without them."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UserError
from .render_command import load_selection
from .workdir import WorkDir


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("work", type=Path, help="work folder written by gs-core prepare")
    parser.add_argument("--selection", type=Path, required=True, help="bool array [N] from gs-core query")
    parser.add_argument("--out", type=Path, required=True, help="PLY of the selected Gaussians")
    parser.add_argument("--rest", type=Path, help="PLY of everything else")


def run(args: argparse.Namespace) -> int:
    from ..scene import GaussianScene

    from ..preflight import check_output_file

    check_output_file(args.out, "--out")
    work = WorkDir(args.work, must_exist=True)
    if args.rest is not None:
        check_output_file(args.rest, "--rest")
    scene = GaussianScene.load(work.scene_path)
    sel = load_selection(args.selection, len(scene))
    if not sel.any():
        raise UserError(f"--selection {args.selection}: selects no Gaussian")
    scene.subset(sel).save(args.out)
    print(f"{int(sel.sum())} Gaussians -> {args.out}")
    if args.rest is not None:
        scene.subset(~sel).save(args.rest)
        print(f"{int((~sel).sum())} Gaussians -> {args.rest}")
    return 0

"""``gs-core extract WORK --selection selection.npy --out object.ply [--rest rest.ply]``: the selected
Gaussians as their own scene file, and optionally the scene without them. ``.ply`` keeps every
column; ``.spz`` (``--spz-version``) and ``.splat`` are smaller and lossy, and a note says what they drop."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ..errors import UserError
from .render_command import load_selection
from .workdir import WorkDir


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("work", type=Path, help="work folder written by gs-core prepare")
    parser.add_argument("--selection", type=Path, required=True, help="bool array [N] from gs-core query")
    parser.add_argument("--out", type=Path, required=True,
                        help="the selected Gaussians: .ply (lossless), .spz or .splat (lossy, smaller)")
    parser.add_argument("--rest", type=Path, help="everything else (.ply, .spz or .splat)")
    parser.add_argument("--spz-version", type=int, choices=(2, 3, 4), default=3,
                        help="SPZ version to write (3: every SPZ reader; 4: zstd, smaller, newer readers only)")


def run(args: argparse.Namespace) -> int:
    from ..io.errors import SceneFormatError
    from ..preflight import check_not_inputs, check_output_file
    from ..scene import GaussianScene, scene_file_type

    outputs = [("--out", args.out)] + ([("--rest", args.rest)] if args.rest is not None else [])
    for flag, path in outputs:
        check_output_file(path, flag)
        try:
            scene_file_type(path, for_writing=True)
        except SceneFormatError as exc:
            raise UserError(f"{flag} {exc}") from None
    work = WorkDir(args.work, must_exist=True)
    check_not_inputs(outputs, [("--selection", args.selection)], work)
    scene = GaussianScene.load(work.scene_path)
    sel = load_selection(args.selection, len(scene))
    if not sel.any():
        raise UserError(f"--selection {args.selection}: selects no Gaussian")
    extract(work, sel, args.out, args.rest, args.spz_version, scene=scene)
    return 0


def extract(work: WorkDir, selected: np.ndarray, out: Path, rest: Path | None = None, spz_version: int = 3,
            scene=None) -> None:
    """Write the work scene's ``selected`` Gaussians to ``out`` and, with ``rest``, the others there.

    selected: [N] bool, one per Gaussian of ``WORK/scene.ply`` (``scene``, when the caller has it loaded).
    """
    from ..scene import GaussianScene

    scene = GaussianScene.load(work.scene_path) if scene is None else scene
    if len(selected) != len(scene):
        raise UserError(f"selection of {len(selected)} Gaussians for a scene of {len(scene)}")
    for path, rows in ((out, selected), (rest, ~selected)):
        if path is not None:
            save_scene(scene.subset(rows), path, spz_version)


def save_scene(scene, path: Path, spz_version: int = 3) -> None:
    """Write ``scene`` by extension and print its count, plus a note of what a lossy format drops."""
    from ..scene import lost_on_save, scene_file_type

    options = {"version": spz_version} if scene_file_type(path, for_writing=True) == "spz" else {}
    scene.save(path, **options)
    print(f"{len(scene)} Gaussians -> {path}")
    lost = lost_on_save(path, scene)
    if lost:
        print(f"note: {path.suffix} is lossy; dropped: {'; '.join(lost)}")

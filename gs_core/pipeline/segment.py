"""``gs-core segment WORK --out labels.npy [--level L]``: every Gaussian's global instance id."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ..query import LabelLevels
from .workdir import WorkDir, save_npy


def load_levels(work: WorkDir) -> LabelLevels:
    """The work folder's label levels (``levels.npz``), checked: ``levels`` [L] in [0, 1] ascending,
    ``labels`` [L, N] integers."""
    from ..errors import UserError
    from .workdir import AGAIN

    path = work.root / "levels.npz"
    z = work.load("levels.npz")
    levels, labels = z.get("levels"), z.get("labels")
    if (levels is None or labels is None or levels.ndim != 1 or labels.ndim != 2 or len(levels) != len(labels)
            or len(levels) == 0 or not np.issubdtype(labels.dtype, np.integer)
            or not np.issubdtype(levels.dtype, np.floating) or not np.all((levels >= 0) & (levels <= 1))):
        raise UserError(f"{path}: not the label levels prepare writes (levels [L] in [0, 1], labels [L, N]); {AGAIN}")
    return LabelLevels(levels, labels)


def segment(work: WorkDir, level: float = 0.5) -> np.ndarray:
    """Every Gaussian's instance id at granularity ``level`` (0 parts, 0.5 objects, 1 groups):
    ``labels`` int32 [N], -1 where no instance."""
    return load_levels(work).at(level).astype(np.int32)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("work", type=Path, help="work folder written by gs-core prepare")
    parser.add_argument("--out", type=Path, required=True, help="int32 array [N] of instance ids, -1 = none (.npy)")
    parser.add_argument("--level", type=float, default=0.5, help="granularity: 0 parts, 0.5 objects, 1 groups")


def run(args: argparse.Namespace) -> int:
    from ..preflight import check_not_inputs, check_output_file

    check_output_file(args.out, "--out")
    work = WorkDir(args.work, must_exist=True)
    check_not_inputs([("--out", args.out)], [], work)
    labels = segment(work, args.level)
    save_npy(args.out, labels)
    print(f"{(labels >= 0).sum()} of {len(labels)} Gaussians in {len(np.unique(labels[labels >= 0]))} instances "
          f"-> {args.out}")
    return 0

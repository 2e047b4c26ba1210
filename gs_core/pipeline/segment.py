"""``gs-core segment WORK --out labels.npy [--level L]``: every Gaussian's global instance id."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ..query import LabelLevels
from .workdir import WorkDir, save_npy


def load_levels(work: WorkDir) -> LabelLevels:
    z = work.load("levels.npz")
    return LabelLevels(z["levels"], z["labels"])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("work", type=Path, help="work folder written by gs-core prepare")
    parser.add_argument("--out", type=Path, required=True, help="int32 array [N] of instance ids, -1 = none (.npy)")
    parser.add_argument("--level", type=float, default=0.5, help="granularity: 0 parts, 0.5 objects, 1 groups")


def run(args: argparse.Namespace) -> int:
    from ..preflight import check_output_file

    check_output_file(args.out, "--out")
    work = WorkDir(args.work, must_exist=True)
    labels = load_levels(work).at(args.level).astype(np.int32)
    save_npy(args.out, labels)
    print(f"{(labels >= 0).sum()} of {len(labels)} Gaussians in {len(np.unique(labels[labels >= 0]))} instances "
          f"-> {args.out}")
    return 0

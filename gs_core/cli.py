"""``gs-core`` command line: one sub-command per job; each lives in its own module, imported lazily
so ``gs-core --help`` stays instant and light installs work."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# sub-command -> (module, help). Each module exposes ``add_arguments(parser)`` and ``run(args) -> int``.
COMMANDS = {
    "demo": ("gs_core.demo", "main job: build the built-in synthetic sample and run the pipeline on it"),
    "synth": ("gs_core.synth.cli", "write a synthetic dataset (scene.ply, COLMAP, images, masks, gt)"),
}
BENCH_COMMANDS = {
    "engine": ("gs_core.bench.engine", "render/trace speed per backend (garden points, 1M synthetic)"),
    "segmentation": ("gs_core.bench.segmentation", "segmentation methods x synthetic scenes x noise levels"),
    "ply": ("gs_core.bench.ply_io", "PLY load/save speed (1M Gaussians)"),
    "addon": ("gs_core.bench.addon", "Blender add-on import/separate/export speed (needs bpy)"),
}


def _add(sub, name, module, help_):
    parser = sub.add_parser(name, help=help_, description=help_)
    parser.set_defaults(_module=module)
    try:
        importlib.import_module(module).add_arguments(parser)
    except ImportError as exc:  # a sub-command whose extra is not installed
        parser.set_defaults(_import_error=str(exc))
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gs-core", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module, help_) in COMMANDS.items():
        _add(sub, name, module, help_)
    bench = sub.add_parser("bench", help="benchmarks that print measured numbers")
    bench_sub = bench.add_subparsers(dest="bench", required=True)
    for name, (module, help_) in BENCH_COMMANDS.items():
        _add(bench_sub, name, module, help_)
    return parser


def main(argv=None) -> int:
    # Big tensors (a 512-channel render of a 1080p frame is 4 GB) on 2 MB pages: torch's own allocator
    # option, read once when torch starts. With 4 kB pages, first-touch page faults cost more than the
    # render itself (garden, D=512: 110 ms of faults vs 25 ms). Must precede the first torch import.
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
    args = build_parser().parse_args(argv)
    if getattr(args, "_import_error", None):
        print(f"gs-core: this command cannot run: {args._import_error}", file=sys.stderr)
        return 2
    from .errors import UserError

    try:
        return int(importlib.import_module(args._module).run(args) or 0)
    except UserError as exc:  # includes DatasetError: the message names the file or argument
        print(f"gs-core: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gs-core: cancelled", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

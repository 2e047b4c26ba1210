"""gs-core command line: one sub-command per job, each in its own module.

A command's module is imported only when that command runs (or its --help is asked for), so
`gs-core --help` is instant and light installs work.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys

# sub-command -> (module, help). Each module exposes ``add_arguments(parser)`` and ``run(args) -> int``.
COMMANDS = {
    "demo": ("gs_core.demo", "main job: build the built-in synthetic sample and run the pipeline on it"),
    "synth": ("gs_core.synth.cli", "write a synthetic dataset (scene.ply, COLMAP, images, masks, gt)"),
    "prepare": ("gs_core.pipeline.prepare", "patches, GIT, consistent instances, density control -> a work folder"),
    "segment": ("gs_core.pipeline.segment", "every Gaussian's instance id (.npy) at a granularity"),
    "query": ("gs_core.pipeline.query_command", "select instances by picked Gaussians or clicked pixels (.npy)"),
    "render": ("gs_core.pipeline.render_command", "a view's image, or a selection's 2D mask (.png)"),
    "extract": ("gs_core.pipeline.extract", "the selected Gaussians (and the rest) as PLY files"),
    "refine": ("gs_core.pipeline.refine_command", "optimise a work folder's scene against its training photos"),
}
BENCH_COMMANDS = {
    "engine": ("gs_core.bench.engine", "render/trace speed per backend (garden points, 1M synthetic)"),
    "segmentation": ("gs_core.bench.segmentation", "segmentation methods x synthetic scenes x noise levels"),
    "iqgs": ("gs_core.bench.iqgs", "IQGS: query-count / feature-width ablation, cross-scene transfer (synthetic)"),
    "proto-saga": ("gs_core.bench.proto_saga", "Proto-SaGa: training options vs cross-view consistency and scores"),
    "views": ("gs_core.bench.views", "fewer mask views, and virtual views from the splats alone, vs quality"),
    "git": ("gs_core.bench.git", "Gaussian Instance Tracing over many views vs forward rendering; store size"),
    "ply": ("gs_core.bench.ply_io", "scene file load/save speed: PLY, SPZ, .splat, compressed PLY (1M Gaussians)"),
    "fuzz": ("gs_core.bench.fuzz", "mutated PLY/SPZ/.splat files fed to the readers: load or a clear error, nothing else"),
    "addon": ("gs_core.bench.addon", "Blender add-on import/separate/export speed (needs bpy)"),
    "clicks": ("gs_core.bench.clicks", "clicks an automatic user needs per object (NoC@85/90), synthetic scenes"),
    "query": ("gs_core.bench.query", "click and slider query speed on a prepared work folder (the add-on's wait)"),
    "scale": ("gs_core.bench.scale", "prepare in one process vs on local Ray clusters of 1, 2... workers (and blocks)"),
    "gpu": ("gs_core.bench.gpu", "the CUDA path against the CPU kernels, timed beside them; skips the GPU parts without one"),
    "splats": ("gs_core.bench.splats", "drawing splats in Blender: viewport CPU work per frame vs engine images; final-render layer"),
    "splats-gl": ("gs_core.bench.splats_gl", "the viewport's real GPU draw per frame, headless (needs bpy; EGL)"),
}
DESCRIPTION = ("Gaussian-splat segmentation engine: lift 2D masks onto 3D splat scenes. "
               "Run 'gs-core COMMAND --help' for a command's options.")


class _Parser(argparse.ArgumentParser):
    """Usage mistakes as one line naming the argument (argparse prints the whole usage first)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: {message} (see '{self.prog} --help')\n")


def _add(sub, name: str, module: str, help_: str, with_arguments: bool):
    parser = sub.add_parser(name, help=help_, description=help_)
    parser.set_defaults(_module=module)
    if with_arguments:
        try:
            importlib.import_module(module).add_arguments(parser)
        except ImportError as exc:  # a sub-command whose extra is not installed
            parser.set_defaults(_import_error=str(exc))
    return parser


def _selected(argv: list[str]) -> str:
    """The command named in ``argv`` ("demo", "bench engine"), read before parsing; neither the
    top-level nor the ``bench`` parser has options taking values, so the first words are it."""
    words = [a for a in argv if not a.startswith("-")]
    if words[:1] == ["bench"]:
        return " ".join(words[:2])
    return " ".join(words[:1])


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser; with ``only`` (e.g. "bench engine") only that command's module is imported for its
    arguments, the others show their one-line help."""
    parser = _Parser(prog="gs-core", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_) in COMMANDS.items():
        _add(sub, name, module, help_, only in (None, name))
    bench = sub.add_parser("bench", help="benchmarks that print measured numbers",
                           description="Benchmarks that print measured numbers and their peak memory.")
    bench_sub = bench.add_subparsers(dest="bench", required=True, metavar="BENCHMARK")
    for name, (module, help_) in BENCH_COMMANDS.items():
        _add(bench_sub, name, module, help_, only in (None, f"bench {name}"))
    return parser


def main(argv=None) -> int:
    # Big tensors (a 512-channel render of a 1080p frame is 4 GB) on 2 MB pages: torch's own allocator
    # option, read once when torch starts. With 4 kB pages, first-touch page faults cost more than the
    # render itself (docs/benchmarks.md, "Choices made by measurement"). Must precede the first torch import.
    # (OpenMP's passive waits are set by importing gs_core, which importing this module did.)
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(_selected(argv)).parse_args(argv)
    if getattr(args, "_import_error", None):
        print(f"gs-core: this command cannot run: {args._import_error}", file=sys.stderr)
        return 2
    from .errors import UserError
    from .io.errors import SceneFormatError
    from .preflight import preflight

    try:
        preflight(args)
        status = int(importlib.import_module(args._module).run(args) or 0)
    except (UserError, SceneFormatError) as exc:  # DatasetError, PlyError, SpzError...: names the file or argument
        print(f"gs-core: {exc}", file=sys.stderr)
        return 2
    except (PermissionError, NotADirectoryError, IsADirectoryError) as exc:
        print(f"gs-core: {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 2
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EROFS, errno.EDQUOT):
            raise
        print(f"gs-core: {exc.filename or 'writing output'}: {exc.strerror}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gs-core: cancelled", file=sys.stderr)
        return 130
    if args.command == "bench":
        from .bench.memory import peak_rss_mb

        print(f"peak memory: {peak_rss_mb():,.0f} MB resident (this process, or its largest child)")
    return status


if __name__ == "__main__":
    sys.exit(main())

"""``gs-core bench addon``: the Blender add-on's import, separate and export of a 1M-splat scene.

Runs headless in this process with the bpy wheel and the add-on registered from the source checkout.
The scene is N splats with SH degree 3 and normals (62 float32 columns, the INRIA layout). Each step
goes through the add-on's operator, as a user's click would, and is compared with a plain numpy
reference in the same process on the same data: reading the PLY table (import), selecting half the
rows of the table (separate), writing the PLY table (export); Blender's own PLY importer
(``wm.ply_import``, which makes a mesh) is timed on the same file for scale. Each step runs
``--repeats`` times on a fresh scene and the best time is reported. The export of the two halves is
checked bit-exact against the source rows.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..preflight import positive_int

    parser.add_argument("--count", type=positive_int, default=1_000_000, help="number of splats (default 1M)")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for the PLY files (default: a temporary folder, removed afterwards)")
    parser.add_argument("--repeats", type=positive_int, default=3, help="runs per step; the best is reported")
    parser.add_argument("--skip-blender-ply", action="store_true",
                        help="do not time Blender's own wm.ply_import for comparison")


def synthetic_table(count: int, seed: int = 0):
    """An INRIA-layout 3DGS table with SH degree 3 and normals: 62 float32 columns of noise."""
    from ..io.ply import PlyTable

    names = (["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
             + [f"f_rest_{i}" for i in range(45)] + ["opacity", "scale_0", "scale_1", "scale_2"]
             + [f"rot_{i}" for i in range(4)])
    block = np.random.default_rng(seed).standard_normal((len(names), count), dtype=np.float32)  # [62, N]
    return PlyTable(dict(zip(names, block)))


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from ..io.ply import read_ply_table, write_ply_table

    from ..errors import UserError

    console = Console()
    if args.count < 2:
        raise UserError(f"--count {args.count}: needs at least 2 splats (half of them are separated)")
    if args.out is not None:
        from ..preflight import check_output_dir

        check_output_dir(args.out, "--out")
    from ..blender_host import import_addon

    bpy, blender_addon = import_addon("bench addon")
    from blender_addon import splat_attributes as sa
    from blender_addon import splat_object

    table = synthetic_table(args.count)
    half = np.random.default_rng(0).random(args.count) < 0.5  # [N] the splats to separate
    best: dict[str, float] = {}

    def record(step, seconds):
        best[step] = min(seconds, best.get(step, np.inf))

    with tempfile.TemporaryDirectory(prefix="gs-core-bench-addon-") as tmp:
        folder = args.out if args.out is not None else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        source, exported = folder / f"addon_bench_{args.count}.ply", folder / f"addon_bench_{args.count}_out.ply"
        write_ply_table(source, table)
        for _ in range(args.repeats):
            record("PLY table read", _timed(lambda: read_ply_table(source)))
            record("PLY table row selection", _timed(lambda: (table.select(half), table.select(~half))))
            record("PLY table write", _timed(lambda: write_ply_table(exported, table)))

            bpy.ops.wm.read_factory_settings(use_empty=True)
            blender_addon.register()
            try:
                record("import (gs_splats.import_ply)",
                       _timed(lambda: bpy.ops.gs_splats.import_ply(filepath=str(source))))
                obj = bpy.context.active_object
                splat_object.write_attributes(obj.data, {".selection": sa.Attribute("BOOLEAN", half)})
                record("separate half (gs_splats.separate)", _timed(bpy.ops.gs_splats.separate))
                record("export both (gs_splats.export_ply)",
                       _timed(lambda: bpy.ops.gs_splats.export_ply(filepath=str(exported))))
            finally:
                blender_addon.unregister()
            if not args.skip_blender_ply:
                bpy.ops.wm.read_factory_settings(use_empty=True)
                record("Blender wm.ply_import (mesh)",
                       _timed(lambda: bpy.ops.wm.ply_import(filepath=str(source))))
        written = read_ply_table(exported)
        expected = sa.concatenate_tables([table.select(~half), table.select(half)])  # object name order
        exact = written.names == expected.names and all(
            written.columns[n].tobytes() == expected.columns[n].tobytes() for n in expected.names)
        bpy.ops.wm.read_factory_settings(use_empty=True)

    report = Table(title=f"Blender add-on: {args.count:,} splats, SH degree 3, 62 columns "
                         f"(best of {args.repeats}, bpy {bpy.app.version_string})")
    for column in ("step", "seconds", "M splats/s", "reference", "x reference"):
        report.add_column(column, justify="left" if column in ("step", "reference") else "right")
    rows = [("import (gs_splats.import_ply)", "PLY table read"),
            ("separate half (gs_splats.separate)", "PLY table row selection"),
            ("export both (gs_splats.export_ply)", "PLY table write")]
    if not args.skip_blender_ply:
        rows.append(("Blender wm.ply_import (mesh)", "PLY table read"))
    for step, reference in rows:
        seconds = best[step]
        report.add_row(step, f"{seconds:.3f}", f"{args.count / seconds / 1e6:.2f}",
                       f"{reference} {best[reference]:.3f} s", f"{seconds / best[reference]:.1f}")
    console.print(report)
    console.print(f"export of the separated halves bit-exact: {'[green]yes[/green]' if exact else '[red]NO[/red]'}")
    return 0 if exact else 1

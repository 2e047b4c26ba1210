"""``gs-core bench ply``: save and load speed of a synthetic 3DGS PLY against raw-I/O references,
then of the same scene as SPZ v3 (gzip), SPZ v4 (zstd) and .splat, and of a PlayCanvas compressed
PLY of as many splats (read only; its packed words are random).

The scene is N Gaussians with SH degree 3 and normals, the INRIA layout of 62 float32 columns. Each
step runs ``--repeats`` times and the best time is reported (the file sits in the page cache, so
this measures parsing, not the disk). References run in the same process on the same file:
``np.fromfile`` / ``ndarray.tofile`` of the raw bytes (the floor) and plyfile's own memory-mapped
read copied into memory (what a plain plyfile user gets; when plyfile is installed: gs_core does not
use it).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..preflight import positive_int

    parser.add_argument("--count", type=positive_int, default=1_000_000,
                        help="number of Gaussians (default 1M)")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for the PLY (default: a temporary folder, removed afterwards)")
    parser.add_argument("--repeats", type=positive_int, default=3, help="runs per step; the best is reported")


def synthetic_scene(count: int, seed: int = 0):
    """A 3DGS scene with SH degree 3 and normals: 62 float32 columns."""
    from ..scene import GaussianScene

    rng = np.random.default_rng(seed)
    block = rng.standard_normal((62, count), dtype=np.float32)  # [62, N]
    return GaussianScene(
        means=block[0:3].T, normals=block[3:6].T, sh_dc=block[6:9].T,
        sh_rest=block[9:54].T.reshape(count, 15, 3), opacity_logits=block[54],
        log_scales=block[55:58].T, quats=block[58:62].T,
    )


def _best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def _best_both(fn, repeats: int) -> tuple[float, float]:
    """(best wall seconds, best CPU seconds of this process) over ``repeats`` runs."""
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return min(walls), min(cpus)


def run(args) -> int:
    try:  # plyfile (GPL-3.0) is no dependency of gs_core: the reference row when it is installed
        import plyfile
    except ImportError:
        plyfile = None
    from rich.console import Console
    from rich.table import Table

    from ..scene import GaussianScene

    console = Console()
    if args.out is not None:
        from ..preflight import check_output_dir

        check_output_dir(args.out, "--out")
    scene = synthetic_scene(args.count)
    with tempfile.TemporaryDirectory(prefix="gs-core-bench-ply-") as tmp:
        folder = args.out if args.out is not None else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"bench_{args.count}.ply"
        raw_path = folder / f"bench_{args.count}.raw"

        save_s = _best(lambda: scene.save(path), args.repeats)
        size_mb = path.stat().st_size / 1e6
        body = scene.to_table().to_structured()  # [N] the bytes a PLY body holds
        raw_write_s = _best(lambda: body.tofile(raw_path), args.repeats)
        raw_path.unlink()
        del body

        loaded = None

        def load():
            nonlocal loaded
            loaded = None  # free the previous copy first: measure one scene's worth of memory
            loaded = GaussianScene.load(path)

        load_s = _best(load, args.repeats)
        raw_read_s = _best(lambda: np.fromfile(path, dtype=np.uint8), args.repeats)

        def plyfile_read():
            data = plyfile.PlyData.read(str(path))  # memory-mapped: parsing is lazy
            np.array(data["vertex"].data)  # so copy, to compare like with like

        plyfile_s = _best(plyfile_read, args.repeats) if plyfile is not None else None
        arrays = ("means", "normals", "sh_dc", "sh_rest", "opacity_logits", "log_scales", "quats")
        exact = all(np.array_equal(getattr(loaded, k), getattr(scene, k)) for k in arrays)
        if args.out is None:
            path.unlink()

        ply_cpu = (_best_both(lambda: scene.save(path), 1)[1], _best_both(lambda: GaussianScene.load(path), 1)[1])
        formats = _other_formats(scene, folder, args)

    table = Table(title=f"PLY I/O: {args.count:,} Gaussians, SH degree 3, 62 columns, {size_mb:.0f} MB "
                        f"(best of {args.repeats})")
    for column in ("step", "seconds", "MB/s", "x raw"):
        table.add_column(column, justify="left" if column == "step" else "right")
    rows = [("GaussianScene.save", save_s, raw_write_s),
            ("raw write (ndarray.tofile)", raw_write_s, raw_write_s),
            ("GaussianScene.load", load_s, raw_read_s),
            ("raw read (np.fromfile)", raw_read_s, raw_read_s)]
    if plyfile_s is not None:
        rows.append(("plyfile mmap read + copy", plyfile_s, raw_read_s))
    for step, seconds, reference in rows:
        table.add_row(step, f"{seconds:.3f}", f"{size_mb / seconds:,.0f}", f"{seconds / reference:.1f}")
    console.print(table)
    versus = f"load / plyfile ratio: {load_s / plyfile_s:.2f}; " if plyfile_s is not None else ""
    console.print(f"{versus}"
                  f"round trip bit-exact: {'[green]yes[/green]' if exact else '[red]NO[/red]'}")
    other = Table(title=f"Other formats, the same {args.count:,} Gaussians (best of {args.repeats}; CPU = this "
                        "process's CPU time, which a busy machine inflates less than wall time)")
    for column in ("format", "save s", "save CPU s", "load s", "load CPU s", "MB", "x smaller than PLY"):
        other.add_column(column, justify="left" if column == "format" else "right")
    other.add_row("PLY (above)", f"{save_s:.3f}", f"{ply_cpu[0]:.3f}", f"{load_s:.3f}", f"{ply_cpu[1]:.3f}",
                  f"{size_mb:.1f}", "1.0")
    for name, save, load_time, mb in formats:
        other.add_row(name, "-" if save is None else f"{save[0]:.3f}", "-" if save is None else f"{save[1]:.3f}",
                      f"{load_time[0]:.3f}", f"{load_time[1]:.3f}", f"{mb:.1f}", f"{size_mb / mb:.1f}")
    console.print(other)
    return 0 if exact else 1


def _compressed_ply_bytes(count: int, rng) -> bytes:
    """A PlayCanvas compressed PLY of ``count`` splats, SH degree 3, random packed words."""
    from .fuzz import _compressed_ply

    return _compressed_ply(count, rng, sh_bands=3)


def _other_formats(scene, folder: Path, args) -> list:
    """(format, (save wall, CPU) s, (load wall, CPU) s, file MB) for SPZ v3, SPZ v4, .splat and compressed PLY."""
    from ..scene import GaussianScene

    rows = []
    for name, suffix, options in (("SPZ v3 (gzip)", ".spz", {"version": 3}), ("SPZ v4 (zstd)", ".spz", {"version": 4}),
                                  (".splat", ".splat", {})):
        path = folder / f"bench_{args.count}_{len(rows)}{suffix}"
        save = _best_both(lambda: scene.save(path, **options), args.repeats)
        load = _best_both(lambda: GaussianScene.load(path), args.repeats)
        rows.append((name, save, load, path.stat().st_size / 1e6))
        path.unlink()
    path = folder / f"bench_{args.count}.compressed.ply"
    path.write_bytes(_compressed_ply_bytes(args.count, np.random.default_rng(0)))
    load = _best_both(lambda: GaussianScene.load(path), args.repeats)
    rows.append(("compressed PLY (read only)", None, load, path.stat().st_size / 1e6))
    path.unlink()
    return rows

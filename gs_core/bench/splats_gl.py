"""``gs-core bench splats-gl``: the viewport's real GPU draw (``blender_addon/splat_draw.py``), timed per frame.

Runs headless in this process with the bpy wheel: the add-on registered from the source checkout, Blender's
GPU backend started through EGL (``blender_addon/gpu_background.py``; on a machine without a GPU that is
Mesa's llvmpipe, a software rasteriser on the CPU cores: far slower than any GPU, so these figures are an
upper bound of what a workstation shows). One splat object of N random Gaussians (SH degree 3, ``bench
splats``' scene) seen by a 1280x720 camera orbiting it, drawn by :func:`splat_draw.draw_splats` into its
offscreen float buffer, the way the viewport's draw handler calls it:

* first frame: reading the object's attributes, packing and uploading the textures, the exact sort and
  the draw (a fresh draw state, once per count);
* still: the same view again (nothing uploaded or sorted: the draw call alone);
* orbiting: a new view per frame (the sort, coarse once the exact one is slow, then the draw).

Each frame ends with a one-pixel read of the buffer, which waits for the GPU to finish. Still and orbiting
are the best of ``--repeats`` frames.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..preflight import positive_int

    parser.add_argument("--counts", type=positive_int, nargs="+", default=[100_000, 1_000_000],
                        help="splat counts (default 100k and 1M)")
    parser.add_argument("--repeats", type=positive_int, default=3, help="frames per figure; the best is reported")
    parser.add_argument("--size", type=positive_int, nargs=2, default=[1280, 720], metavar=("W", "H"),
                        help="viewport size in pixels (default 1280 720)")


def splat_table(count: int, seed: int = 0):
    """``bench splats``' random scene (SH degree 3) as an INRIA-layout PLY table."""
    from ..io.ply import PlyTable
    from .splats import _scene

    obj = _scene(count, seed)
    f32 = np.float32
    cols = {a: obj.means[:, i].astype(f32) for i, a in enumerate("xyz")}
    cols.update({f"f_dc_{c}": obj.sh[:, 0, c].astype(f32) for c in range(3)})
    cols.update({f"f_rest_{c * 15 + k - 1}": obj.sh[:, k, c].astype(f32) for c in range(3) for k in range(1, 16)})
    opacity = np.clip(np.asarray(obj.opacities, np.float64), 1e-6, 1 - 1e-6)
    cols["opacity"] = np.log(opacity / (1 - opacity)).astype(f32)
    cols.update({f"scale_{i}": np.log(obj.scales[:, i]).astype(f32) for i in range(3)})
    cols.update({f"rot_{i}": obj.quats[:, i].astype(f32) for i in range(4)})
    return PlyTable(cols)


def _camera(camera) -> dict:
    return {"fx": camera.fx, "fy": camera.fy, "cx": camera.cx, "cy": camera.cy, "width": camera.width,
            "height": camera.height, "world_to_camera": np.asarray(camera.world_to_camera).tolist()}


def run(args) -> int:
    import os

    from rich.console import Console
    from rich.table import Table

    from ..blender_host import import_addon
    from ..errors import UserError
    from .splats import _orbit

    bpy, blender_addon = import_addon("bench splats-gl")
    from blender_addon import gpu_background, splat_attributes, splat_draw, splat_object, view_camera

    try:
        renderer = gpu_background.ensure()
    except gpu_background.GPUUnavailable as exc:
        raise UserError(f"bench splats-gl: {exc}") from exc
    width, height = args.size
    console = Console(width=120)
    table = Table(title=f"the viewport's GPU draw, ms per frame at {width}x{height} (still / orbiting: best of "
                        f"{args.repeats}); {renderer}, {os.cpu_count()} CPUs, bpy {bpy.app.version_string}")
    for col in ("splats", "first frame", "still", "orbiting", "orbit order"):
        table.add_column(col, justify="right")
    near = 0.01
    cams = [_camera(c) for c in _orbit(width, height, views=args.repeats + 1)]
    window = view_camera.view_matrices(cams[0], near=near, far=1000.0)[1]
    for count in args.counts:
        bpy.ops.wm.read_factory_settings(use_empty=True)
        blender_addon.register()
        try:
            data = splat_attributes.table_to_splat_data(splat_table(count), "bench")
            obj = splat_object.create_splat_object(bpy.context, "bench", data)
            depth = splat_draw.depth_texture(width, height)

            def frame(camera) -> float:
                start = time.perf_counter()
                offscreen = splat_draw.draw_splats(bpy.context, [obj], camera, window, near, depth)
                with offscreen.bind():
                    splat_draw.gpu_read(1, 1)  # waits for the draw to finish
                return time.perf_counter() - start

            first = frame(cams[0])
            still = min(frame(cams[0]) for _ in range(args.repeats))
            orbit, coarse = [], []
            for camera in cams[1:]:
                orbit.append(frame(camera))
                coarse.append(splat_draw.state.sort.stale)  # stale: the 16-bit order was drawn
            table.add_row(f"{count:,}", f"{first * 1e3:.0f}", f"{still * 1e3:.0f}", f"{min(orbit) * 1e3:.0f}",
                          "coarse" if all(coarse) else "exact" if not any(coarse) else "mixed")
        finally:
            blender_addon.unregister()
            bpy.ops.wm.read_factory_settings(use_empty=True)
    console.print(table)
    console.print("first frame: attributes read, textures packed and uploaded, exact sort, draw; still: the draw "
                  "call alone (same view); orbiting: a new view per frame (sort, coarse while the exact one is "
                  "slow, and draw); orbit order: which sort the orbiting frames drew. Each frame waits for the GPU "
                  "(a one-pixel read). A software GL (llvmpipe) rasterises on the CPU: a GPU draws far faster.",
                  highlight=False)
    return 0

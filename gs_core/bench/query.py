"""``gs-core bench query WORK``: how fast the add-on's selections answer on a prepared work folder.

Clicks go through the server's own commands (``load``, ``query_pixels``, ``query_level``), so the
figures are what the add-on waits for on each click and each slider move: a projection of the
scene for the clicked camera, a trace of the clicked pixel, the walk of the granularity levels.
Clicks land at random pixels (fixed seed) in the central 60% of training views spread over the
work folder's cameras. The issue's target is under 1 s per query at 100k Gaussians.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


def camera_json(camera) -> dict:
    """The protocol's camera object (:func:`gs_core.server.camera_from_json`) of a camera."""
    return {"fx": camera.fx, "fy": camera.fy, "cx": camera.cx, "cy": camera.cy, "width": camera.width,
            "height": camera.height, "world_to_camera": np.asarray(camera.world_to_camera).tolist()}


def time_queries(work: Path, clicks: int = 8, seed: int = 0, say=print) -> dict:
    """Median and max wall / CPU milliseconds of ``clicks`` click queries and of slider moves."""
    from ..server import Server

    server = Server(None, None)
    t = time.perf_counter()
    info = server.cmd_load(0, {"work": str(work)})
    load_s = time.perf_counter() - t
    cameras = server.session.cameras
    rng = np.random.default_rng(seed)
    click_wall, click_cpu, slider_wall = [], [], []
    out = str(server.scratch / "rows.npy")  # the server writes answers only in WORK or its own folder
    try:
        for k in range(clicks):
            cam = cameras[(k * len(cameras)) // clicks]
            pixel = [int(rng.integers(cam.width * 0.2, cam.width * 0.8)),
                     int(rng.integers(cam.height * 0.2, cam.height * 0.8))]
            t, c = time.perf_counter(), time.process_time()
            answer = server.cmd_query_pixels(k, {"camera": camera_json(cam), "positive": [pixel], "level": 0.5,
                                                 "out": out})
            click_wall.append(time.perf_counter() - t)
            click_cpu.append(time.process_time() - c)
            for level in (0.2, 0.8):
                t = time.perf_counter()
                server.cmd_query_level(k, {"level": level, "out": out})
                slider_wall.append(time.perf_counter() - t)
            say(f"click {k} in {cam.name}: {answer['count']} Gaussians selected, {click_wall[-1] * 1e3:.0f} ms")
    finally:
        server.close()
    ms = lambda xs: round(float(np.median(xs)) * 1e3, 1)  # noqa: E731
    return {"gaussians": info["gaussians"], "load_s": round(load_s, 2), "click_ms": ms(click_wall),
            "click_cpu_ms": ms(click_cpu), "click_max_ms": round(max(click_wall) * 1e3, 1),
            "slider_ms": ms(slider_wall), "clicks": clicks}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("work", type=Path, help="a work folder written by gs-core prepare")
    parser.add_argument("--clicks", type=int, default=8, help="click queries to time")


def run(args: argparse.Namespace) -> int:
    from ..errors import UserError

    if args.clicks < 1:
        raise UserError(f"--clicks {args.clicks}: must be at least 1")
    r = time_queries(args.work, args.clicks)
    print(f"{r['gaussians']} Gaussians (load {r['load_s']} s): click {r['click_ms']} ms median wall "
          f"({r['click_cpu_ms']} ms CPU), max {r['click_max_ms']} ms; slider move {r['slider_ms']} ms median")
    return 0

"""``gs-core bench query WORK``: how fast the add-on's selections answer on a prepared work folder.

Clicks go through the server's own commands (``load``, ``query_pixels``, ``query_level``), so the
figures are what the add-on waits for on each click and each slider move: a projection of the
scene for the clicked camera, a trace of the clicked pixel, the walk of the granularity levels.
Clicks land at random pixels (fixed seed) in the central 60% of training views spread over the
work folder's cameras. The issue's target is under 1 s per query at 100k Gaussians.

``--shell N`` also times a click from the shell: ``gs-core query WORK --view V --pixel X Y`` as a new
process, N times, interleaved with the same click on the engine's path (``--backend cpu``: torch is
imported, the native kernels run), the reference in the same run; wall and CPU seconds of the child
processes, and whether both select the same Gaussians. (Issue 25's target: under 1.5 s wall on a quiet
machine.)
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
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


def time_shell_clicks(work: Path, runs: int = 3, say=print) -> dict:
    """Median wall / CPU seconds of a click as a new ``gs-core query`` process: the default path (a
    3DGS click in numpy, no torch) and the engine's path (``--backend cpu``), runs interleaved."""
    from ..errors import UserError
    from ..pipeline.workdir import WorkDir

    cam = WorkDir(work, must_exist=True).cameras()[0]
    pixel = [str(cam.width // 2), str(cam.height // 2)]
    timings: dict[str, list[tuple[float, float]]] = {"default": [], "engine (--backend cpu)": []}
    answers = {}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2]),
                                                        os.environ.get("PYTHONPATH", "")])}
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(runs):
            for name, extra in (("default", []), ("engine (--backend cpu)", ["--backend", "cpu"])):
                out = Path(tmp) / f"sel_{len(answers)}.npy"
                argv = [sys.executable, "-m", "gs_core.cli", "query", str(work), "--view", cam.name, "--pixel",
                        *pixel, *extra, "--out", str(out)]
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                t = time.perf_counter()
                done = subprocess.run(argv, capture_output=True, text=True, env=env)
                wall = time.perf_counter() - t
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                if done.returncode != 0:
                    raise UserError(f"gs-core query failed: {done.stderr.strip()[-300:]}")
                cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
                timings[name].append((wall, cpu))
                answers[name] = np.load(out)
                say(f"shell click {k} {name}: {wall:.2f} s wall, {cpu:.2f} s CPU")
    med = {name: (float(np.median([w for w, _ in v])), float(np.median([c for _, c in v])))
           for name, v in timings.items()}
    same = bool(np.array_equal(*answers.values()))
    return {"runs": runs, "view": cam.name, "pixel": [int(p) for p in pixel], "same_selection": same,
            **{f"{k}_wall_s": round(v[0], 3) for k, v in med.items()},
            **{f"{k}_cpu_s": round(v[1], 3) for k, v in med.items()}}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("work", type=Path, help="a work folder written by gs-core prepare")
    parser.add_argument("--clicks", type=int, default=8, help="click queries to time")
    parser.add_argument("--shell", type=int, default=0, metavar="N",
                        help="also time N clicks from the shell (new gs-core query processes) against the "
                        "engine's path")


def run(args: argparse.Namespace) -> int:
    from ..errors import UserError

    if args.clicks < 1:
        raise UserError(f"--clicks {args.clicks}: must be at least 1")
    if args.shell < 0:
        raise UserError(f"--shell {args.shell}: must be 0 or more")
    r = time_queries(args.work, args.clicks)
    print(f"{r['gaussians']} Gaussians (load {r['load_s']} s): click {r['click_ms']} ms median wall "
          f"({r['click_cpu_ms']} ms CPU), max {r['click_max_ms']} ms; slider move {r['slider_ms']} ms median")
    if args.shell > 0:
        s = time_shell_clicks(args.work, args.shell)
        d, e = "default", "engine (--backend cpu)"
        same = "yes" if s["same_selection"] else "NO"
        print(f"shell click ({s['runs']} runs, interleaved, medians): {s[d + '_wall_s']:.2f} s wall "
              f"({s[d + '_cpu_s']:.2f} s CPU); the engine's path {s[e + '_wall_s']:.2f} s wall "
              f"({s[e + '_cpu_s']:.2f} s CPU): {s[e + '_wall_s'] / s[d + '_wall_s']:.1f}x; same selection: {same}")
    return 0

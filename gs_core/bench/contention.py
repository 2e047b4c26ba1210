"""``gs-core bench engine --contended``: the engine's speed beside other CPU-bound processes.

Artists run the backend beside Blender, a browser and a renderer. OpenMP threads that spin while
they wait for work take CPU time those processes need and lose the scheduler's favour; this
benchmark measures what that costs. The same ops (projection, renders, traces on one garden
camera) are timed in worker processes that differ only in their OpenMP wait policy: gs_core's
(passive waits, set in ``gs_core/__init__.py``) and libgomp's default (spin 300,000 times before
sleeping, what gs_core did before). Each is timed on a quiet machine and beside one background
process of each kind the benchmark starts itself: a plain CPU-bound loop and a torch job with its
own OpenMP threads. Background processes are paused (SIGSTOP) between their turns, and rounds
interleave every (policy, background) pair, so slow spells of a shared machine hit all of them
alike; figures are medians over rounds.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

# worker name -> environment overrides. libgomp reads these once, when it is loaded.
POLICIES = {
    "passive (gs_core)": {"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": None},
    "spinning (before)": {"OMP_WAIT_POLICY": None, "GOMP_SPINCOUNT": "300000"},
}
# background kind -> Python source of a process that prints "ready" and then burns CPU forever
BACKGROUNDS = {
    "busy loop": "print('ready', flush=True)\nwhile True:\n    pass\n",
    "torch job": ("import torch\nx = torch.rand(4_000_000)\nprint('ready', flush=True)\n"
                  "while True:\n    y = torch.exp(x).mul_(0.5).sum()\n"),
}
OPS = ("project", "render D=3", "render D=16", "trace labels", "trace D=16")
SETTLE_S = 0.3  # after resuming a background process, before timing


def _env(overrides: dict[str, str | None]) -> dict[str, str]:
    env = dict(os.environ)
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def worker(garden: str, camera: int, repeats: int) -> None:
    """Child process: build the ops, print "ready", then time every op ``repeats`` times per
    "round" line read from stdin and answer with one JSON line {op: [seconds, ...]}."""
    import torch

    from ..engine import project, render, trace
    from .scenes import garden_scene, region_labels

    g, colors, cams = garden_scene(Path(garden))
    cam = cams[camera]
    gen = torch.Generator().manual_seed(1)
    proj = project(g, cam)
    f16 = torch.rand(len(g), 16, generator=gen)
    labels = region_labels(cam.height, cam.width, 64)
    v16 = torch.rand(cam.height, cam.width, 16, generator=gen)
    ops = {
        "project": lambda: project(g, cam),
        "render D=3": lambda: render(proj, colors, backend="cpu"),
        "render D=16": lambda: render(proj, f16, backend="cpu"),
        "trace labels": lambda: trace(proj, labels, backend="cpu"),
        "trace D=16": lambda: trace(proj, v16, backend="cpu"),
    }
    for fn in ops.values():  # warm-up: caches, first-touch pages, lazy imports
        fn()
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() != "round":
            break
        times: dict[str, list[float]] = {op: [] for op in ops}
        for _ in range(repeats):
            for op, fn in ops.items():
                t0 = time.perf_counter()
                fn()
                times[op].append(time.perf_counter() - t0)
        print(json.dumps(times), flush=True)


class _Child:
    """A Python child process speaking lines over stdin/stdout."""

    def __init__(self, source: str, env: dict[str, str]):
        self.proc = subprocess.Popen([sys.executable, "-c", source], env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            self.close()
            raise RuntimeError(f"benchmark child process failed to start (exit {self.proc.poll()})")

    def ask(self, line: str) -> str:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline()

    def pause(self, paused: bool) -> None:
        self.proc.send_signal(signal.SIGSTOP if paused else signal.SIGCONT)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
        self.proc.wait()


def measure(garden: Path, rounds: int = 5, repeats: int = 2, camera: int = 0, policies: dict | None = None,
            backgrounds: dict | None = None, progress=None) -> dict[str, dict[str, dict[str, float]]]:
    """Median seconds per op: {policy: {background ("quiet" or a BACKGROUNDS key): {op: s}}}."""
    say = progress or (lambda message: None)
    policies = POLICIES if policies is None else policies
    sources = BACKGROUNDS if backgrounds is None else backgrounds
    workers, backgrounds = {}, {}
    try:
        for name, overrides in policies.items():
            say(f"starting worker: {name}")
            source = f"from gs_core.bench.contention import worker; worker({str(garden)!r}, {camera}, {repeats})"
            workers[name] = _Child(source, _env(overrides))
        for name, source in sources.items():
            say(f"starting background process: {name}")
            # a foreign program: its own (libgomp default) OpenMP settings, not gs_core's
            backgrounds[name] = _Child(source, _env({"OMP_WAIT_POLICY": None, "GOMP_SPINCOUNT": None}))
            backgrounds[name].pause(True)
        samples: dict[str, dict[str, dict[str, list[float]]]] = {
            p: {b: {op: [] for op in OPS} for b in ("quiet", *sources)} for p in policies}
        for r in range(rounds):
            for bg in ("quiet", *sources):
                if bg != "quiet":
                    backgrounds[bg].pause(False)
                    time.sleep(SETTLE_S)
                try:
                    # alternate which policy goes first, so neither always follows the resume
                    for policy in (list(policies) if r % 2 == 0 else list(policies)[::-1]):
                        say(f"round {r + 1}/{rounds}: {policy}, {bg}")
                        answer = workers[policy].ask("round")
                        if not answer:
                            raise RuntimeError(f"benchmark worker {policy!r} died")
                        for op, seconds in json.loads(answer).items():
                            samples[policy][bg][op] += seconds
                finally:
                    if bg != "quiet":
                        backgrounds[bg].pause(True)
    finally:
        for child in (*workers.values(), *backgrounds.values()):
            child.close()
    return {p: {b: {op: statistics.median(v) for op, v in ops.items()} for b, ops in bgs.items()}
            for p, bgs in samples.items()}


def report(medians: dict, console) -> dict:
    """Print the table; return the ratios {policy: {background: frame ratio}} for JSON output."""
    from rich.table import Table

    bgs = [b for b in next(iter(medians.values())) if b != "quiet"]
    policies = list(medians)
    table = Table(title="engine beside a CPU-bound process: median ms (ratio to quiet)")
    for col in ["op", "policy", "quiet ms", *[f"beside {b}" for b in bgs]]:
        table.add_column(col, justify="left" if col in ("op", "policy") else "right")
    frame = {p: {b: sum(medians[p][b].values()) for b in medians[p]} for p in policies}
    for op in [*OPS, "all five"]:
        for p in policies:
            ms = {b: 1e3 * (frame[p][b] if op == "all five" else medians[p][b][op]) for b in medians[p]}
            table.add_row(op, p, f"{ms['quiet']:.1f}", *[f"{ms[b]:.1f} ({ms[b] / ms['quiet']:.2f}x)" for b in bgs])
    console.print(table)
    ratios = {p: {b: frame[p][b] / frame[p]["quiet"] for b in bgs} for p in policies}
    new, old = policies
    console.print(f"quiet machine: {new} takes {frame[new]['quiet'] / frame[old]['quiet']:.3f}x the time of {old}")
    for b in bgs:
        console.print(f"beside one {b}: {new} {ratios[new][b]:.2f}x its quiet time, {old} {ratios[old][b]:.2f}x")
    return {"medians_s": medians, "ratio_to_quiet": ratios,
            "quiet_cost": frame[new]["quiet"] / frame[old]["quiet"]}

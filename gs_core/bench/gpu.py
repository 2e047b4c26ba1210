"""``gs-core bench gpu`` (run by ``tools/gpu_check.sh``): the CUDA path against the CPU kernels.

Every engine op (project, render D=3/16, the render's backward, trace D=16 with power 1 and 2,
the label trace, a view's sparse GIT) runs on the CUDA device and on the native CPU kernels, on the
real garden points and a synthetic 1M scene (:mod:`gs_core.bench.engine`'s scenes). Each pair is
compared as the CPU backends are checked in ``tests/engine`` (``|a - b| <= 1e-5 max|b| + 1e-4 |b|``,
hit counts equal) and timed in the same process (medians; CUDA synchronised), with the ratio
cpu / cuda. Then the CUDA tests (``pytest -m cuda``), ``gs-core demo --device cuda``, and the
issue's targets on the GPU (GIT over all views against their renders; a click on the demo's work).

Without a CUDA device every GPU part is reported as skipped, and what can be checked here is: the
batched ops that the CUDA path traces with (:mod:`gs_core.engine.batched_backend`) against the CPU
kernels on the CPU. The command writes ``gpu_check.json`` and ``gpu_check.txt`` into ``--out`` and
exits 1 when any check failed (a skip is not a failure; a missed speed target is reported, not failed).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

RTOL, ATOL = 1e-4, 1e-5  # tests/engine's bound for the cpu backend: float32 sums in another order
REPO = Path(__file__).resolve().parents[2]
# GIT keeps a Gaussian's entries in a view when a visibility threshold is met: a sum within rounding of
# it can land on either side, so a few entries per million may be on one side only
GIT_ONE_SIDED = 1e-4


@dataclass
class Check:
    name: str
    status: str  # "passed" | "failed" | "skipped"
    detail: str = ""
    figures: dict = field(default_factory=dict)


def environment() -> dict:
    from ..engine import cpu_backend, gsplat_backend

    env = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.cuda.is_available(),
           "torch_cuda": torch.version.cuda, "nvcc": shutil.which("nvcc"), "cpu_kernels": None, "gsplat": None}
    if cpu_backend.available():
        env["cpu_kernels"] = cpu_backend.variant()
    if env["cuda"]:
        env["gpu"] = torch.cuda.get_device_name(0)
        env["gsplat_imports"] = gsplat_backend.available()
    try:
        from importlib.metadata import version

        env["gsplat"] = version("gsplat")
    except Exception:
        pass
    return env


def agreement(a: torch.Tensor, b: torch.Tensor) -> dict:
    """How ``a`` (the device's result) departs from ``b`` (the CPU kernels'), on the CPU."""
    a, b = a.detach().float().cpu(), b.detach().float().cpu()
    scale = max(1.0, float(b.abs().max())) if b.numel() else 1.0
    bad = (a - b).abs() > ATOL * scale + RTOL * b.abs()
    return {"max_abs": float((a - b).abs().max()) if b.numel() else 0.0, "scale": scale,
            "outside": int(bad.sum()), "elements": int(b.numel())}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _median_ms(fn, device: torch.device, repeats: int) -> float:
    fn()  # warm-up (gsplat's first call, allocator, threads)
    _sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def _ops(g, colors, cam, backend: str, labels, values):
    """name -> (callable returning the tensors to compare, whether it is timed)."""
    from ..engine import project, render, trace
    from ..methods.trace3d import trace_view

    dev = g.device
    pb = "auto" if backend == "cpu" else "torch"  # the CUDA path projects with the torch reference
    proj = project(g, cam, backend=pb)
    f16 = torch.rand(len(g), 16, generator=torch.Generator().manual_seed(1)).to(dev)
    patches = _patches(labels)

    def backward():
        params = [t.detach().clone().requires_grad_(True) for t in (g.means, g.quats, g.scales, g.opacities)]
        gg = type(g)(*params, kind=g.kind)
        c = colors.detach().clone().requires_grad_(True)
        out = render(project(gg, cam, backend=pb), c, backend=backend)
        (out.features.square().sum() + out.alpha.sum()).backward()
        return [c.grad, params[0].grad, params[3].grad]

    def git():  # entries keyed (gaussian, patch), and seen Gaussians' totals keyed by Gaussian
        v = trace_view(proj, patches, backend=backend)
        keys = v.gaussians.astype("int64") * (v.num_patches + 1) + v.patches
        return [(keys, torch.from_numpy(v.weights)), (v.seen.astype("int64"), torch.from_numpy(v.total))]

    return proj, {
        "project": lambda: [p for p in (lambda q: (q.means2d, q.depths, q.conics if q.conics is not None
                                                    else q.ray_transforms))(project(g, cam, backend=pb))],
        "render D=3": lambda: list(_render(render(proj, colors, backend=backend))),
        "render D=16": lambda: list(_render(render(proj, f16, backend=backend))),
        "render backward (colours, means, opacities)": backward,
        "trace D=16": lambda: _trace(trace(proj, values, backend=backend)),
        "trace D=16 power 2": lambda: _trace(trace(proj, values, power=2, backend=backend)),
        "trace labels (top-8)": lambda: _labels(trace(proj, labels, top_k=8, backend=backend)),
        "GIT of one view (sparse)": git,
    }


def _patches(labels: torch.Tensor):
    """Region labels [H, W] as one view's patches (each region its own mask)."""
    import numpy as np

    from ..methods.trace3d import InstancePatches

    pm = labels.cpu().numpy().astype(np.int32)
    n = int(pm.max()) + 1
    return InstancePatches(pm, np.eye(n, dtype=bool), np.bincount(pm.ravel(), minlength=n).astype(np.int64),
                           np.arange(n, dtype=np.int64))


def _render(out):
    return out.features, out.alpha, out.depth


def _trace(out):
    return [out.weighted_sum, out.weight_sum, out.alpha_sum, out.hits]


def _labels(out):
    return [out.weights, out.weight_sum, out.alpha_sum, out.hits]


def compare_scene(name: str, g, colors, cam, device: torch.device, backend: str, repeats: int, say) -> list[Check]:
    """Every op on ``device`` with ``backend`` against the CPU kernels, and their times side by side."""
    from .engine import region_labels

    labels = region_labels(cam.height, cam.width, 64)
    values = torch.randn(cam.height, cam.width, 16, generator=torch.Generator().manual_seed(2))
    ref_proj, ref_ops = _ops(g, colors, cam, "cpu", labels, values)
    dg = g.to(device)
    _, dev_ops = _ops(dg, colors.to(device), cam, backend, labels.to(device), values.to(device))
    checks = []
    for op, ref_fn in ref_ops.items():
        label = f"{name}: {op}"
        try:
            ref, got = ref_fn(), dev_ops[op]()
            only = 0  # keyed results (GIT): entries on one side only, from a threshold met on one side
            if isinstance(ref[0], tuple):
                got, ref, only = _common(got, ref)
            parts = [agreement(a, b) for a, b in zip(got, ref)]
            outside = sum(p["outside"] for p in parts) + (only if only > GIT_ONE_SIDED * len(ref[0]) else 0)
            figures = {"max_abs": max(p["max_abs"] for p in parts), "outside": outside,
                       "elements": sum(p["elements"] for p in parts)}
            figures["cpu_ms"] = round(_median_ms(ref_fn, torch.device("cpu"), repeats), 2)
            figures[f"{device.type}_ms"] = round(_median_ms(dev_ops[op], device, repeats), 2)
            if device.type == "cuda":
                figures["cpu_over_cuda"] = round(figures["cpu_ms"] / max(figures["cuda_ms"], 1e-6), 1)
            status = "passed" if outside == 0 else "failed"
            detail = (f"{outside} of {figures['elements']} values outside {RTOL:g} rel / {ATOL:g} of max; "
                      f"max |diff| {figures['max_abs']:.3g}" + (f"; {only} entries on one side only" if only else ""))
            figures["one_sided"] = only
            checks.append(Check(label, status, detail, figures))
        except Exception as exc:  # one op's failure must not hide the others
            checks.append(Check(label, "failed", f"{type(exc).__name__}: {exc}"))
        say(_line(checks[-1]))
    return checks


def _common(got: list, ref: list) -> tuple[list, list, int]:
    """Keyed results [(keys, values)] -> the values at keys both sides have, and how many keys one side lacks."""
    import numpy as np

    out_g, out_r, only = [], [], 0
    for (kg, vg), (kr, vr) in zip(got, ref):
        _, ig, ir = np.intersect1d(kg, kr, assume_unique=True, return_indices=True)
        out_g.append(vg[torch.from_numpy(ig)])
        out_r.append(vr[torch.from_numpy(ir)])
        only += len(kg) + len(kr) - 2 * len(ig)
    return out_g, out_r, only


def git_target(g, colors, cams, device: torch.device, backend: str, say) -> Check:
    """GIT over all views <= 1.5x one render of all views (projection excluded from both)."""
    from ..engine import project, render
    from ..methods.trace3d import trace_view
    from .engine import region_labels

    g, colors = g.to(device), colors.to(device)
    projs = [project(g, c) for c in cams]
    patches = [_patches(region_labels(c.height, c.width, 64, seed=k)) for k, c in enumerate(cams)]
    rend = _median_ms(lambda: [render(p, colors, backend=backend) for p in projs], device, 3)
    gitt = _median_ms(lambda: [trace_view(p, q, backend=backend) for p, q in zip(projs, patches)], device, 3)
    ratio = gitt / max(rend, 1e-6)
    check = Check("target: GIT over all views <= 1.5x their renders", "passed" if ratio <= 1.5 else "missed",
                  f"GIT {gitt:.1f} ms, renders {rend:.1f} ms: {ratio:.2f}x over {len(cams)} views",
                  {"git_ms": round(gitt, 2), "render_ms": round(rend, 2), "ratio": round(ratio, 2)})
    say(_line(check))
    return check


def _subprocess(name: str, cmd: list[str], timeout: float, say, env=None) -> Check:
    t0 = time.perf_counter()
    try:
        run = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout,
                             env={**os.environ, **(env or {})})
    except subprocess.TimeoutExpired:
        check = Check(name, "failed", f"timed out after {timeout:.0f} s: {' '.join(cmd[1:])}")
    else:
        tail = (run.stdout + run.stderr).strip().splitlines()[-3:]
        check = Check(name, "passed" if run.returncode == 0 else "failed",
                      f"exit {run.returncode}: " + " | ".join(tail), {"seconds": round(time.perf_counter() - t0, 1)})
    say(_line(check))
    return check


def _line(c: Check) -> str:
    return f"[{c.status.upper():7}] {c.name}: {c.detail}"


def _cpu_self_check(say) -> list[Check]:
    """No GPU: the batched ops the CUDA path traces with, on the CPU, against the CPU kernels."""
    from ..engine import Gaussians
    from ..camera import Camera

    gen = torch.Generator().manual_seed(0)
    n = 3000
    g = Gaussians(means=torch.randn(n, 3, generator=gen) * 0.6,
                  quats=torch.nn.functional.normalize(torch.randn(n, 4, generator=gen), dim=-1),
                  scales=torch.exp(torch.randn(n, 3, generator=gen) * 0.8 - 3.5),
                  opacities=torch.rand(n, generator=gen))
    cam = Camera.look_at([0.3, -3.0, 0.6], [0.0, 0.0, 0.0], fov_x_deg=60, width=120, height=90, name="self")
    return compare_scene("CPU self-check (batched vs cpu kernels)", g, torch.rand(n, 3, generator=gen), cam,
                         torch.device("cpu"), "batched", 1, say)


def run_checks(args: argparse.Namespace, say=print) -> dict:
    from ..engine import cpu_backend

    started = time.perf_counter()
    env = environment()
    say("environment: " + ", ".join(f"{k}={v}" for k, v in env.items()))
    checks: list[Check] = []
    cuda = env["cuda"]
    if not cpu_backend.available():
        checks.append(Check("native CPU kernels", "failed", "they do not load: nothing to compare against"))
    elif not cuda:
        reason = "no CUDA device (torch.cuda.is_available() is False)"
        for part in ("ops on CUDA vs the CPU kernels (garden, 1M)", "timings and cpu/cuda ratios",
                     "pytest -m cuda", "gs-core demo --device cuda", "targets on the GPU"):
            checks.append(Check(part, "skipped", reason))
            say(_line(checks[-1]))
        checks += _cpu_self_check(say)
    else:
        from .engine import GARDEN, garden_scene, random_scene

        device = torch.device("cuda")
        backend = "gsplat" if env.get("gsplat_imports") else "batched"
        if backend != "gsplat":
            checks.append(Check("gsplat imports", "failed", "gsplat does not import: render runs batched"))
        scenes = [("garden", *garden_scene(GARDEN))]
        if args.count:
            scenes.append((f"{args.count // 1000}k random", *random_scene(args.count)))
        for name, g, colors, cams in scenes:
            checks += compare_scene(name, g, colors, cams[0], device, backend, args.repeats, say)
        checks.append(git_target(scenes[0][1], scenes[0][2], scenes[0][3], device, backend, say))
        if not args.skip_tests:
            checks.append(_subprocess("pytest -m cuda", [sys.executable, "-m", "pytest", "-q", "-m", "cuda", "tests"],
                                      args.timeout, say))
        if not args.skip_demo:
            demo = Path(args.out) / "demo"
            checks.append(_subprocess("gs-core demo --device cuda", [sys.executable, "-m", "gs_core.cli", "demo",
                                                                    "--device", "cuda", "--out", str(demo)],
                                      args.timeout, say))
            if checks[-1].status == "passed":
                checks.append(_click_target(demo / "work", say))
    counts = {s: sum(c.status == s for c in checks) for s in ("passed", "failed", "skipped", "missed")}
    return {"environment": env, "checks": [asdict(c) for c in checks], "counts": counts,
            "gpu_parts_skipped": not cuda, "seconds": round(time.perf_counter() - started, 1)}


def _click_target(work: Path, say) -> Check:
    from .query import time_queries

    try:
        q = time_queries(work, clicks=8, say=lambda *_: None)
    except Exception as exc:
        check = Check("target: a click < 50 ms", "failed", f"{type(exc).__name__}: {exc}")
    else:
        check = Check("target: a click < 50 ms", "passed" if q["click_ms"] < 50 else "missed",
                      f"median {q['click_ms']} ms, max {q['click_max_ms']} ms over {q['clicks']} clicks", q)
    say(_line(check))
    return check


def summary_text(result: dict) -> str:
    env, counts = result["environment"], result["counts"]
    lines = [f"gs-core bench gpu: {env.get('gpu', 'no GPU')}; torch {env['torch']} (CUDA {env['torch_cuda']}), "
             f"gsplat {env['gsplat']}, cpu kernels {env['cpu_kernels']}"]
    if result["gpu_parts_skipped"]:
        lines.append("GPU PARTS SKIPPED: no CUDA device here; only the CPU self-check of the CUDA path's ops ran.")
    lines += [_line(Check(**c)) for c in result["checks"]]
    lines.append(", ".join(f"{v} {k}" for k, v in counts.items()) + f" in {result['seconds']} s")
    return "\n".join(lines) + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("gpu_check"), help="folder for gpu_check.json/.txt")
    parser.add_argument("--count", type=int, default=1_000_000, help="Gaussians of the synthetic scene (0: none)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per op (medians)")
    parser.add_argument("--timeout", type=float, default=240, help="seconds for the CUDA tests, and for the demo")
    parser.add_argument("--skip-tests", action="store_true", help="do not run pytest -m cuda")
    parser.add_argument("--skip-demo", action="store_true", help="do not run gs-core demo --device cuda")


def run(args: argparse.Namespace) -> int:
    from ..io.atomic import atomic_write
    from ..preflight import check_output_dir

    out = check_output_dir(args.out, "--out")
    result = run_checks(args)
    text = summary_text(result)
    with atomic_write(out / "gpu_check.json", "w") as fh:
        json.dump(result, fh, indent=1)
    with atomic_write(out / "gpu_check.txt", "w") as fh:
        fh.write(text)
    print(text.splitlines()[-1])
    print(f"wrote {out / 'gpu_check.json'} and {out / 'gpu_check.txt'}")
    return 1 if result["counts"]["failed"] else 0

"""Toolchains beyond the install's GCC: the kernels compile for AArch64 (NEON, through the same vector
code) with Debian's cross compiler, and build and run with Clang where it has no OpenMP (as Apple
Clang on macOS): serial, said once on stderr, with the same results as the GCC build of the same
width. Slow (a compile each); skipped where the compiler is not installed."""

import os
import shutil
import subprocess
import sys
import sysconfig

import pytest
from torch.utils import cpp_extension

from gs_core.engine import cpu_backend, isa

pytestmark = pytest.mark.slow


def _includes() -> list[str]:
    return [f"-I{p}" for p in cpp_extension.include_paths()] + [f"-I{sysconfig.get_paths()['include']}"]


@pytest.mark.skipif(shutil.which("aarch64-linux-gnu-g++") is None,
                    reason="no AArch64 cross compiler (Debian: apt-get install g++-aarch64-linux-gnu)")
def test_kernels_compile_for_aarch64(tmp_path):
    obj = tmp_path / "raster_cpu.o"
    result = subprocess.run(["aarch64-linux-gnu-g++", "-c", "-fPIC", "-std=c++20", "-O1", *_includes(),
                             "-DTORCH_EXTENSION_NAME=_raster_portable", *isa.compile_flags([]),
                             str(cpu_backend.source_path()), "-o", str(obj)],
                            capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    disassembly = subprocess.run(["aarch64-linux-gnu-objdump", "-d", str(obj)], capture_output=True, text=True).stdout
    assert "fmla\tv" in disassembly  # NEON vector fused multiply-adds: the vector code, not scalar loops


_CHECK = """
import sys, torch
sys.path.insert(0, {tests!r})
from engine_scenes import camera, random_gaussians
from gs_core.engine import cpu_backend, project, render, trace
clang = cpu_backend.load()
print("variant", cpu_backend.variant(), "openmp", clang.openmp, "build", clang.vector_width, clang.fused_madd)
for kind in ("3dgs", "2dgs"):
    g = random_gaussians(300, kind, seed=2)
    cam = camera(eye=(0.2, -1.2, 0.3))
    outs = {{}}
    for name in ("native", {reference!r}):
        cpu_backend._ext = clang if name == "native" else cpu_backend.prebuilt(name)
        proj = project(g, cam, backend="cpu")
        gen = torch.Generator().manual_seed(0)
        f = torch.randn(len(g), 40, generator=gen)
        r = render(proj, f, backend="cpu")
        t = trace(proj, torch.randn(cam.height, cam.width, 16, generator=gen), backend="cpu")
        outs[name] = (proj.means2d, r.features, r.alpha, t.weighted_sum, t.weight_sum)
    print(kind, "bitwise", all(torch.equal(a, b) for a, b in zip(*outs.values())))
"""


@pytest.mark.skipif(shutil.which("clang++") is None, reason="no clang++")
def test_clang_build_without_openmp_runs_serially_and_matches_gcc(tmp_path):
    """Debian's clang++ without libomp stands in for Apple Clang: -fopenmp fails, so the kernels are
    built serial. Compiled for this CPU, they have the width and FMA of the widest GCC variant, so
    their results must be bitwise the same as it (the same float32 operations in the same order)."""
    if isa._has_openmp(shutil.which("clang++")):
        pytest.skip("this clang++ has OpenMP (libomp): not the macOS case")
    widest = cpu_backend.prebuilt_variants()
    if not widest:
        pytest.skip("no prebuilt GCC variant to compare with")
    code = _CHECK.format(tests=os.path.dirname(__file__), reference=widest[0])
    env = {**os.environ, "CXX": "clang++", "GS_CORE_ISA": "native", "GS_CORE_CACHE": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "variant native openmp False" in result.stdout
    assert result.stderr.count("built without OpenMP") == 1
    gcc = cpu_backend.prebuilt(widest[0])
    if f"build {gcc.vector_width} {gcc.fused_madd}" in result.stdout:
        assert "3dgs bitwise True" in result.stdout and "2dgs bitwise True" in result.stdout, result.stdout

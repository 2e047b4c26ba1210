"""Kernel variants: installing builds one per instruction set, the widest the CPU runs is chosen,
GS_CORE_ISA forces a narrower one, stale builds are not used, and a run-time compile says so."""

import json
import os
import subprocess
import sys

import pytest
import torch

from gs_core.engine import cpu_backend, isa


def _run(code: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=300)


def test_every_runnable_variant_was_prebuilt_for_its_instruction_set():
    runnable = cpu_backend.runnable_variants()
    assert runnable and runnable[-1] == "portable"
    assert cpu_backend.prebuilt_variants() == runnable, (
        "the install did not build every kernel variant this CPU runs (./install.sh builds them)")
    for name in runnable:
        # the module's own compile-time report: the avx2 build really has no AVX-512 code
        assert cpu_backend.prebuilt(name).isa == name


def test_default_is_the_widest_variant_and_gs_core_isa_forces_another():
    code = ("from gs_core.engine import cpu_backend as c; c.load(); "
            "print(c.variant(), c.load().isa)")
    widest = cpu_backend.runnable_variants()[0]
    assert _run(code, GS_CORE_ISA="").stdout.split() == [widest, widest]
    for name in cpu_backend.runnable_variants():
        result = _run(code, GS_CORE_ISA=name)
        assert result.stdout.split() == [name, name], result.stderr


def test_bad_gs_core_isa_names_the_choices(monkeypatch):
    monkeypatch.setenv("GS_CORE_ISA", "sse9")
    with pytest.raises(ValueError, match="GS_CORE_ISA='sse9'.*portable"):
        isa.forced()


def test_variant_the_cpu_cannot_run_is_refused(monkeypatch):
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "DEFAULT")
    assert cpu_backend.runnable_variants() == ["portable"]
    if "avx2" in isa.VARIANTS:
        with pytest.raises(ImportError, match="cannot run the avx2"):
            cpu_backend.prebuilt("avx2")


def test_stale_prebuilt_kernels_are_not_used(monkeypatch, tmp_path):
    info = json.loads(cpu_backend._BUILD_INFO.read_text())
    stale = tmp_path / "build.json"
    stale.write_text(json.dumps({**info, "source_sha1": "0" * 40}))
    monkeypatch.setattr(cpu_backend, "_BUILD_INFO", stale)
    with pytest.raises(ImportError, match="changed since the kernels were prebuilt"):
        cpu_backend.prebuilt("portable")
    stale.write_text(json.dumps({**info, "torch": "1.0"}))
    with pytest.raises(ImportError, match="for torch 1.0"):
        cpu_backend.prebuilt("portable")


def test_compiling_at_run_time_is_announced_with_its_time(monkeypatch, tmp_path, capsys):
    from torch.utils import cpp_extension

    calls = []

    def fake_load(name, sources, build_directory, **kwargs):  # stands in for the minute-long compile
        calls.append(kwargs["extra_cflags"])
        return "module"

    monkeypatch.setenv("GS_CORE_CACHE", str(tmp_path))
    monkeypatch.setattr(cpp_extension, "load", fake_load)
    assert cpu_backend._compile() == "module"
    err = capsys.readouterr().err
    assert "compiling the native CPU kernels" in err and "compiled the native CPU kernels in" in err
    assert "-march=native" in calls[0] and "-ffp-contract=off" in calls[0]


# What each variant is compiled for: floats per vector, and whether multiply-adds are fused (FMA).
EXPECTED_BUILD = {"avx512": (16, True), "avx2": (8, True), "portable": (4, False)}


def test_each_variant_has_its_vector_width_and_openmp():
    built_with_openmp = json.loads(cpu_backend._BUILD_INFO.read_text()).get("openmp")
    for name in cpu_backend.prebuilt_variants():
        ext = cpu_backend.prebuilt(name)
        assert (ext.vector_width, ext.fused_madd) == EXPECTED_BUILD[name], name
        assert ext.openmp == built_with_openmp, "the install's record and the module disagree"


def _engine_outputs(kind: str) -> dict[str, torch.Tensor]:
    """Render (dense, chunk-local and sparse channel paths), traces and gradients on a small scene."""
    from engine_scenes import camera, random_gaussians
    from gs_core.engine import Gaussians, project, render, trace

    g = random_gaussians(300, kind, seed=3)
    cam = camera(eye=(0.2, -1.2, 0.3))
    gen = torch.Generator().manual_seed(0)
    out = {}
    for d in (3, 16, 40):
        leaves = {k: getattr(g, k).clone().requires_grad_(True) for k in ("means", "quats", "scales", "opacities")}
        f = torch.randn(len(g), d, generator=gen).requires_grad_(True)
        r = render(project(Gaussians(**leaves, kind=kind), cam, backend="cpu"), f, backend="cpu")
        (r.features * torch.randn(r.features.shape, generator=gen)).sum().backward()
        out[f"render D={d}"] = r.features.detach()
        out[f"alpha D={d}"] = r.alpha.detach()
        for k, v in leaves.items():
            out[f"d{k} D={d}"] = v.grad
        out[f"dfeatures D={d}"] = f.grad
    proj = project(g, cam, backend="cpu")
    t = trace(proj, torch.randn(cam.height, cam.width, 16, generator=gen), backend="cpu")
    out["trace D=16"], out["trace weights"] = t.weighted_sum, t.weight_sum
    labels = torch.randint(0, 12, (cam.height, cam.width), generator=gen, dtype=torch.int32)
    h = trace(proj, labels, top_k=4, backend="cpu")
    out["label weights"], out["labels"] = h.weights, h.labels
    return out


@pytest.mark.parametrize("kind", ["3dgs", "2dgs"])
def test_variants_round_alike(kind):
    """The vector code is written once for the build's width, with sums in the same lane order in
    every build: variants that fuse multiply-adds alike give bitwise the same results (render, trace,
    every gradient); one that does not (portable: no FMA) differs by rounding only."""
    variants = cpu_backend.prebuilt_variants()
    if len(variants) < 2:
        pytest.skip(f"one kernel variant runs here ({variants})")
    previous = cpu_backend.variant()
    try:
        results = {}
        for name in variants:
            cpu_backend.use(name)
            results[name] = _engine_outputs(kind)
    finally:
        cpu_backend.use(previous if previous in isa.VARIANTS else None)
    first = variants[0]
    for other in variants[1:]:
        same_rounding = cpu_backend.prebuilt(first).fused_madd == cpu_backend.prebuilt(other).fused_madd
        for key, a in results[first].items():
            b = results[other][key]
            if same_rounding:
                assert torch.equal(a, b), (first, other, key)
            elif not key.startswith("d"):  # forward outputs: sums of positive weights, well conditioned
                if a.dtype.is_floating_point:
                    torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5 * max(1.0, float(a.abs().max())))


def test_openmp_is_optional(monkeypatch):
    monkeypatch.setenv(isa.NO_OPENMP_ENV, "1")
    assert isa.openmp_flags() == []
    assert "-fopenmp" not in isa.compile_flags(["-march=native"])
    monkeypatch.delenv(isa.NO_OPENMP_ENV)
    monkeypatch.setenv("CXX", "/bin/false")  # a "compiler" that builds nothing, as Apple Clang with -fopenmp
    assert isa.openmp_flags() == [] and isa.link_flags() == []


def test_serial_build_is_said_once(monkeypatch, capsys):
    class Serial:
        openmp = False

    monkeypatch.setattr(cpu_backend, "_said_serial", False)
    cpu_backend._say_if_serial(Serial())
    cpu_backend._say_if_serial(Serial())
    err = capsys.readouterr().err
    assert err.count("built without OpenMP") == 1 and "one thread" in err

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

"""Instruction-set variants of the native CPU kernels: what each is compiled with and which runs here.

``setup.py`` compiles ``cuda/raster_cpu.cpp`` once per variant when the package is installed (so a
wheel runs on any x86-64 CPU); :mod:`gs_core.engine.cpu_backend` loads the widest variant the CPU
supports. The variants' feature sets are torch's own CPU capability levels (``AVX512`` needs
AVX-512 F/BW/DQ/VL and FMA, ``AVX2`` needs AVX2 and FMA), so torch's detection
(:func:`torch.backends.cpu.get_cpu_capability`) decides. ``GS_CORE_ISA`` forces a variant (CI runs
the engine tests on the narrower ones), or ``native`` to compile for this very CPU at run time.
No torch at import: ``setup.py`` loads this file on its own.
"""

from __future__ import annotations

import functools
import os
import platform

_X86 = platform.machine().lower() in ("x86_64", "amd64")
_AVX2 = ["-march=x86-64-v2", "-mavx2", "-mfma", "-mf16c"] if _X86 else []

# variant -> compiler flags, widest first; non-x86 machines get one variant with the compiler's defaults
VARIANTS: dict[str, list[str]] = (
    {"avx512": _AVX2 + ["-mavx512f", "-mavx512bw", "-mavx512dq", "-mavx512vl"],
     "avx2": _AVX2,
     "portable": ["-march=x86-64"]}
    if _X86 else {"portable": []})
# torch capability -> variants it can run (torch.backends.cpu.get_cpu_capability())
_RUNS = {"AVX512": ("avx512", "avx2", "portable"), "AVX2": ("avx2", "portable")}
# every variant: -O3 and no implicit FMA contraction (the kernels place their FMAs by hand, so variants
# with FMA round alike); -Wno-psabi: GCC's note that vector arguments pass differently between ISAs.
# OpenMP is added where the compiler has it (openmp_flags).
COMMON_FLAGS = ["-O3", "-ffp-contract=off", "-Wno-psabi"]
NATIVE = "native"  # GS_CORE_ISA value: compile at run time with -march=native
ENV = "GS_CORE_ISA"
NO_OPENMP_ENV = "GS_CORE_NO_OPENMP"  # set: build without OpenMP even where the compiler has it
_OPENMP_PROBE = "#include <omp.h>\nint main() { return omp_get_max_threads() > 0 ? 0 : 1; }\n"


def compiler() -> str:
    """The C++ compiler a build uses: ``$CXX``, else Python's configured one, else ``c++``."""
    import shlex
    import sysconfig

    return shlex.split(os.environ.get("CXX") or sysconfig.get_config_var("CXX") or "c++")[0]


@functools.lru_cache(maxsize=None)
def _has_openmp(cxx: str) -> bool:
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        try:
            result = subprocess.run([cxx, "-fopenmp", "-x", "c++", "-", "-o", os.path.join(tmp, "probe")],
                                    input=_OPENMP_PROBE, capture_output=True, text=True, timeout=120)
        except (OSError, subprocess.SubprocessError):
            return False
    return result.returncode == 0


def openmp_flags() -> list[str]:
    """``["-fopenmp"]`` when the compiler builds and links an OpenMP program, else ``[]``: the kernels
    then run serially (macOS's Apple Clang has no OpenMP; GS_CORE_NO_OPENMP forces this anywhere)."""
    if os.environ.get(NO_OPENMP_ENV, "").strip() not in ("", "0"):
        return []
    return ["-fopenmp"] if _has_openmp(compiler()) else []


def compile_flags(variant_flags: list[str]) -> list[str]:
    """Compiler flags of a build with ``variant_flags`` (an entry of VARIANTS, or -march=native)."""
    return COMMON_FLAGS + openmp_flags() + variant_flags


def link_flags() -> list[str]:
    return openmp_flags()


def module_name(variant: str) -> str:
    """The extension module of ``variant``, inside ``gs_core.engine``."""
    return f"_raster_{variant}"


def runnable(capability: str) -> list[str]:
    """Variants the CPU can run, widest first, given torch's capability string."""
    return [v for v in _RUNS.get(capability.upper(), ("portable",)) if v in VARIANTS]


def forced() -> str | None:
    """The variant ``GS_CORE_ISA`` asks for (None when unset or ``auto``); raises on a bad value."""
    value = os.environ.get(ENV, "").strip().lower()
    if value in ("", "auto"):
        return None
    if value not in (*VARIANTS, NATIVE):
        raise ValueError(f"{ENV}={value!r}: choose from auto, {', '.join(VARIANTS)}, {NATIVE}")
    return value

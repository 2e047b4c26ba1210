"""Builds the native CPU kernels when gs_core is installed (everything else is in pyproject.toml).

``cuda/raster_cpu.cpp`` is compiled once per instruction-set variant of ``gs_core/engine/isa.py``
(AVX-512, AVX2, portable x86-64) into ``gs_core/engine/_raster_<variant>*.so``, so the first
``gs-core`` command starts at once and a wheel runs on any x86-64 CPU. The build needs torch's
headers: install with ``--no-build-isolation`` into an environment that has torch (``install.sh``
does); in an isolated build without torch, or without a C++ compiler, nothing is prebuilt and gs_core
compiles the kernels on first use (saying so on stderr), or falls back to its torch backend.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

from setuptools import setup

ROOT = Path(__file__).resolve().parent
SOURCE = "cuda/raster_cpu.cpp"
BUILD_INFO = "_raster_build.json"  # beside the modules: source hash and torch version they were built from


def _isa():
    """gs_core/engine/isa.py on its own (importing gs_core.engine would need the installed package)."""
    spec = importlib.util.spec_from_file_location("gs_core_isa", ROOT / "gs_core" / "engine" / "isa.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _say(message: str) -> None:
    print(f"gs_core setup: {message}", file=sys.stderr, flush=True)


def _wrappers(variants) -> dict[str, str]:
    """One source file per variant (``build/gs_core_native/``, each including the kernel source), so
    the variants compile to separate object files and can build side by side."""
    folder = ROOT / "build" / "gs_core_native"
    folder.mkdir(parents=True, exist_ok=True)
    sources = {}
    for variant in variants:
        path = folder / f"raster_cpu_{variant}.cpp"
        text = f'// made by setup.py: the {variant} build of {SOURCE}\n#include "../../{SOURCE}"\n'
        if not path.is_file() or path.read_text() != text:
            path.write_text(text)
        sources[variant] = path.relative_to(ROOT).as_posix()
    return sources


def native_build() -> dict:
    """``setup()`` keywords for the kernel extensions, or none when torch is not importable."""
    if os.environ.get("GS_CORE_NO_NATIVE_BUILD"):
        _say("GS_CORE_NO_NATIVE_BUILD is set: not prebuilding the native kernels")
        return {}
    try:
        import torch
        from torch.utils.cpp_extension import BuildExtension, CppExtension
    except ImportError:
        _say("torch is not importable at build time (pip's build isolation?): the native kernels are not "
             "prebuilt; gs_core compiles them on first use. Install with --no-build-isolation to prebuild.")
        return {}
    isa = _isa()
    sources = _wrappers(isa.VARIANTS)
    extensions = [CppExtension(f"gs_core.engine.{isa.module_name(variant)}", [sources[variant]],
                               extra_compile_args=isa.compile_flags(flags), extra_link_args=isa.link_flags(),
                               depends=[SOURCE], optional=True)
                  for variant, flags in isa.VARIANTS.items()]
    info = {"source_sha1": hashlib.sha1((ROOT / SOURCE).read_bytes()).hexdigest(), "torch": torch.__version__,
            "openmp": bool(isa.openmp_flags())}

    class BuildNative(BuildExtension):
        """Variants compile side by side (up to 3 at once, about 1.5 GB of memory each); one that
        fails is reported and skipped, so a machine without a compiler still installs."""

        def finalize_options(self):
            super().finalize_options()
            if not self.parallel:
                self.parallel = max(1, min(len(isa.VARIANTS), os.cpu_count() or 1))

        def run(self):
            start = time.perf_counter()
            _say(f"compiling the native CPU kernels: {', '.join(isa.VARIANTS)} "
                 f"({self.parallel} at a time, about a minute each)")
            if not isa.openmp_flags():
                _say(f"{isa.compiler()} has no OpenMP (or {isa.NO_OPENMP_ENV} is set): the kernels are built "
                     "serial and run on one thread")
            super().run()
            # the variants built from this source (a failed one may have left an older module in place)
            source_time = (ROOT / SOURCE).stat().st_mtime
            built = [ext for ext in self.extensions
                     if (lib := Path(self.build_lib, self.get_ext_filename(ext.name))).is_file()
                     and lib.stat().st_mtime >= source_time]
            record = json.dumps({**info, "variants": [e.name.rsplit("_", 1)[-1] for e in built]}, indent=1)
            for folder in {Path(self.get_ext_fullpath(e.name)).parent for e in self.extensions} | {
                    Path(self.build_lib, self.get_ext_filename(e.name)).parent for e in self.extensions}:
                if folder.is_dir():
                    (folder / BUILD_INFO).write_text(record + "\n")
            _say(f"built {len(built)} of {len(self.extensions)} kernel variants in {time.perf_counter() - start:.0f} s")

        def build_extension(self, ext):
            try:
                super().build_extension(ext)
            except Exception as exc:  # CompileError, LinkError, a missing compiler
                _say(f"could not build {ext.name} ({type(exc).__name__}: {exc}); gs_core will compile the "
                     "kernels on first use or fall back to its torch backend")

    return {"ext_modules": extensions, "cmdclass": {"build_ext": BuildNative.with_options(use_ninja=False)}}


setup(**native_build())

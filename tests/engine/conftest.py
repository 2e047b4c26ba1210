"""Fixtures for the engine tests (scene factories live in engine_scenes.py)."""

import pytest

from engine_scenes import camera, random_gaussians


@pytest.fixture(params=["3dgs", "2dgs"])
def kind(request) -> str:
    return request.param


@pytest.fixture
def scene(kind):
    """(gaussians, camera): 400 Gaussians, camera inside the cloud's edge so some are behind it."""
    return random_gaussians(400, kind, seed=1), camera(eye=(0.2, -1.2, 0.3))


def _kernel_variants() -> list[str]:
    """Every prebuilt kernel variant this CPU runs (AVX-512, AVX2, portable), so the narrower
    fallbacks are tested too; only the one GS_CORE_ISA names when set; "any" (whatever loads,
    compiled here if need be) when nothing was prebuilt."""
    from gs_core.engine import cpu_backend, isa

    wanted = isa.forced()
    if wanted:
        return [wanted]
    return cpu_backend.runnable_variants() if cpu_backend.prebuilt_variants() else ["any"]


@pytest.fixture(scope="module", params=_kernel_variants())
def native(request):
    """The native CPU kernels, one prebuilt variant per parameter (skips visibly if none loads). Module
    scope: the variant in use is restored when the module's tests end, so later tests (a Ray driver
    beside workers that load the default variant) never run on a variant left over from here."""
    from gs_core.engine import cpu_backend, isa

    if request.param == "any":
        if not cpu_backend.available():
            pytest.skip("native CPU extension unavailable (no compiler?)")
        yield cpu_backend
        return
    if request.param == isa.NATIVE:
        cpu_backend.load()  # compiled for this machine: an error here is a failure, not a skip
        yield cpu_backend
        return
    previous = cpu_backend.variant()
    cpu_backend.use(request.param)  # a runnable variant that is missing or stale fails the tests
    yield cpu_backend
    cpu_backend.use(previous if previous in isa.VARIANTS else None)


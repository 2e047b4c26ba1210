"""``gs-core bench splats-gl`` on a tiny scene and viewport: it draws through the add-on (Blender's GPU backend
headless) and prints its table; the scene it builds reads back, through the add-on's attributes, as ``bench
splats``' random Gaussians. Skipped, with the reason, without bpy or an EGL driver."""

import argparse

import numpy as np
import pytest

pytestmark = pytest.mark.blender


def test_bench_draws_a_tiny_scene_and_its_table_is_bench_splats_scene(capsys):
    pytest.importorskip("bpy")
    from gs_core.bench import splats_gl
    from gs_core.bench.splats import _scene
    from gs_core.blender_host import import_addon

    import_addon("bench splats-gl")
    from blender_addon import gpu_background, splat_attributes, splat_display

    reason = gpu_background.probe()
    if reason is not None:
        pytest.skip(reason)
    data = splat_attributes.table_to_splat_data(splats_gl.splat_table(300, seed=2), "bench")
    shown = splat_display.object_splats({k: v.values for k, v in data.attributes.items()}, np.eye(4))
    want = _scene(300, seed=2)
    np.testing.assert_allclose(shown.means, want.means, atol=1e-6)
    np.testing.assert_allclose(shown.scales, want.scales, rtol=1e-5)
    np.testing.assert_allclose(shown.opacities, want.opacities, atol=1e-5)
    np.testing.assert_allclose(np.abs((shown.quats * want.quats).sum(1)), 1.0, atol=1e-5)
    np.testing.assert_allclose(shown.sh, want.sh, atol=1e-6)
    assert splats_gl.run(argparse.Namespace(counts=[500], repeats=1, size=[64, 48])) == 0
    out = capsys.readouterr().out
    assert "500" in out and "64x48" in out and ("exact" in out or "coarse" in out)

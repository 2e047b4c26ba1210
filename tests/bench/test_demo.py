"""``gs-core demo``: the README's main job on the built-in sample."""

import time

import numpy as np
import pytest

import gs_core.synth
from gs_core.cli import main
from gs_core.scene import GaussianScene


def test_demo_tiny(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--size", "tiny", "--seed", "1"]) == 0
    printed = capsys.readouterr().out
    assert "naive" in printed and "oracle" in printed and "extracted" in printed
    assert (out / "results.png").stat().st_size > 0
    plys = list(out.glob("*.ply"))
    assert len(plys) == 1
    part = GaussianScene.load(plys[0])
    whole = GaussianScene.load(out / "dataset" / "scene.ply")
    assert 0 < len(part) < len(whole)
    # the extracted splats are rows of the scene, bit for bit
    rows = {tuple(r) for r in whole.means.tolist()}
    assert all(tuple(r) in rows for r in part.means.tolist())


def test_demo_ctrl_c_is_clean(tmp_path, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(gs_core.synth, "render_views", interrupted)
    assert main(["demo", "--out", str(tmp_path / "d"), "--size", "tiny"]) == 130
    assert "demo cancelled" in capsys.readouterr().out


@pytest.mark.slow
def test_demo_default_finishes_well_under_a_minute(tmp_path):
    t0 = time.perf_counter()
    assert main(["demo", "--out", str(tmp_path / "demo")]) == 0
    assert time.perf_counter() - t0 < 45
    assert np.isfinite(GaussianScene.load(next((tmp_path / "demo").glob("*.ply"))).means).all()

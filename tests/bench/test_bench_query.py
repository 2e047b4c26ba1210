"""``gs-core bench query``: the add-on's click and slider queries timed on a prepared tiny dataset."""

import pytest

from gs_core.bench.query import time_queries
from gs_core.cli import main
from gs_core.scene import GaussianScene
from gs_core.synth import MaskNoise, SynthConfig, build_dataset


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("bq")
    build_dataset(root / "dataset", SynthConfig.sized("tiny"), MaskNoise.level(0.5))
    assert main(["prepare", str(root / "dataset"), "--out", str(root / "work")]) == 0
    return root / "work"


def test_time_queries_answers_every_click(work):
    lines = []
    r = time_queries(work, clicks=3, say=lines.append)
    assert r["gaussians"] == len(GaussianScene.load(work / "scene.ply"))
    assert len(lines) == 3 and all("Gaussians selected" in line for line in lines)
    assert 0 < r["click_ms"] <= r["click_max_ms"]
    assert r["slider_ms"] > 0 and r["click_cpu_ms"] > 0


def test_command_prints_the_medians(work, capsys):
    assert main(["bench", "query", str(work), "--clicks", "2"]) == 0
    assert "median wall" in capsys.readouterr().out


def test_command_errors(work, tmp_path, capsys):
    assert main(["bench", "query", str(work), "--clicks", "0"]) == 2
    assert "--clicks" in capsys.readouterr().err
    assert main(["bench", "query", str(tmp_path / "missing")]) == 2
    assert "missing" in capsys.readouterr().err


def test_shell_clicks_are_timed_against_the_engine_path(work, capsys):
    from gs_core.bench.query import time_shell_clicks

    lines = []
    r = time_shell_clicks(work, runs=1, say=lines.append)
    assert r["same_selection"] and len(lines) == 2
    assert r["default_wall_s"] > 0 and r["engine (--backend cpu)_wall_s"] > 0
    assert main(["bench", "query", str(work), "--clicks", "1", "--shell", "-1"]) == 2
    assert "--shell" in capsys.readouterr().err

"""The segmentation benchmark: scenes, the run, its table and its command."""

import json

import numpy as np
import pytest

from gs_core.bench.segmentation import DEFAULT_METHODS, BenchConfig, parse_scene, run_bench
from gs_core.eval import METHODS, MethodInput, MethodResult
from gs_core.cli import main
from gs_core.synth import MaskNoise


def test_parse_scene():
    assert parse_scene("room:3") == ("room", 3)
    assert parse_scene("tabletop") == ("tabletop", 0)
    with pytest.raises(ValueError, match="layout"):
        parse_scene("room:x")


def test_adding_a_method_is_one_line(monkeypatch, tmp_path):
    def everything_one_object(inp: MethodInput) -> MethodResult:
        return MethodResult(np.zeros(len(inp.dataset.load_scene()), np.int64))

    monkeypatch.setitem(METHODS, "one", everything_one_object)
    config = BenchConfig(methods=["oracle", "one"], scenes=["tabletop:2"], noise=[0.5], size="tiny")
    results = run_bench(config, tmp_path)
    assert [r["method"] for r in results["rows"]] == ["oracle", "one"]
    assert results["rows"][0]["pan_miou"] > results["rows"][1]["pan_miou"]
    assert all(r["cpu_seconds"] >= 0 for r in results["rows"])  # process CPU time beside the wall time
    with pytest.raises(ValueError, match="unknown methods"):
        BenchConfig(methods=["nope"])


def test_noise_only_writes_masks_with_one_failure_mode(tmp_path):
    config = BenchConfig(methods=["oracle"], scenes=["tabletop:2"], noise=[1.0], size="tiny", noise_only=["jitter"])
    run_bench(config, tmp_path)
    written = json.loads((tmp_path / "data" / "tabletop2_tiny_n1_jitter" / "gt" / "scene.json").read_text())
    assert written["noise"] == MaskNoise.level(1.0).only("jitter").to_json()
    with pytest.raises(ValueError, match="unknown mask-noise knob"):
        BenchConfig(noise_only=["blur"])


def test_hard_cases_write_their_world_and_their_mask_failures(tmp_path):
    config = BenchConfig(methods=["oracle"], scenes=["tabletop:2"], noise=[1.0], size="tiny", hard_cases=True)
    results = run_bench(config, tmp_path)
    written = json.loads((tmp_path / "data" / "tabletop2_hard_tiny_n1" / "gt" / "scene.json").read_text())
    assert written["noise"] == MaskNoise.level(1.0, hard=True).to_json() and written["config"]["hard_cases"]
    categories = {o["category"] for o in written["hierarchy"]["objects"]}
    assert {"shelf", "apple", "pen", "cable", "plate"} <= categories
    assert results["rows"] and all(r["method"] == "oracle" for r in results["rows"])


def test_bench_command_writes_table_json_and_pictures(tmp_path, capsys):
    out = tmp_path / "bench"
    assert main(["bench", "segmentation", "--size", "tiny", "--scenes", "tabletop:4", "room:1",
                 "--noise", "0", "1", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    rows = results["rows"]
    assert len(rows) == 2 * 2 * len(DEFAULT_METHODS)
    assert {(r["scene"], r["noise"]) for r in rows} == {(s, n) for s in ("tabletop:4", "room:1") for n in (0.0, 1.0)}
    for r in rows:
        assert 0 <= r["pan_miou"] <= 1 and r["seconds"] >= 0
    md = (out / "results.md").read_text()
    assert md.startswith("| scene | noise | method |") and md.count("\n| room:1 |") == 2 * len(DEFAULT_METHODS)
    for tag in ("tabletop4_tiny_n0", "tabletop4_tiny_n1", "room1_tiny_n0", "room1_tiny_n1"):
        assert (out / f"{tag}.png").stat().st_size > 0
        assert (out / "data" / tag / "scene.ply").is_file()
    printed = capsys.readouterr().out
    assert "segmentation benchmark" in printed and "naive" in printed


def test_reuse_data_keeps_a_dataset_of_the_same_world_and_noise(tmp_path, monkeypatch):
    """``--reuse-data DIR``: the first run writes its datasets there, the second keeps them without making
    the world again and scores the same; a run with another mask noise writes its own."""
    import gs_core.synth.writer

    data = tmp_path / "data"
    config = BenchConfig(methods=["oracle", "naive"], scenes=["tabletop:2"], noise=[0.5], size="tiny",
                         reuse_data=str(data))
    first = run_bench(config, tmp_path / "a")
    assert [d["dataset"] for d in first["datasets"]] == ["written"] and first["scenes"][0]["made"]
    stamp = (data / "tabletop2_tiny_n0.5" / "scene.ply").stat().st_mtime_ns

    def no_world(*args, **kwargs):
        raise AssertionError("a reused dataset's world was generated again")

    with monkeypatch.context() as m:
        m.setattr(gs_core.synth.writer, "make_world", no_world)
        second = run_bench(config, tmp_path / "b")
    assert [d["dataset"] for d in second["datasets"]] == ["reused"] and not second["scenes"][0]["made"]
    assert (data / "tabletop2_tiny_n0.5" / "scene.ply").stat().st_mtime_ns == stamp
    assert second["scenes"][0]["gaussians"] == first["scenes"][0]["gaussians"] > 0
    for a, b in zip(first["rows"], second["rows"]):
        assert a["method"] == b["method"] and a["pan_miou"] == b["pan_miou"] and a["nv_miou"] == b["nv_miou"]
    other = run_bench(BenchConfig(methods=["oracle"], scenes=["tabletop:2"], noise=[1.0], size="tiny",
                                  reuse_data=str(data)), tmp_path / "c")
    assert [d["dataset"] for d in other["datasets"]] == ["written"]
    assert (tmp_path / "b" / "tabletop2_tiny_n0.5.png").is_file() and not (tmp_path / "b" / "data").exists()
    # named as ``bench clicks`` names it, so that command reuses it; another kind gets a folder of its own
    from gs_core.bench.segmentation import dataset_tag
    from gs_core.synth import SynthConfig, dataset_written

    assert dataset_written(data / dataset_tag("tabletop", 2, "tiny", 0.5), SynthConfig.sized("tiny", layout="tabletop",
                           seed=2), MaskNoise.level(0.5))
    assert dataset_tag("tabletop", 2, "tiny", 0.5, "2dgs") != dataset_tag("tabletop", 2, "tiny", 0.5)


def test_reuse_data_must_be_a_folder(capsys, tmp_path):
    (tmp_path / "f").write_text("x")
    assert main(["bench", "segmentation", "--reuse-data", str(tmp_path / "f"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert "--reuse-data" in err and "not a folder" in err and "\n" not in err

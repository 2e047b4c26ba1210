"""The segmentation benchmark: query rule, scoring, the run and its command."""

import json

import numpy as np
import pytest
import torch

from gs_core.bench.methods import METHODS, MethodInput, MethodResult, naive_lifting, oracle
from gs_core.bench.segmentation import (DEFAULT_METHODS, BenchConfig, Evaluation, Query, parse_scene, run_bench,
                                        select)
from gs_core.cli import main
from gs_core.dataset import Dataset
from gs_core.engine import project, render
from gs_core.synth import GroundTruth, MaskNoise


def test_parse_scene():
    assert parse_scene("room:3") == ("room", 3)
    assert parse_scene("tabletop") == ("tabletop", 0)
    with pytest.raises(ValueError, match="layout"):
        parse_scene("room:x")


def _query(inside, total):
    return Query(0, "thing", 0, np.array(inside, float), np.array(total, float))


def test_select_takes_labels_mostly_inside_the_query_mask():
    labels = np.array([0, 0, 1, 1, 2, -1])
    q = _query([1, 1, 0.2, 0, 0, 5], [1, 1, 1, 1, 1, 5])
    assert select(labels, q).tolist() == [True, True, False, False, False, False]
    # no label is mostly inside: the one with most weight inside is taken
    q = _query([0.3, 0.2, 0.1, 0, 0, 0], [1, 1, 1, 1, 1, 0])
    assert select(labels, q).tolist() == [True, True, False, False, False, False]
    assert not select(labels, _query([0] * 6, [1] * 6)).any()
    assert not select(np.full(6, -1), q).any()


@pytest.fixture(scope="module")
def noisy_eval(noisy_root):
    ds, gt = Dataset.load(noisy_root), GroundTruth.load(noisy_root)
    return Evaluation.prepare(ds, gt)


def test_queries_are_visible_things(noisy_eval):
    h = noisy_eval.gt.hierarchy
    assert noisy_eval.queries
    for q in noisy_eval.queries:
        assert not h.objects[q.object].stuff
        assert q.ref_view in noisy_eval.train
        assert q.inside.sum() > 0 and (q.inside <= q.total + 1e-6).all()
        rgb, alpha = noisy_eval.gt_objects[q.object]
        assert alpha.max() > 0.5 and rgb.shape == alpha.shape + (3,)


def test_rendering_a_selection_alone_equals_projecting_it_alone(noisy_eval):
    keep = noisy_eval.gt.gaussians.object == noisy_eval.queries[0].object
    rgb, alpha = noisy_eval.render_alone(keep)
    sub = noisy_eval.gaussians.subset(torch.from_numpy(keep))
    for k, v in enumerate(noisy_eval.test):
        out = render(project(sub, noisy_eval.dataset.cameras[v]), noisy_eval.colors[keep])
        assert np.allclose(out.alpha.numpy(), alpha[k], atol=1e-5)
        assert np.allclose(out.features.numpy(), rgb[k], atol=1e-5)
    assert alpha.max() > 0.5


def test_oracle_scores_above_naive_lifting(noisy_eval):
    inp = MethodInput(noisy_eval.dataset, noisy_eval.train)
    best = noisy_eval.score(oracle(inp)).metrics
    naive = noisy_eval.score(naive_lifting(inp)).metrics
    assert best["assoc_miou"] == best["assoc_p"] == best["assoc_r"] == 1.0  # GT maps are the training maps
    assert best["pan_miou"] > 0.8 and best["nv_miou"] > 0.7
    for key in ("nv_miou", "pan_miou", "pan_p", "pan_r", "assoc_miou", "assoc_p", "assoc_r"):
        assert best[key] > naive[key], key
    assert 0 < naive["ext_miou"] < 1 and best["ext_psnr"] > 20
    assert best["queries"] == len(noisy_eval.queries)


def test_a_method_that_labels_everything_alike(noisy_eval):
    n = len(noisy_eval.gaussians)
    m = noisy_eval.score(MethodResult(np.zeros(n, np.int64))).metrics
    assert m["pan_p"] <= 1.0 and m["pan_r"] <= 1 / len(np.unique(noisy_eval.gt_test[noisy_eval.gt_test >= 0]))
    nothing = noisy_eval.score(MethodResult(np.full(n, -1))).metrics
    assert nothing["pan_miou"] == 0 and nothing["ext_miou"] == 0 and nothing["nv_miou"] == 0
    with pytest.raises(ValueError, match="labels"):
        noisy_eval.score(MethodResult(np.zeros(n - 1, np.int64)))


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
    written = json.loads((tmp_path / "data" / "tabletop2_n1_jitter" / "gt" / "scene.json").read_text())
    assert written["noise"] == MaskNoise.level(1.0).only("jitter").to_json()
    with pytest.raises(ValueError, match="unknown mask-noise knob"):
        BenchConfig(noise_only=["blur"])


def test_hard_cases_write_their_world_and_their_mask_failures(tmp_path):
    config = BenchConfig(methods=["oracle"], scenes=["tabletop:2"], noise=[1.0], size="tiny", hard_cases=True)
    results = run_bench(config, tmp_path)
    written = json.loads((tmp_path / "data" / "tabletop2_hard_n1" / "gt" / "scene.json").read_text())
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
    for tag in ("tabletop4_n0", "tabletop4_n1", "room1_n0", "room1_n1"):
        assert (out / f"{tag}.png").stat().st_size > 0
        assert (out / "data" / tag / "scene.ply").is_file()
    printed = capsys.readouterr().out
    assert "segmentation benchmark" in printed and "naive" in printed

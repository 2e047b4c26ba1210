"""``gs-core demo``: the README's main job on the built-in sample, through the pipeline's typed jobs."""

import re
import time

import numpy as np
import pytest

import gs_core.pipeline.segment
import gs_core.synth
from gs_core.cli import main
from gs_core.scene import GaussianScene


@pytest.mark.slow
def test_demo_tiny_runs_the_pipeline_and_writes_a_report(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--size", "tiny", "--seed", "1"]) == 0
    printed = capsys.readouterr().out
    # the summary table: one row of scores per method, and where the report is
    for method in ("trace3d", "naive", "oracle"):
        row = re.search(rf"{method}\s*│\s*([\d.]+)\s*│\s*([\d.]+)\s*│\s*([\d.]+)\s*│\s*([\d.]+)", printed)
        assert row is not None, f"no score row for {method} in:\n{printed}"
        assert all(0 <= float(x) <= 100 for x in row.groups())
    assert "NV mIoU" in printed and "clicked" in printed
    report = out / "report" / "report.html"
    assert f"report: {report}" in printed

    # report.html: self-contained, every picture a PNG beside it
    page = report.read_text()
    links = re.findall(r'src="([^"]+)"', page)
    assert len(links) >= 8
    for link in links:
        assert "/" not in link and link.endswith(".png")
        assert (report.parent / link).stat().st_size > 0
    for heading in ("Input", "Consistent instance maps", "Contrastive features", "Click query and extraction",
                    "Scores against the ground truth", "Time"):
        assert f"<h2>{heading}</h2>" in page
    assert "trace3d" in page and "oracle" in page and "consistency" in page  # scores, prepare's stage times

    # the pipeline's outputs: work folder, labels, selection, object PLY + rest PLY
    scene = GaussianScene.load(out / "work" / "scene.ply")
    rest_path = next(out.glob("scene_without_*.ply"))
    part = GaussianScene.load(out / (rest_path.name.removeprefix("scene_without_")))
    rest = GaussianScene.load(rest_path)
    assert 0 < len(part) < len(scene) and len(part) + len(rest) == len(scene)
    selection = np.load(out / "selection.npy")
    assert selection.dtype == bool and selection.sum() == len(part)
    np.testing.assert_array_equal(part.means, scene.means[selection])  # rows of the scene, bit for bit
    assert np.load(out / "labels.npy").shape == (len(scene),)


def test_demo_ctrl_c_is_clean(tmp_path, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(gs_core.synth, "render_views", interrupted)
    assert main(["demo", "--out", str(tmp_path / "d"), "--size", "tiny"]) == 130
    printed = capsys.readouterr().out
    assert "demo cancelled" in printed and "'render'" in printed


def test_demo_ctrl_c_inside_a_pipeline_job(tmp_path, monkeypatch, capsys):
    """Ctrl-C inside one of the pipeline's typed jobs stops the demo with exit status 130 and says where."""
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(gs_core.pipeline.segment, "segment", interrupted)
    assert main(["demo", "--out", str(tmp_path / "d"), "--size", "tiny"]) == 130
    printed = capsys.readouterr().out
    assert "demo cancelled" in printed and "'segment'" in printed
    assert not (tmp_path / "d" / "report").exists()


@pytest.mark.slow
def test_demo_default_finishes_in_under_two_minutes(tmp_path):
    t0 = time.perf_counter()
    assert main(["demo", "--out", str(tmp_path / "demo")]) == 0
    assert time.perf_counter() - t0 < 120
    assert (tmp_path / "demo" / "report" / "report.html").is_file()


def test_the_demos_click_is_scored_against_the_pixels_a_selection_can_show(tmp_path):
    """The demo's IoU reference is the one of ``bench clicks`` (:func:`gs_core.eval.truth_mask`): on a world
    without training artefacts, an object's own Gaussians selected score 100%, also for an object whose
    ground-truth map holds pixels where it has the most weight but less than half (the map's mask, the
    reference before, scored such an exact selection below 100%)."""
    from gs_core.dataset import Dataset
    from gs_core.demo.click import Click
    from gs_core.demo.job import _check_selection
    from gs_core.eval import Evaluation, truth_mask
    from gs_core.synth import ArtefactConfig, GroundTruth, MaskNoise, SynthConfig, build_dataset

    config = SynthConfig.sized("tiny", layout="tabletop", seed=0, artefacts=ArtefactConfig(0, 0, 0))
    build_dataset(tmp_path / "ds", config, MaskNoise.level(0.0))
    ds, gt = Dataset.load(tmp_path / "ds"), GroundTruth.load(tmp_path / "ds")
    ev = Evaluation.prepare(ds, gt)
    assert gt.gaussians.clean.all()
    objects = gt.gaussians.object

    def differ(o: int) -> int:  # map pixels of o where it holds no majority of the blend
        return sum(int(((ev.gt_test[k] == o) & ~truth_mask(p, gt.gaussians.clean, objects, o)).sum())
                   for k, p in enumerate(ev.test_proj))

    o = max(gt.hierarchy.things, key=differ)
    assert differ(o) > 0 and (ev.gt_test == o).any()
    click = Click(o, gt.hierarchy.objects[o].name, ev.train[0], (0, 0))
    picked = _check_selection(ev, ev.gaussians, ev.colors, objects == o, click, ev.test_proj[0], "auto")
    assert picked.iou == 1.0
    assert picked.n_object == int((objects == o).sum())

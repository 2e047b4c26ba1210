"""``gs-core refine WORK`` end to end on a tiny synthetic dataset: the work folder's scene is refined
in place (same rows), the dataset is untouched, a second identical run is a no-op, mistakes are one
line. The work folder is made by hand (prepare's own tests cover prepare)."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from gs_core.cli import main
from gs_core.dataset import Dataset
from gs_core.pipeline.workdir import WorkDir
from gs_core.scene import GaussianScene
from gs_core.synth import MaskNoise, SynthConfig, build_dataset


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("refine") / "dataset"
    build_dataset(root, SynthConfig.sized("tiny"), MaskNoise.level(0.0))
    return root


def _work(dataset: Path, out: Path) -> WorkDir:
    """A work folder as prepare leaves it, with the dataset's scene made blurrier (scales x1.35)."""
    ds = Dataset.load(dataset)
    work = WorkDir(out)
    out.mkdir(parents=True)
    scene = ds.load_scene()
    replace(scene, log_scales=scene.log_scales + 0.3).save(work.scene_path)
    work.save_cameras(ds.cameras[:4])
    work.write_manifest({"status": "complete", "dataset": str(dataset), "views": ds.names[:4]})
    return work


def _snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


def test_refine_work_folder(dataset, tmp_path, capsys):
    work = _work(dataset, tmp_path / "work")
    before = GaussianScene.load(work.scene_path)
    untouched = _snapshot(dataset)
    assert main(["refine", str(work.root), "--steps", "12", "--crop", "48", "--backend", "cpu"]) == 0
    err = capsys.readouterr().err
    after = GaussianScene.load(work.scene_path)
    assert len(after) == len(before) and after.column_order == before.column_order
    assert not np.array_equal(after.log_scales, before.log_scales)
    record = work.manifest()["refine"]
    assert record["steps"] == 12 and record["psnr_after"] > record["psnr_before"], record
    assert "PSNR" in err
    assert not (work.root / "cache" / "refine" / "checkpoint.pt").exists()
    assert _snapshot(dataset) == untouched
    stamp = work.scene_path.stat().st_mtime_ns
    assert main(["refine", str(work.root), "--steps", "12", "--crop", "48", "--backend", "cpu"]) == 0
    assert "already" in capsys.readouterr().err
    assert work.scene_path.stat().st_mtime_ns == stamp


def test_refine_errors_are_one_line(dataset, tmp_path, capsys):
    capsys.readouterr()
    assert main(["refine", str(tmp_path / "nowhere")]) == 2
    assert "work folder does not exist" in capsys.readouterr().err
    work = _work(dataset, tmp_path / "work")
    assert main(["refine", str(work.root), "--ssim-weight", "2"]) == 2
    assert "--ssim-weight" in capsys.readouterr().err
    work.write_manifest({"status": "complete", "dataset": str(tmp_path / "gone"), "views": []})
    assert main(["refine", str(work.root)]) == 2
    err = capsys.readouterr().err
    assert "gone" in err and len(err.strip().splitlines()) == 1

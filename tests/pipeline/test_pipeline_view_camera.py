"""A click in any posed image: ``--view`` finds every image of the dataset with a camera (held-out test
views too, also in work folders prepared before ``views.json``), and ``--camera`` takes intrinsics and
pose as the add-on sends them; both give the selection a click in that camera gives."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import gs_core.query as query
from gs_core.camera import Camera
from gs_core.cli import main
from gs_core.dataset import Dataset
from gs_core.engine import project
from gs_core.pipeline.workdir import WorkDir
from gs_core.scene import GaussianScene
from gs_core.synth import MaskNoise, SynthConfig, build_dataset

slow = pytest.mark.slow


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("views")
    build_dataset(root / "dataset", SynthConfig.sized("tiny"), MaskNoise.level(0.5))
    assert main(["prepare", str(root / "dataset"), "--out", str(root / "work")]) == 0
    return root / "work", root / "dataset"


def _held_out_click(work: Path, dataset: Path):
    """A held-out view (not a training camera), a pixel on a labelled instance there, the expected selection."""
    trained = {c.name for c in WorkDir(work).cameras()}
    held = [c for c in Dataset.load(dataset).cameras if c.name not in trained]
    assert held, "the synthetic dataset has test views without masks"
    labels = np.load(work / "labels.npy").astype(np.int64)
    gaussians = GaussianScene.load(work / "scene.ply").to_gaussians()
    for cam in held:
        proj = project(gaussians, cam)
        for y in range(cam.height // 2, cam.height):
            xy = np.array([[cam.width // 2, y]])
            if query.pixel_labels(proj, labels, xy)[0] >= 0:
                return cam, xy[0], query.from_clicks(proj, labels, xy).selected
    raise AssertionError("no labelled pixel in the held-out views")


@slow
def test_click_in_a_held_out_view(work, tmp_path):
    work, dataset = work
    cam, (x, y), expected = _held_out_click(work, dataset)
    assert expected.any()
    assert cam.name not in {c.name for c in WorkDir(work).cameras()}  # not a training view
    for view in (cam.name, Path(cam.name).stem):
        out = tmp_path / "sel.npy"
        assert main(["query", str(work), "--view", view, "--pixel", str(x), str(y), "--out", str(out)]) == 0
        np.testing.assert_array_equal(np.load(out), expected)


@slow
def test_click_from_intrinsics_and_pose(work, tmp_path):
    """The same ray through ``--camera`` (a file, and the JSON text) selects the same instances."""
    work, dataset = work
    cam, (x, y), expected = _held_out_click(work, dataset)
    path = tmp_path / "cam.json"
    data = {k: v for k, v in cam.to_dict().items() if k != "name"}
    path.write_text(json.dumps(data))
    for given in (str(path), json.dumps(data)):
        out = tmp_path / "sel.npy"
        assert main(["query", str(work), "--camera", given, "--pixel", str(x), str(y), "--out", str(out)]) == 0
        np.testing.assert_array_equal(np.load(out), expected)
    # a camera that is no image of the dataset: the click's ray from a moved camera still selects
    moved = Camera.look_at(cam.position * 1.2, np.zeros(3), up=(0, 0, 1), width=cam.width, height=cam.height)
    gaussians = GaussianScene.load(work / "scene.ply").to_gaussians()
    labels = np.load(work / "labels.npy").astype(np.int64)
    proj = project(gaussians, moved)
    hit = next(np.array([[cx, cy]]) for cy in range(moved.height) for cx in range(moved.width)
               if query.pixel_labels(proj, labels, np.array([[cx, cy]]))[0] >= 0)
    path.write_text(json.dumps(moved.to_dict()))
    out = tmp_path / "moved.npy"
    assert main(["query", str(work), "--camera", str(path), "--pixel", *map(str, hit[0]), "--out", str(out)]) == 0
    np.testing.assert_array_equal(np.load(out), query.from_clicks(proj, labels, hit).selected)
    # render takes the same cameras
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    path.write_text(json.dumps(data))
    assert main(["render", str(work), "--view", cam.name, "--out", str(a)]) == 0
    assert main(["render", str(work), "--camera", str(path), "--out", str(b)]) == 0
    np.testing.assert_array_equal(np.asarray(Image.open(a)), np.asarray(Image.open(b)))


@slow
def test_work_folder_from_before_views_json(work, tmp_path):
    """Without ``views.json`` the dataset named in the manifest supplies the other cameras."""
    work, dataset = work
    old = tmp_path / "old_work"
    shutil.copytree(work, old)
    (old / "views.json").unlink()
    cam, (x, y), expected = _held_out_click(work, dataset)
    out = tmp_path / "sel.npy"
    assert main(["query", str(old), "--view", cam.name, "--pixel", str(x), str(y), "--out", str(out)]) == 0
    np.testing.assert_array_equal(np.load(out), expected)


def _fails(capsys, argv, *needles):
    capsys.readouterr()
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert "Traceback" not in err and len(lines) == 1 and lines[0].startswith("gs-core: "), err
    for n in needles:
        assert str(n) in lines[0], (n, lines[0])


@slow
def test_camera_errors(work, tmp_path, capsys):
    work, _ = work
    out = tmp_path / "s.npy"
    good = Camera.look_at((3, 0, 1), (0, 0, 0), width=64, height=48).to_dict()
    _fails(capsys, ["query", work, "--camera", tmp_path / "none.json", "--pixel", 1, 1, "--out", out],
           "--camera", "none.json", "cannot read")
    (tmp_path / "bad.json").write_text("{fx: 1")
    _fails(capsys, ["query", work, "--camera", tmp_path / "bad.json", "--pixel", 1, 1, "--out", out],
           "bad.json", "not JSON")
    (tmp_path / "short.json").write_text(json.dumps({k: v for k, v in good.items() if k != "world_to_camera"}))
    _fails(capsys, ["query", work, "--camera", tmp_path / "short.json", "--pixel", 1, 1, "--out", out],
           "short.json", "missing world_to_camera")
    _fails(capsys, ["query", work, "--camera", json.dumps({**good, "fx": -1}), "--pixel", 1, 1, "--out", out],
           "--camera", "focal lengths")
    _fails(capsys, ["query", work, "--camera", json.dumps(good), "--view", "train_000", "--pixel", 1, 1,
                    "--out", out], "--view", "--camera")
    _fails(capsys, ["query", work, "--camera", json.dumps(good), "--pixel", 64, 5, "--out", out],
           "--camera", "(64, 5)", "64x48")
    _fails(capsys, ["render", work, "--out", tmp_path / "r.png"], "--view", "--camera")
    assert not out.exists()


@slow
def test_shell_click_runs_without_torch(work, tmp_path):
    """A click on a 3DGS work folder from the shell never imports torch (gs_core.click_rays) and selects
    what the engine's path selects."""
    import os
    import subprocess
    import sys

    work, dataset = work
    cam, (x, y), expected = _held_out_click(work, dataset)
    out = tmp_path / "sel.npy"
    script = f"""
import sys
sys.modules["torch"] = None  # any import of torch fails
from gs_core.cli import main
assert main(["query", {str(work)!r}, "--view", {cam.name!r}, "--pixel", "{x}", "{y}", "--out", {str(out)!r}]) == 0
"""
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    np.testing.assert_array_equal(np.load(out), expected)

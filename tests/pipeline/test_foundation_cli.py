"""prepare with SAM masks made from a checkpoint and CLIP features, on a tiny dataset without masks
(tiny random SAM and CLIP of the real architectures), and the one-line errors of their options."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from gs_core.cli import main
from gs_core.synth import MaskNoise, SynthConfig, build_dataset


def _snapshot(root):
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


@pytest.fixture(scope="module")
def bare(tmp_path_factory):
    """A tiny dataset with no masks."""
    root = tmp_path_factory.mktemp("fmcli") / "bare"
    build_dataset(root, SynthConfig.sized("tiny", layout="tabletop"), MaskNoise.level(0.0))
    shutil.rmtree(root / "masks")
    return root


def _fails(capsys, argv, *needles):
    capsys.readouterr()
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gs-core: ") and "Traceback" not in err, err
    for n in needles:
        assert str(n) in lines[0], (n, lines[0])


def test_option_errors(bare, tmp_path, capsys):
    _fails(capsys, ["prepare", bare, "--out", tmp_path / "w"], "no masks for any view", "--sam-checkpoint")
    _fails(capsys, ["prepare", bare, "--out", tmp_path / "w", "--sam-checkpoint", tmp_path / "sam.pth"],
           tmp_path / "sam.pth", "no such file", "github.com/facebookresearch/segment-anything")
    _fails(capsys, ["prepare", bare, "--out", tmp_path / "w", "--clip-checkpoint", tmp_path / "c.pt"],
           "--clip-checkpoint needs --clip-model")
    _fails(capsys, ["prepare", bare, "--out", tmp_path / "w", "--sam-checkpoint", tmp_path / "sam.pth",
                    "--mask-budget", "0"], "--mask-budget 0")
    assert not (tmp_path / "w" / "masks").exists()


@pytest.fixture(scope="module")
def plain_work(bare, tmp_path_factory):
    """A work folder prepared from simulated masks (no CLIP features)."""
    root = tmp_path_factory.mktemp("plain")
    ds = root / "ds"
    shutil.copytree(bare, ds)
    build_dataset(root / "noisy", SynthConfig.sized("tiny", layout="tabletop"), MaskNoise.level(0.0))
    shutil.copytree(root / "noisy" / "masks", ds / "masks")
    assert main(["prepare", str(ds), "--out", str(root / "work"), "--method", "git-consistent"]) == 0
    return root / "work"


def test_query_option_errors(plain_work, tmp_path, capsys):
    out = tmp_path / "sel.npy"
    _fails(capsys, ["query", plain_work, "--text", "chair", "--out", out], "no CLIP features", "--clip-model")
    _fails(capsys, ["query", plain_work, "--text", " ", "--out", out], "empty query")
    _fails(capsys, ["query", plain_work, "--text", "chair", "--view", "train_000", "--out", out], "--text takes no")
    _fails(capsys, ["query", plain_work, "--text", "chair", "--threshold", "2", "--out", out], "--threshold 2")
    _fails(capsys, ["query", plain_work, "--view", "train_000", "--online", "--out", out], "--online needs --view")
    _fails(capsys, ["query", plain_work, "--view", "train_000", "--pixel", "3", "4", "--online", "--out", out],
           "--online needs --sam-checkpoint")
    _fails(capsys, ["query", plain_work, "--view", "train_000", "--pixel", "300", "4", "--online", "--sam-checkpoint",
                    tmp_path / "x.pth", "--out", out], "pixel (300, 4) is outside the 64x48 view")
    _fails(capsys, ["query", plain_work, "--view", "train_000", "--pixel", "3", "4", "--online", "--sam-checkpoint",
                    tmp_path / "x.pth", "--out", out], "x.pth", "no such file")
    assert not out.exists()


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    pytest.importorskip("torchvision")
    pytest.importorskip("segment_anything")
    pytest.importorskip("open_clip")
    from tiny_models import make_tiny_clip, make_tiny_sam

    folder = tmp_path_factory.mktemp("models")
    return make_tiny_sam(folder / "sam.pth"), *make_tiny_clip(folder)


def test_prepare_with_sam_and_clip(bare, models, tmp_path):
    from gs_core.language import text_query
    from gs_core.models.clip import ClipOptions
    from gs_core.models.sam import SamMaskConfig
    from gs_core.pipeline.prepare import PrepareOptions, prepare
    from gs_core.pipeline.sam_masks import SamOptions
    from gs_core.scene import GaussianScene

    sam_ckpt, clip_config, clip_weights = models
    before = _snapshot(bare)
    # a random SAM's quality scores mean nothing: its filters are opened so masks reach the pipeline
    loose = SamMaskConfig(points_per_side=4, pred_iou_thresh=-1e9, stability_score_thresh=-1e9, min_area=4)
    options = PrepareOptions(bare, tmp_path / "work", method="git-consistent",
                             sam=SamOptions(sam_ckpt, mask_views=3, mask_config=loose),
                             clip=ClipOptions(str(clip_config), None, clip_weights))
    said = []
    manifest = prepare(options, log=said.append)
    masks = sorted(p.name for p in (tmp_path / "work" / "masks").glob("*.npz"))
    assert len(masks) == 3 and sorted(manifest["views"]) == [m.replace(".npz", ".png") for m in masks]
    assert any("s per view" in s and "3 of 8 views" in s for s in said), said  # the CPU estimate, before work
    n = len(GaussianScene.load(tmp_path / "work" / "scene.ply"))
    feats = np.load(tmp_path / "work" / "clip_features.npy")
    assert feats.shape == (n, 33) and manifest["clip"]["dim"] == 32
    q = text_query(tmp_path / "work", "chair")  # the text tower named in clip.json, loaded from its files
    assert q.score.shape == (n,) and q.selected.dtype == bool
    # one embedding per consistent instance beside the lifted features; the default query scores instances
    labels = np.load(tmp_path / "work" / "labels.npy")
    inst = np.load(tmp_path / "work" / "clip_instances.npy")
    assert inst.shape == (manifest["clip"]["instances"], 33) and labels.max() < len(inst)
    assert all(len(np.unique(q.selected[labels == i])) == 1 for i in np.unique(labels[labels >= 0]))
    q_pixels = text_query(tmp_path / "work", "chair", mode="gaussians")
    assert _snapshot(bare) == before  # nothing written into the dataset

    # the command line on that work folder: a text query, and self-prompting with the SAM checkpoint
    work = tmp_path / "work"
    assert main(["query", str(work), "--text", "chair", "--out", str(tmp_path / "t.npy"),
                 "--scores", str(tmp_path / "s.npy")]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "t.npy"), q.selected)
    np.testing.assert_allclose(np.load(tmp_path / "s.npy"), q.score)
    assert main(["query", str(work), "--text", "chair", "--threshold", "0", "--out", str(tmp_path / "t0.npy")]) == 0
    assert np.load(tmp_path / "t0.npy").sum() > q.selected.sum()
    assert main(["query", str(work), "--text", "chair", "--text-on", "gaussians",
                 "--out", str(tmp_path / "tg.npy")]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "tg.npy"), q_pixels.selected)
    view = manifest["views"][0]
    assert main(["query", str(work), "--view", view, "--pixel", "30", "20", "--online", "--sam-checkpoint",
                 str(sam_ckpt), "--out", str(tmp_path / "o.npy")]) == 0
    assert np.load(tmp_path / "o.npy").shape == (n,)

    # resumable: a view's stack lost (a crash) is made again, the others are kept as they are
    work_masks = tmp_path / "work" / "masks"
    kept = {p.name: p.stat().st_mtime_ns for p in work_masks.glob("*.npz")}
    (work_masks / masks[0]).unlink()
    del kept[masks[0]]
    prepare(PrepareOptions(**{**options.__dict__, "force": True}), log=said.append)
    assert (work_masks / masks[0]).is_file()
    assert {p.name: p.stat().st_mtime_ns for p in work_masks.glob("*.npz") if p.name in kept} == kept


@pytest.mark.slow  # 8 views at 1024 px through Hiera-T: a minute or more on 2 busy cores
def test_sam2_masks_for_prepare(bare, tmp_path):
    """A SAM 2.1 checkpoint (read as such from its keys) makes the masks the same way; with no FLOP
    count for Hiera, the first view's time is the estimate."""
    pytest.importorskip("torchvision")
    pytest.importorskip("sam2")
    import torch
    from sam2.build_sam import build_sam2

    from gs_core.dataset import Dataset
    from gs_core.models.sam import SamMaskConfig
    from gs_core.pipeline.sam_masks import SamOptions, masks_for_prepare

    torch.manual_seed(0)
    ckpt = tmp_path / "sam2.1_hiera_tiny.pt"
    torch.save({"model": build_sam2("configs/sam2.1/sam2.1_hiera_t.yaml", None, device="cpu").state_dict()}, ckpt)
    loose = SamMaskConfig(points_per_side=2, pred_iou_thresh=-1e9, stability_score_thresh=-1e9, min_area=4)
    said = []
    ds, views, _ = masks_for_prepare(Dataset.load(bare), tmp_path / "work", SamOptions(ckpt, mask_config=loose,
                                     budget_minutes=1e-9), say=said.append)
    assert len(views) == 8  # the budget affords none: its floor of 8 views (all there are)
    assert any("sam2.1_hiera_tiny on the CPU" in s for s in said), said
    assert all(ds.masks(v) is not None for v in views)


def test_no_photos_errors(bare, tmp_path, capsys):
    _fails(capsys, ["prepare", "--out", tmp_path / "w"], "give a DATASET folder, or --scene PLY with --sam-checkpoint")
    _fails(capsys, ["prepare", "--scene", bare / "scene.ply", "--out", tmp_path / "w"], "--sam-checkpoint")
    _fails(capsys, ["prepare", "--scene", tmp_path / "none.ply", "--out", tmp_path / "w", "--sam-checkpoint",
                    tmp_path / "s.pth"], "--scene", "none.ply", "no such file")


@pytest.mark.slow  # virtual views placed and rendered at 640x480, SAM on each, then Trace3D
def test_prepare_a_splat_file_without_photos(bare, models, tmp_path):
    """``prepare --scene PLY --sam-checkpoint`` with no dataset: virtual views -> SAM -> the pipeline."""
    from gs_core.models.sam import SamMaskConfig
    from gs_core.pipeline.prepare import PrepareOptions, prepare
    from gs_core.pipeline.sam_masks import SamOptions

    loose = SamMaskConfig(points_per_side=3, pred_iou_thresh=-1e9, stability_score_thresh=-1e9, min_area=50)
    said = []
    manifest = prepare(PrepareOptions(None, tmp_path / "w", scene=bare / "scene.ply", method="git-consistent",
                                      sam=SamOptions(models[0], mask_views=4, mask_config=loose)), log=said.append)
    assert any("virtual views" in s for s in said), said
    assert manifest["status"] == "complete" and len(manifest["views"]) == 4
    assert all(v.startswith("virtual_") for v in manifest["views"])
    assert (tmp_path / "w" / "virtual" / "images").is_dir() and (tmp_path / "w" / "labels.npy").is_file()
    again = prepare(PrepareOptions(None, tmp_path / "w", scene=bare / "scene.ply", method="git-consistent",
                                   sam=SamOptions(models[0], mask_views=4, mask_config=loose)), log=said.append)
    assert again.get("up_to_date")  # the virtual views and masks are reused, the work is up to date

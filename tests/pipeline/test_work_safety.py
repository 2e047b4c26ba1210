"""Issue 23, items 2, 3 and 5 on the command line: files from a work folder, a dataset or a user path
are data, never code (a planted pickle is refused with one line, and its canary file is never made);
nothing of the user's is overwritten or deleted (canary files survive); damage is repaired, not
repeated (a torn cache entry is traced again, a missing or damaged output makes prepare rebuild it)."""

from __future__ import annotations

import builtins
import json
import shutil

import numpy as np
import pytest
import torch

from gs_core.cli import main
from gs_core.pipeline.workdir import WorkDir


class Evil:
    """Unpickling this runs ``open(canary, "w")``: the canary file exists iff a pickle was loaded."""

    def __init__(self, canary):
        self.canary = str(canary)

    def __reduce__(self):
        return builtins.open, (self.canary, "w")


def evil_array(canary) -> np.ndarray:
    a = np.empty(1, dtype=object)
    a[0] = Evil(canary)
    return a


def fails(capsys, argv, *needles, after_progress=False) -> str:
    """The command exits 2 with one line naming the problem (``after_progress``: below a progress bar
    that had started)."""
    capsys.readouterr()
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()[-1:] if after_progress else err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gs-core") and "Traceback" not in err, err
    for n in needles:
        assert str(n) in lines[0], (n, lines[0])
    return lines[0]


@pytest.fixture
def work(tiny_work, tmp_path):
    """A copy of the tiny prepared work folder (times kept, so it is up to date with its dataset)."""
    dataset, original = tiny_work
    copy = tmp_path / "work"
    shutil.copytree(original, copy)
    return dataset, copy


def prepare_argv(dataset, out, *more) -> list[str]:
    return [str(a) for a in ["prepare", dataset, "--out", out, "--method", "git-consistent", *more]]


# ---- item 2: work folders are data, never code ------------------------------------------------------

def test_planted_refine_checkpoint_is_refused(work, tmp_path, capsys):
    """Issue 23: refine loaded WORK/cache/refine/checkpoint.pt with weights_only=False, so a planted
    pickle ran. Now it is read as tensors only and refused, naming the file."""
    _, root = work
    canary = tmp_path / "canary"
    ckpt = root / "cache" / "refine" / "checkpoint.pt"
    ckpt.parent.mkdir(parents=True)
    torch.save({"key": "anything", "step": 1, "payload": Evil(canary)}, ckpt)
    fails(capsys, ["refine", root, "--steps", "2"], ckpt, "could run code", "refused", after_progress=True)
    assert not canary.exists()


@pytest.mark.parametrize("name, argv_tail", [
    ("levels.npz", ["segment", "{work}", "--out", "{tmp}/l.npy"]),
    ("labels.npy", None),
    ("clip_features.npy", ["query", "{work}", "--text", "chair", "--out", "{tmp}/t.npy"]),
])
def test_planted_pickles_in_the_work_folder_are_refused(work, tmp_path, capsys, name, argv_tail):
    _, root = work
    canary = tmp_path / "canary"
    path = root / name
    if name.endswith(".npz"):
        np.savez(path, levels=np.array([0.5]), labels=evil_array(canary))
    else:
        np.save(path, evil_array(canary), allow_pickle=True)
        (root / "clip.json").write_text("{}")
    if argv_tail is None:  # labels.npy: read by the library (what the add-on's previews use)
        from gs_core.errors import UserError

        with pytest.raises(UserError, match="holds pickled Python objects, which could run code"):
            WorkDir(root, must_exist=True).load(name)
    else:
        fails(capsys, [a.format(work=root, tmp=tmp_path) for a in argv_tail], path, "could run code when loaded; refused")
    assert not canary.exists()


def test_planted_pickles_in_user_files_are_refused(work, tmp_path, capsys):
    dataset, root = work
    canary = tmp_path / "canary"
    evil = tmp_path / "evil.npy"
    np.save(evil, evil_array(canary), allow_pickle=True)
    fails(capsys, ["query", root, "--gaussians", evil, "--out", tmp_path / "s.npy"], "--gaussians", evil, "refused")
    fails(capsys, ["extract", root, "--selection", evil, "--out", tmp_path / "o.ply"], "--selection", evil, "refused")
    fails(capsys, ["render", root, "--view", "train_000", "--selection", evil, "--out", tmp_path / "m.png"],
          "--selection", evil)
    # a dataset's mask stack
    ds = tmp_path / "ds"
    shutil.copytree(dataset, ds)
    stack = sorted((ds / "masks").glob("*.npz"))[0]
    np.savez(stack, masks=evil_array(canary))
    fails(capsys, prepare_argv(ds, tmp_path / "w2"), stack)
    # a SAM checkpoint
    ckpt = tmp_path / "sam.pth"
    torch.save({"model": Evil(canary)}, ckpt)
    shutil.rmtree(ds / "masks")
    fails(capsys, prepare_argv(ds, tmp_path / "w3", "--sam-checkpoint", ckpt), ckpt)
    assert not canary.exists()


def test_planted_pickle_in_the_view_cache_is_refused(work, tmp_path):
    from gs_core.errors import UserError
    from gs_core.pipeline.prepare import DiskViewCache
    from gs_core.scene import GaussianScene

    _, root = work
    canary = tmp_path / "canary"
    scene = GaussianScene.load(root / "scene.ply")
    cache = DiskViewCache(WorkDir(root), "k")
    path = cache._path(scene, 0)
    path.parent.mkdir(parents=True)
    np.savez(path, gaussians=evil_array(canary), patches=np.zeros(1), weights=np.zeros(1), seen=np.zeros(1),
             total=np.zeros(1), num_patches=np.array(1))
    with pytest.raises(UserError, match="could run code when loaded; refused"):
        cache.get(scene, 0)
    assert not canary.exists()


# ---- item 3: nothing of the user's is overwritten or deleted ----------------------------------------

def test_prepare_never_writes_over_its_input_scene_or_into_a_users_folder(work, tmp_path, capsys):
    """Issue 23: ``prepare ds --scene user/scene.ply --out user`` replaced the user's splats with the
    density-controlled ones, smaller at each run."""
    dataset, _ = work
    user = tmp_path / "user"
    user.mkdir()
    shutil.copy(dataset / "scene.ply", user / "scene.ply")
    before = (user / "scene.ply").read_bytes()
    fails(capsys, ["prepare", dataset, "--scene", user / "scene.ply", "--out", user], "--scene", "overwrite its own input")
    (user / "notes.txt").write_text("mine")
    fails(capsys, ["prepare", dataset, "--scene", user / "scene.ply", "--out", user], "--out", "notes.txt",
          "not a gs_core work folder")
    other = tmp_path / "other"
    other.mkdir()
    (other / "labels.npy").write_text("the user's")
    (other / "photo.jpg").write_text("the user's")
    fails(capsys, prepare_argv(dataset, other), "--out", "photo.jpg")
    assert (user / "scene.ply").read_bytes() == before and (other / "labels.npy").read_text() == "the user's"


def test_prepare_deletes_only_its_own_cache_files(work, tmp_path, capsys):
    """Issue 23: prepare removed WORK/cache whole (shutil.rmtree), the user's files in it too."""
    dataset, root = work
    (root / "cache" / "git" / "k" / "s").mkdir(parents=True)
    (root / "cache" / "mine.txt").write_text("mine")
    (root / "cache" / "git" / "k" / "s" / "00000.npz").write_text("no marker: not provably prepare's")
    assert main(prepare_argv(dataset, root, "--force")) == 0
    assert (root / "cache" / "mine.txt").read_text() == "mine"
    assert (root / "cache" / "git" / "k" / "s" / "00000.npz").exists()
    assert not list((root / "cache" / "git").glob("*/*/.gs_core_cache"))  # its own cache is gone


@pytest.mark.parametrize("extra, needles", [
    (["--out", "{work}/scene.ply"], ["--out", "a file of the work folder"]),
    (["--out", "{tmp}/x.ply", "--rest", "{tmp}/x.ply"], ["--rest", "is also --out"]),
    (["--out", "{tmp}/sel.npy.ply", "--rest", "{work}/levels.npz"], ["--rest"]),
])
def test_extract_never_writes_over_inputs(work, tmp_path, capsys, extra, needles):
    _, root = work
    sel = tmp_path / "sel.npy"
    n = WorkDir(root).load("labels.npy").shape[0]
    np.save(sel, np.arange(n) % 2 == 0)
    before = {p.name: p.read_bytes() for p in root.iterdir() if p.is_file()}
    fails(capsys, ["extract", root, "--selection", sel, *[a.format(work=root, tmp=tmp_path) for a in extra]], *needles)
    assert {p.name: p.read_bytes() for p in root.iterdir() if p.is_file()} == before
    assert not (tmp_path / "x.ply").exists()


def test_other_outputs_never_write_over_the_work_folder_or_their_input(work, tmp_path, capsys):
    _, root = work
    ids = tmp_path / "ids.npy"
    np.save(ids, np.array([0, 1]))
    before = {p.name: p.read_bytes() for p in root.iterdir() if p.is_file()}
    fails(capsys, ["segment", root, "--out", root / "labels.npy"], "--out", "a file of the work folder")
    fails(capsys, ["query", root, "--gaussians", ids, "--out", ids], "--out", "is the input --gaussians")
    fails(capsys, ["render", root, "--view", "train_000", "--out", root / "manifest.json"], "a file of the work")
    fails(capsys, ["refine", root, "--out", root / "labels.npy"], "a file of the work folder")
    assert {p.name: p.read_bytes() for p in root.iterdir() if p.is_file()} == before
    assert np.array_equal(np.load(ids), [0, 1])


def test_sam_mask_cache_deletes_only_what_its_record_lists(tmp_path):
    """Issue 23: cached_views deleted every *.npz in WORK/masks when generator.json was missing or
    different. Now only the files the record lists go, and a mask file it does not list is an error
    (prepare would read it as a view's masks)."""
    from gs_core.errors import UserError
    from gs_core.pipeline.sam_masks import cached_views

    masks = tmp_path / "masks"
    masks.mkdir()
    (masks / "a.npz").write_text("made by the old generator")
    (masks / "generator.json").write_text(json.dumps({"key": "old", "files": ["a.npz", "../outside.npz"]}))
    (tmp_path / "outside.npz").write_text("not in masks/: never deleted")
    assert cached_views(masks, "old") == {"a"}
    assert cached_views(masks, "new") == set() and not (masks / "a.npz").exists()
    assert (tmp_path / "outside.npz").exists()
    (masks / "user.npz").write_text("the user's")
    with pytest.raises(UserError, match=r"masks: holds files gs_core did not make \(user\.npz\)"):
        cached_views(masks, "new")
    (masks / "generator.json").unlink()
    with pytest.raises(UserError, match="user.npz"):
        cached_views(masks, "new")
    assert (masks / "user.npz").read_text() == "the user's"


# ---- item 5: damage is repaired, not repeated -------------------------------------------------------

def test_missing_or_damaged_outputs_make_prepare_rebuild(work, tmp_path, capsys):
    """Issue 23: with levels.npz deleted, query said "run prepare again" and prepare said "up to
    date"; a truncated levels.npz or a manifest.json of [] gave tracebacks."""
    dataset, root = work
    good = WorkDir(root).load("levels.npz")
    argv = prepare_argv(dataset, root)
    capsys.readouterr()
    assert main(argv) == 0 and "up to date" in capsys.readouterr().err  # the copy is up to date
    query = ["query", root, "--gaussians", tmp_path / "ids.npy", "--out", tmp_path / "s.npy"]
    np.save(tmp_path / "ids.npy", np.array([0]))
    for damage, needle in [(lambda p: p.unlink(), "missing; run gs-core prepare again"),
                           (lambda p: p.write_bytes(p.read_bytes()[:200]), "damaged or not a numpy file"),
                           (lambda p: np.savez(p, levels=np.array([7.0]), labels=np.zeros((1, 3), np.int32)),
                            "not the label levels")]:
        damage(root / "levels.npz")
        fails(capsys, query, root / "levels.npz", needle)
        capsys.readouterr()
        assert main(argv) == 0 and "up to date" not in capsys.readouterr().err
        rebuilt = WorkDir(root).load("levels.npz")
        assert np.array_equal(rebuilt["labels"], good["labels"]) and np.array_equal(rebuilt["levels"], good["levels"])
    (root / "manifest.json").write_text("[]")
    fails(capsys, query, root / "manifest.json", "holds a JSON list, expected an object")
    assert main(argv) == 0 and main([str(a) for a in query]) == 0


@pytest.mark.slow
def test_a_torn_cache_entry_is_traced_again_and_force_ignores_the_cache(tiny_work, tmp_path, monkeypatch, capsys):
    """Issue 23: a torn WORK/cache/git/.../00000.npz stopped prepare with a BadZipFile traceback,
    also with --force."""
    import gs_core.methods.trace3d.git as trace3d

    dataset, original = tiny_work
    out = tmp_path / "work"
    real, calls = trace3d.trace_view, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(trace3d, "trace_view", interrupted)
    assert main(prepare_argv(dataset, out)) == 130
    cached = sorted((out / "cache").rglob("*.npz"))
    assert [p.name for p in cached] == ["00000.npz", "00001.npz"]
    cached[0].write_bytes(cached[0].read_bytes()[:100])  # torn
    calls.clear()
    monkeypatch.setattr(trace3d, "trace_view", lambda *a, **k: calls.append(1) or real(*a, **k))
    assert main(prepare_argv(dataset, out)) == 0
    assert len(calls) == 6 - 1  # the torn view traced again, the good one read
    assert np.array_equal(np.load(out / "labels.npy"), np.load(original / "labels.npy"))
    # --force: every view traced, whatever the cache holds
    monkeypatch.setattr(trace3d, "trace_view", interrupted)
    calls.clear()
    assert main(prepare_argv(dataset, out, "--force")) == 130
    calls.clear()
    monkeypatch.setattr(trace3d, "trace_view", lambda *a, **k: calls.append(1) or real(*a, **k))
    assert main(prepare_argv(dataset, out, "--force")) == 0 and len(calls) == 6


def test_views_where_sam_found_nothing(work, tmp_path, capsys):
    """Issue 23: a view with an empty mask stack (SAM found nothing: a blank wall) ended prepare in
    an IndexError. Such views are simply unlabelled; if every view is empty, one line says so."""
    from gs_core.io.masks import save_mask_stack

    dataset, _ = work
    ds = tmp_path / "ds"
    shutil.copytree(dataset, ds)
    stacks = sorted((ds / "masks").glob("*.npz"))
    shape = np.load(stacks[0])["masks"].shape[1:]
    for path in stacks[:2]:
        save_mask_stack(path, np.zeros((0, *shape), bool))
    for method in ("trace3d", "proto-saga"):
        assert main(["prepare", str(ds), "--out", str(tmp_path / method), "--method", method]) == 0, method
    for path in stacks:
        save_mask_stack(path, np.zeros((0, *shape), bool))
    fails(capsys, prepare_argv(ds, tmp_path / "w"), ds / "masks", "every view's mask stack is empty")


def test_overflowing_pixel_is_one_line(work, tmp_path, capsys):
    _, root = work
    fails(capsys, ["query", root, "--view", "train_000", "--pixel", "99999999999999999999", "5", "--out",
                   tmp_path / "s.npy"], "--pixel", "outside any image")


def test_planted_pickle_as_clip_weights_is_refused(work, tmp_path, capsys):
    pytest.importorskip("open_clip")
    from tiny_models import make_tiny_clip

    dataset, _ = work
    canary = tmp_path / "canary"
    config, _ = make_tiny_clip(tmp_path)
    evil = tmp_path / "evil-clip.pt"
    torch.save({"state_dict": Evil(canary)}, evil)
    fails(capsys, prepare_argv(dataset, tmp_path / "w", "--clip-model", config, "--clip-checkpoint", evil),
          "--clip-checkpoint", evil, "cannot load the weights (holds pickled Python objects", after_progress=True)
    assert not canary.exists()

"""``gs-core bench clicks`` on a tiny table top prepared by the CLI's prepare: the clicker's counts
replayed through the public query API, the split rule against the earlier one, the command's errors."""

import numpy as np
import pytest

from gs_core.bench.clicks import WHERE, VARIANTS, ObjectClicks, click_objects, summarise, variant_name
from gs_core.cli import main
from gs_core.dataset import Dataset
from gs_core.engine import project
from gs_core.eval import truth_mask
from gs_core.interactive import MAX_CLICKS
from gs_core.metrics import iou
from gs_core.pipeline.prepare import PrepareOptions, prepare
from gs_core.pipeline.segment import load_levels
from gs_core.pipeline.workdir import WorkDir
from gs_core.query import pixel_weights, selection_mask
from gs_core.scene import GaussianScene
from gs_core.synth import GroundTruth, MaskNoise, SynthConfig, build_dataset


@pytest.fixture(scope="module")
def clicked(tmp_path_factory):
    root = tmp_path_factory.mktemp("clicks")
    build_dataset(root / "dataset", SynthConfig.sized("tiny", layout="tabletop", seed=0), MaskNoise.level(0.5))
    prepare(PrepareOptions(root / "dataset", root / "work", method="git-consistent"), log=lambda *_: None)
    return root, click_objects(root / "dataset", root / "work")


def test_counts_replay_through_the_query_api(clicked):
    """Every recorded action replayed: clicks traced, the selection made at the recorded level,
    rendered in the clicked view; its IoU with the object's mask is the recorded one, so NoC is
    the first action at or above the threshold."""
    root, rows = clicked
    ds, gt, work = Dataset.load(root / "dataset"), GroundTruth.load(root / "dataset"), WorkDir(root / "work")
    levels = load_levels(work)
    scene = GaussianScene.load(work.scene_path)
    gaussians = scene.to_gaussians()
    assert rows
    for r in rows:
        proj = project(gaussians, ds.cameras[ds.names.index(r.view)])
        mask = _majority(ds, gt, r.view, r.object)
        assert mask.sum() == r.pixels
        for rule, slider in VARIANTS:
            run = r.runs[variant_name(rule, slider)]
            assert 1 <= len(run["ious"]) <= MAX_CLICKS and len(run["levels"]) == len(run["ious"])
            n_clicks = 0
            for k, action in enumerate(run["actions"]):
                n_clicks += action in "+-"
                clicks = run["clicks"][:n_clicks]
                pos = [pixel_weights(proj, np.array([[x, y]]))[0] for x, y, p in clicks if p]
                neg = [pixel_weights(proj, np.array([[x, y]]))[0] for x, y, p in clicks if not p]
                sel = levels.from_clicks(levels.levels[run["levels"][k]], pos, neg, rule=rule, means=scene.means,
                                         colors=scene.sh_dc)
                assert iou(selection_mask(proj, sel.selected), mask) == pytest.approx(run["ious"][k], abs=1e-12)
            assert n_clicks == len(run["clicks"])
            above = [k for k, v in enumerate(run["ious"]) if v >= 0.9]
            assert run["noc90"] == (above[0] + 1 if above else MAX_CLICKS)
            assert run["reached90"] == bool(above)
            if not slider:
                assert set(run["actions"]) <= {"+", "-"} and len(set(run["levels"])) == 1


def _majority(ds, gt, view: str, o: int) -> np.ndarray:
    """The object's pixels where its clean splats carry at least half the blend, from the clean
    splats projected alone (not by the opacity masking of ``truth_mask``)."""
    clean = gt.gaussians.clean
    proj = project(ds.load_scene().subset(clean).to_gaussians(), ds.cameras[ds.names.index(view)])
    return selection_mask(proj, gt.gaussians.object[clean] == o)


def test_truth_is_the_maps_pixels_where_the_object_holds_a_majority(clicked):
    """The IoU reference of every clicked object lies inside its ground-truth map's pixels, and is
    what its clean splats show by the selection's own rule; some object's map holds pixels where
    it has the most weight but less than half (so the map's mask is no reference for a selection)."""
    root, rows = clicked
    ds, gt = Dataset.load(root / "dataset"), GroundTruth.load(root / "dataset")
    fewer = 0
    for r in rows:
        in_map = gt.instance_map(r.view) == r.object
        clean = gt.gaussians.clean
        proj = project(ds.load_scene().to_gaussians(), ds.cameras[ds.names.index(r.view)])
        truth = truth_mask(proj, clean, gt.gaussians.object, r.object)
        assert truth.sum() == r.pixels and not (truth & ~in_map).any()
        assert np.array_equal(truth, _majority(ds, gt, r.view, r.object))
        fewer += int(in_map.sum()) > r.pixels
    assert fewer > 0
    with pytest.raises(ValueError, match="truth must be one of"):
        click_objects(root / "dataset", root / "work", truth="silhouette")


def test_split_rule_reaches_what_the_remove_rule_cannot(clicked):
    """Measured on this scene (noise 0.5): the box and the book come with their neighbour at level
    0.5; after the negative click the earlier rule empties the selection and never reaches 90% in
    20 clicks, the split rule reaches it in 2. Every object reaches 90% with the split rule."""
    _, rows = clicked
    split = {r.name: r.runs["split"] for r in rows}
    remove = {r.name: r.runs["remove"] for r in rows}
    assert all(run["reached90"] for run in split.values())
    assert all(split[n]["noc90"] <= remove[n]["noc90"] for n in split)
    rescued = [n for n in split if not remove[n]["reached90"]]
    assert rescued and all("-" in split[n]["actions"] for n in rescued)
    s = summarise(rows, key=lambda r: "all")["all"]
    assert s["split"]["noc90_mean"] < s["remove"]["noc90_mean"] and s["split"]["failed90"] == 0


def test_one_click_per_level_and_mask_matches(clicked):
    """The first click of every run is the one-click probe at the default level, so its IoU is the
    probe's; the share of views whose masks match the object is a share."""
    _, rows = clicked
    for r in rows:
        assert len(r.level_ious) > 1 and r.level_ious[r.start_level] == pytest.approx(r.runs["split"]["ious"][0])
        assert 0 <= r.patch_views <= 1 and r.where in WHERE


def test_where_decided_follows_the_tree_the_render_and_the_masks():
    def row(ious, oracle=1.0, patches=1.0):
        return ObjectClicks("", 0.0, 0, "x", "x", "v", 100, {}, oracle, ious, 1, patches)

    assert row([0.2, 0.95, 0.5]).where == "ok"
    assert row([0.95, 0.5, 0.3]).where == "cut"  # another level of the tree holds it
    assert row([0.5, 0.6, 0.3], oracle=0.7).where == "render"  # its own Gaussians fall short
    assert row([0.5, 0.6], patches=0.8).where == "merges"  # the masks separate it, the tree does not
    assert row([0.5, 0.6], patches=0.2).where == "patches"  # the masks rarely separate it


@pytest.mark.parametrize("argv, message", [(["--scenes", "attic:0"], "layout must be one of"),
                                           (["--scenes", "room:x"], "expected layout"),
                                           (["--method", "nope"], "--method nope")])
def test_bad_arguments_are_one_line(capsys, tmp_path, argv, message):
    assert main(["bench", "clicks", *argv, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err


def test_command_prints_and_writes_results(capsys, tmp_path):
    import json

    assert main(["bench", "clicks", "--size", "tiny", "--scenes", "tabletop:0", "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "per category" in out and "ALL" in out and "book_0" in out and "where decided" in out
    results = json.loads((tmp_path / "o" / "clicks.json").read_text())
    assert results["objects"] and set(results["all"]) == {variant_name(r, s) for r, s in VARIANTS}
    cats = {o["category"] for o in results["objects"]}
    assert set(results["categories"]) == cats
    n90 = [o["runs"]["split"]["noc90"] for o in results["objects"]]
    assert results["all"]["split"]["noc90_mean"] == pytest.approx(np.mean(n90))
    assert results["all"]["split"]["noc90_median"] == pytest.approx(np.median(n90))
    assert sum(results["where"]["ALL"]["where"].values()) == len(results["objects"])
    assert {o["where"] for o in results["objects"]} <= set(WHERE)


def test_reused_dataset_and_the_map_reference(capsys, tmp_path, monkeypatch):
    """``--reuse-data DIR`` writes the datasets there once; a second run (here with ``--truth map``) keeps them
    without generating a world, finds their work folders up to date, and scores against the map's pixels of
    each object, where the first scored against the pixels it holds a majority of (never more; fewer for some
    object on this scene)."""
    import json

    import gs_core.synth.writer

    data, out = tmp_path / "data", tmp_path / "o"
    argv = ["bench", "clicks", "--size", "tiny", "--scenes", "tabletop:0", "--reuse-data", str(data), "--out", str(out)]
    assert main(argv) == 0
    first = json.loads((out / "clicks.json").read_text())
    [written] = first["datasets"]
    assert written["dataset"] == "written" and written["prepare"] == "prepared" and first["config"]["truth"] == "blend"
    root = data / "tabletop0_tiny_n0.5"
    assert written["path"] == str(root)
    stamp = (root / "scene.ply").stat().st_mtime_ns

    def no_world(*args, **kwargs):
        raise AssertionError("a reused dataset's world was generated again")

    monkeypatch.setattr(gs_core.synth.writer, "make_world", no_world)
    assert main([*argv, "--truth", "map"]) == 0
    assert "--truth map" in capsys.readouterr().out
    second = json.loads((out / "clicks.json").read_text())
    [reused] = second["datasets"]
    assert reused["dataset"] == "reused" and reused["prepare"] == "up to date" and second["config"]["truth"] == "map"
    assert (root / "scene.ply").stat().st_mtime_ns == stamp
    gt = GroundTruth.load(root)
    blend = {o["object"]: o["pixels"] for o in first["objects"]}
    assert set(blend) <= {o["object"] for o in second["objects"]}  # the blend drops an object it holds nowhere
    for o in second["objects"]:
        assert o["pixels"] == int((gt.instance_map(o["view"]) == o["object"]).sum())
        assert blend.get(o["object"], 0) <= o["pixels"]
    assert any(blend.get(o["object"], 0) < o["pixels"] for o in second["objects"])


def test_reuse_data_must_be_a_folder(capsys, tmp_path):
    (tmp_path / "f").write_text("x")
    assert main(["bench", "clicks", "--reuse-data", str(tmp_path / "f"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert "--reuse-data" in err and "not a folder" in err and "\n" not in err


@pytest.fixture(scope="module", params=["3dgs", "2dgs"])
def clicked_kind(request, tmp_path_factory):
    """A tiny table top of each kind, prepared by the CLI's prepare, clicked with the split rule."""
    root = tmp_path_factory.mktemp(f"clicks_{request.param}")
    build_dataset(root / "dataset", SynthConfig.sized("tiny", layout="tabletop", seed=0, kind=request.param),
                  MaskNoise.level(1.0))
    prepare(PrepareOptions(root / "dataset", root / "work", method="git-consistent"), log=lambda *_: None)
    return root, click_objects(root / "dataset", root / "work", variants=[("split", False)])


def _query_cli(work, view, clicks, level, out, refine=False) -> np.ndarray:
    argv = ["query", str(work), "--view", view, "--level", repr(float(level)), "--out", str(out)]
    argv += ["--refine"] if refine else []
    for x, y, positive in clicks:
        argv += ["--pixel" if positive else "--negative", str(x), str(y)]
    assert main(argv) == 0
    return np.load(out)


def test_the_benchmarks_clicks_select_what_the_cli_and_the_server_select(clicked_kind, tmp_path, capsys):
    """The benchmark turns a clicked pixel into Gaussians with the CLI's and the server's own function:
    every click set the clicker made (each prefix of every run: positive clicks add their instance and
    the clicked splats, negative ones split), given to ``gs-core query --view V --pixel ..
    --negative ..`` and to the server's ``query_pixels``, selects the same Gaussians as the benchmark's
    click, whose rendered IoU is the one the benchmark recorded, also as refinements (``--refine``, the
    server's ``rule: "split-support"``, the bench's variant of that name; somewhere not the same as
    additions); and a positive and a negative click on one finest instance (a 3D split) agree too."""
    from gs_core.bench.clicks import ViewClicks
    from gs_core.interactive import Click
    from gs_core.query import pixel_labels
    from tests.test_server import Server, camera_json

    root, rows = clicked_kind
    ds, gt, work = Dataset.load(root / "dataset"), GroundTruth.load(root / "dataset"), WorkDir(root / "work")
    levels, scene = load_levels(work), GaussianScene.load(work.scene_path)
    world = ds.load_scene().to_gaussians()  # the benchmark's IoU reference is drawn from the world (truth_mask)
    assert rows and scene.kind == ("2dgs" if "2dgs" in str(root) else "3dgs")
    cases = []  # (view, clicks [[x, y, positive]], level, recorded IoU or None)
    for r in rows:
        run = r.runs["split"]
        ends = range(1, len(run["clicks"]) + 1)
        cases += [(r.view, run["clicks"][:n], levels.levels[run["levels"][n - 1]], run["ious"][n - 1], r.object)
                  for n in ends]
    assert any(not p for _, clicks, *_ in cases for *_, p in clicks), "no negative click to compare"
    cam = ds.cameras[0]
    proj = project(scene.to_gaussians(), cam)
    finest = levels.labels[0].astype(np.int64)
    grid = np.stack(np.meshgrid(np.arange(2, cam.width, 3), np.arange(2, cam.height, 3)), -1).reshape(-1, 2)
    owner = pixel_labels(proj, finest, grid)
    on = grid[owner == np.bincount(owner[owner >= 0]).argmax()]
    far = np.linalg.norm(on[:, None] - on[None], axis=-1)
    i, j = np.unravel_index(np.argmax(far), far.shape)
    cases.append((ds.names[0], [[*on[i].tolist(), 1], [*on[j].tolist(), 0]], levels.levels[0], None, None))
    server = Server()
    try:
        assert server.call("load", work=str(work.root))[0]["ok"]
        split_seen = refine_differs = False
        for view, clicks, level, recorded, obj in cases:
            camera = ds.cameras[ds.names.index(view)]
            bench = ViewClicks(scene, levels, camera).select([Click(x, y, bool(p)) for x, y, p in clicks], level)
            cli = _query_cli(work.root, view, clicks, level, tmp_path / "sel.npy")
            assert np.array_equal(cli, bench.selected), (view, clicks)
            answer, _ = server.call("query_pixels", camera=camera_json(camera), level=float(level),
                                    positive=[[x, y] for x, y, p in clicks if p],
                                    negative=[[x, y] for x, y, p in clicks if not p],
                                    out=str(server.scratch / "sel.npy"))
            assert answer["ok"], answer
            assert np.array_equal(np.load(answer["result"]["rows"]), np.flatnonzero(bench.selected)), (view, clicks)
            split_seen |= bench.partial
            if sum(p for *_, p in clicks) > 1:  # the refine gesture: later positive clicks by their support
                refined = ViewClicks(scene, levels, camera).select([Click(x, y, bool(p)) for x, y, p in clicks], level,
                                                                   rule="split-support")
                assert np.array_equal(_query_cli(work.root, view, clicks, level, tmp_path / "r.npy", refine=True),
                                      refined.selected), (view, clicks)
                answer, _ = server.call("query_pixels", camera=camera_json(camera), level=float(level),
                                        positive=[[x, y] for x, y, p in clicks if p],
                                        negative=[[x, y] for x, y, p in clicks if not p], rule="split-support",
                                        out=str(server.scratch / "sel.npy"))
                assert np.array_equal(np.load(answer["result"]["rows"]), np.flatnonzero(refined.selected))
                refine_differs |= not np.array_equal(refined.selected, bench.selected)
            if recorded is not None:
                mask = truth_mask(project(world, camera), gt.gaussians.clean, gt.gaussians.object, obj)
                got = iou(selection_mask(project(scene.to_gaussians(), camera), cli), mask)
                assert got == pytest.approx(recorded, abs=1e-12)
        assert split_seen and refine_differs
    finally:
        server.proc.kill()
        server.proc.wait()
    capsys.readouterr()

"""``prepare --ray``: the per-view steps as Ray tasks on a local 2-CPU cluster started here, and a
work folder equal to the one written without Ray. Skipped (visibly) where Ray is not installed."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from gs_core.parallel import LOCAL, Shared, derived, run_all

from gs_core.cli import main
from gs_core.errors import UserError
from gs_core.pipeline.distributed import RayExecutor

WORK_ARRAYS = ("labels.npy", "confidence.npy")
WORK_ARCHIVES = ("levels.npz", "view_maps.npz")


@pytest.fixture(scope="module")
def ray():
    return pytest.importorskip("ray", reason="Ray is not installed (pip install 'gs-core[ray]')")


@pytest.fixture(scope="module")
def cluster(ray):
    """A local cluster of 2 CPUs, no dashboard, a small object store; shut down after the module."""
    import sys

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import this test file
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=100 * 2**20, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from gs_core.synth import MaskNoise, SynthConfig, build_dataset

    root = tmp_path_factory.mktemp("ray") / "dataset"
    build_dataset(root, SynthConfig.sized("tiny"), MaskNoise.level(0.5))
    return root


def test_ray_flag_without_ray_or_on_cuda_is_one_line_and_exit_2(dataset, tmp_path, monkeypatch, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as where it is not installed
    assert main(["prepare", str(dataset), "--out", str(tmp_path / "w"), "--ray"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--ray" in err and "gs-core[ray]" in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert main(["prepare", str(dataset), "--out", str(tmp_path / "w"), "--ray", "--device", "cuda"]) == 2
    assert "--device cpu" in capsys.readouterr().err
    assert not (tmp_path / "w").exists()


def _scaled_sum(item, shared, factor):
    values = derived(shared, "float", lambda v: v.astype(np.float64))
    return float(values[item] * factor), os.getpid()


def test_map_runs_each_item_as_a_task_and_sends_shared_data_once(ray, cluster, monkeypatch):
    executor = RayExecutor()
    assert executor.workers == 2
    puts = []
    real_put = ray.put
    monkeypatch.setattr(ray, "put", lambda value, **kw: puts.append(value) or real_put(value, **kw))
    shared = Shared(np.arange(10))
    out = run_all(executor, _scaled_sum, list(range(10)), shared, 2.0)
    assert [v for v, _ in out] == [2.0 * k for k in range(10)]
    assert len(puts) == 2  # the Shared value and the factor: once per map, not once per task
    again = run_all(executor, _scaled_sum, list(range(10)), shared, 3.0)
    assert [v for v, _ in again] == [3.0 * k for k in range(10)]
    assert len(puts) == 3 and puts[-1] == 3.0  # a later map over the same Shared puts only the factor
    other = Shared(np.arange(10) + 1)
    assert [v for v, _ in run_all(executor, _scaled_sum, list(range(10)), other, 1.0)] == [k + 1.0 for k in range(10)]
    assert len(puts) == 5
    assert os.getpid() not in {pid for _, pid in out}  # ran on workers
    assert [v for v, _ in run_all(LOCAL, _scaled_sum, list(range(10)), shared, 2.0)] == [v for v, _ in out]
    read = []
    first = next(executor.map(_scaled_sum, (read.append(k) or k for k in range(40)), shared, 1.0))
    assert first[1][0] == first[0] and len(read) <= 2 * 2  # items are read lazily: 2 in flight per CPU
    executor.close()  # the cluster is the fixture's: close leaves it running
    assert ray.is_initialized()


def _derived_keys(item, shared):
    from gs_core import parallel

    if shared is not None:
        derived(shared, "float", lambda v: v.astype(np.float64))
    return sorted(name for _, name in parallel._DERIVED)


def test_workers_drop_what_they_derived_soon_after_the_map_ends(cluster):
    import time

    shared = Shared(np.arange(10))
    assert run_all(RayExecutor(release_after=0.5), _derived_keys, list(range(8)), shared) == [["float"]] * 8
    time.sleep(3.0)
    # every task of the next map, on whichever worker, finds nothing left of the last one
    assert run_all(RayExecutor(release_after=60.0), _derived_keys, list(range(8)), None) == [[]] * 8


def _dies_once(item, marker):
    marker = Path(marker)
    if item == 1 and not marker.exists():
        marker.write_text("died")
        os._exit(1)  # the worker process dies mid-task
    return item * 10


def test_a_task_whose_worker_dies_is_run_again(cluster, tmp_path):
    out = run_all(RayExecutor(), _dies_once, [0, 1, 2], str(tmp_path / "marker"))
    assert (tmp_path / "marker").read_text() == "died"
    assert out == [0, 10, 20]


def _prepare(dataset, out, method, ray_address=None, progress=None, force=True):
    from gs_core.pipeline.prepare import PrepareOptions, prepare

    return prepare(PrepareOptions(dataset, out, method=method, force=force, ray=ray_address), progress,
                   log=lambda *a: None)


def _assert_same_work(a: Path, b: Path, same_key: bool = True) -> None:
    for name in WORK_ARRAYS:
        assert np.array_equal(np.load(a / name), np.load(b / name)), name
    for name in WORK_ARCHIVES:
        with np.load(a / name) as za, np.load(b / name) as zb:
            assert za.files == zb.files
            for k in za.files:
                assert np.array_equal(za[k], zb[k]), (name, k)
    assert (a / "scene.ply").read_bytes() == (b / "scene.ply").read_bytes()
    assert (a / "cameras.json").read_bytes() == (b / "cameras.json").read_bytes()
    ma, mb = (json.loads((w / "manifest.json").read_text()) for w in (a, b))
    assert ma["instances"] == mb["instances"] and (ma["key"] == mb["key"] or not same_key)
    assert ma["info"].get("density") is None or \
        {k: v for k, v in ma["info"]["density"].items() if k != "seconds"} == \
        {k: v for k, v in mb["info"]["density"].items() if k != "seconds"}


def test_prepare_with_ray_writes_the_same_work_folder(cluster, dataset, tmp_path):
    """trace3d: patches, GIT traces, association, density control (split offsets, re-traces, the
    refit's renders and traces) and the levels. Every per-view result is reduced in view order, and
    the native kernels are bitwise the same on any thread count, so the folders are equal bitwise."""
    plain = _prepare(dataset, tmp_path / "plain", "trace3d")
    with_ray = _prepare(dataset, tmp_path / "ray", "trace3d", "local")
    assert plain["info"]["density"]["split"] > 0  # density control ran (and its refit)
    assert with_ray["info"]["density"]["psnr_train_after"] == plain["info"]["density"]["psnr_train_after"]
    _assert_same_work(tmp_path / "plain", tmp_path / "ray")


def test_interrupted_ray_prepare_resumes_from_the_cache(cluster, dataset, tmp_path):
    seen = []

    def interrupt(stage, done, total):
        if stage == "tracing":
            seen.append(done)
            if done == 3:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _prepare(dataset, tmp_path / "work", "git-consistent", "local", interrupt)
    assert len(list((tmp_path / "work" / "cache").rglob("*.npz"))) == 3
    resumed = []
    _prepare(dataset, tmp_path / "work", "git-consistent", "local",
             lambda stage, done, total: resumed.append(done) if stage == "tracing" else None, force=False)
    assert resumed[0] == 3  # the three cached views were not traced again
    _prepare(dataset, tmp_path / "plain", "git-consistent")
    _assert_same_work(tmp_path / "plain", tmp_path / "work")


def test_server_prepare_takes_a_ray_field(cluster, dataset, tmp_path, monkeypatch):
    """The add-on's Prepare sends its preferences' Ray address as the request's ``ray`` field; the
    server makes one executor for the session, not one per prepare."""
    import io
    import queue

    from gs_core.pipeline import distributed
    from gs_core.server import Server

    made = []
    real = distributed.RayExecutor
    monkeypatch.setattr(distributed, "RayExecutor", lambda *a, **kw: made.append(1) or real(*a, **kw))
    server = Server(io.StringIO(), queue.Queue())
    result = server.cmd_prepare(1, {"dataset": str(dataset), "out": str(tmp_path / "ray"), "method": "git-consistent",
                                    "ray": "local"})
    assert result["instances"] > 0
    _prepare(dataset, tmp_path / "plain", "git-consistent")
    _assert_same_work(tmp_path / "plain", tmp_path / "ray")
    kept = server.ray
    assert kept is not None and kept.address == "local"
    server.cmd_prepare(2, {"dataset": str(dataset), "out": str(tmp_path / "again"), "method": "git-consistent",
                           "ray": "local"})
    assert server.ray is kept and len(made) == 1  # one executor (and cluster) across prepares
    with pytest.raises(UserError, match="--device cpu"):  # the options are still checked on every prepare
        server.cmd_prepare(3, {"dataset": str(dataset), "out": str(tmp_path / "gpu"), "method": "git-consistent",
                               "ray": "local", "device": "cuda"})
    assert len(made) == 1
    _assert_same_work(tmp_path / "plain", tmp_path / "again")
    server.close()
    assert server.ray is None


def test_a_ray_start_failure_is_one_line_exit_2_and_an_error_answer(ray, dataset, tmp_path, monkeypatch, capsys):
    import io
    import queue

    from gs_core.server import Server
    from gs_core.server_requests import Request

    def fail(*a, **kw):
        raise RuntimeError("Failed to start the GCS server.\nSee the logs in /tmp/ray")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", fail)
    assert main(["prepare", str(dataset), "--out", str(tmp_path / "w"), "--method", "git-consistent",
                 "--ray"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--ray local" in err and "GCS" in err and "Traceback" not in err
    out = io.StringIO()
    server = Server(out, queue.Queue())
    server.handle(Request(7, "prepare", {"dataset": str(dataset), "out": str(tmp_path / "s"),
                                         "method": "git-consistent", "ray": "local"}))
    answer = json.loads(out.getvalue().strip().splitlines()[-1])
    assert answer["id"] == 7 and answer["ok"] is False and answer["kind"] == "user" and "--ray local" in answer["error"]


def test_prepare_in_blocks_writes_a_work_folder_the_other_commands_read(dataset, tmp_path, capsys):
    out = tmp_path / "blocks"
    assert main(["prepare", str(dataset), "--out", str(out), "--blocks", "2x1", "--method", "git-consistent"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and len(manifest["info"]["blocks"]) == 2
    labels = np.load(out / "labels.npy")
    assert manifest["instances"] == len(np.unique(labels[labels >= 0])) > 1
    assert main(["segment", str(out), "--out", str(tmp_path / "l.npy")]) == 0
    assert np.array_equal(np.load(tmp_path / "l.npy"), labels)
    capsys.readouterr()
    assert main(["prepare", str(dataset), "--out", str(tmp_path / "x"), "--blocks", "2x1", "--method", "iqgs"]) == 2
    assert "--blocks" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["prepare", str(dataset), "--out", str(tmp_path / "x"), "--blocks", "2by1"])


def test_interrupted_prepare_in_blocks_resumes_with_the_blocks_missing(dataset, tmp_path):
    from gs_core.pipeline.prepare import PrepareOptions, prepare

    options = PrepareOptions(dataset, tmp_path / "w", method="git-consistent", blocks=(2, 2))

    def interrupt(stage, done, total):
        if stage == "blocks" and done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        prepare(options, interrupt)
    assert len(list((tmp_path / "w" / "cache").rglob("*.npz"))) == 2
    seen = []
    prepare(options, lambda stage, done, total: seen.append(done) if stage == "blocks" else None)
    assert seen[0] == 2  # the two finished blocks were not run again
    assert not list((tmp_path / "w" / "cache").rglob("*.npz"))  # a finished run clears its cache
    prepare(PrepareOptions(dataset, tmp_path / "whole", method="git-consistent", blocks=(2, 2)))
    _assert_same_work(tmp_path / "whole", tmp_path / "w", same_key=True)


def test_blocks_on_the_cluster_write_the_same_work_folder(cluster, dataset, tmp_path):
    from gs_core.pipeline.prepare import PrepareOptions, prepare

    for name, address in (("plain", None), ("ray", "local")):
        prepare(PrepareOptions(dataset, tmp_path / name, method="git-consistent", ray=address, blocks=(2, 1)),
                log=lambda *a: None)
    _assert_same_work(tmp_path / "plain", tmp_path / "ray")


def test_sam_masks_made_on_the_cluster_are_the_ones_made_here(cluster, tmp_path):
    """SAM per view as tasks (each worker loads the checkpoint once): the same mask files and work."""
    pytest.importorskip("torchvision")
    pytest.importorskip("segment_anything")
    import shutil

    from tiny_models import make_tiny_sam

    from gs_core.models.sam import SamMaskConfig
    from gs_core.pipeline.prepare import PrepareOptions, prepare
    from gs_core.pipeline.sam_masks import SamOptions
    from gs_core.synth import MaskNoise, SynthConfig, build_dataset

    bare = tmp_path / "bare"
    build_dataset(bare, SynthConfig.sized("tiny", layout="tabletop"), MaskNoise.level(0.0))
    shutil.rmtree(bare / "masks")
    loose = SamMaskConfig(points_per_side=3, pred_iou_thresh=-1e9, stability_score_thresh=-1e9, min_area=20)
    sam = SamOptions(make_tiny_sam(tmp_path / "sam.pth"), mask_views=4, mask_config=loose)
    for name, address in (("plain", None), ("ray", "local")):
        prepare(PrepareOptions(bare, tmp_path / name, method="git-consistent", sam=sam, ray=address),
                log=lambda *a: None)
    made = sorted(p.name for p in (tmp_path / "plain" / "masks").glob("*.npz"))
    assert len(made) == 4
    for name in made:
        with np.load(tmp_path / "plain" / "masks" / name) as a, np.load(tmp_path / "ray" / "masks" / name) as b:
            assert a.files == b.files and all(np.array_equal(a[k], b[k]) for k in a.files)
    _assert_same_work(tmp_path / "plain", tmp_path / "ray", same_key=False)  # the key names each WORK's mask files


def test_association_votes_cast_on_the_cluster_are_the_ones_cast_here(ray, cluster):
    """Eq. 3's per-view votes as tasks, stacked in view order: bitwise the matrices made here, which
    are ``W^T votes`` without each patch's own view (dense reference)."""
    from gs_core.methods.trace3d import GITStore, ViewGIT
    from gs_core.methods.trace3d.consistency import ConsistencyConfig, patch_votes

    rng = np.random.default_rng(3)
    store = GITStore(300)
    for k in range(6):
        seen = np.sort(rng.choice(300, 200, replace=False)).astype(np.int32)
        g = np.repeat(seen, 2)
        p = rng.integers(0, 5 + k, len(g)).astype(np.int16)
        w = rng.random(len(g)).astype(np.float32)
        store.add(ViewGIT(g, p, w, seen, np.bincount(g, w, minlength=300)[seen].astype(np.float32), 5 + k))
    grouping = rng.integers(0, 8, store.num_patches)
    executor = RayExecutor()
    for config, group in ((ConsistencyConfig(), None), (ConsistencyConfig(min_share=0.1, hard=False), grouping)):
        here, there = patch_votes(store, config, group), patch_votes(store, config, group, executor)
        for f in ("data", "indices", "indptr"):
            assert np.array_equal(getattr(here.C, f), getattr(there.C, f))
        assert np.array_equal(here.counts, there.counts) and np.array_equal(here.good, there.good)
    W = store.weights(normalise=True, labelled_only=True).toarray()
    votes = store.weights(normalise=True, labelled_only=True, hard=True).toarray()
    C = W.T @ votes
    view = store.patch_view
    C[view[:, None] == view[None, :]] = 0.0
    here = patch_votes(store)
    assert here.C.nnz > 100 and np.allclose(here.C.toarray(), C)


def _planted_store(rng, views: int = 6, objects: int = 6, per: int = 50):
    """A GIT store where each view cuts each object into 1-3 random pieces (one per Gaussian), so the
    other views vote a view's pieces of one object together."""
    from gs_core.methods.trace3d import GITStore, ViewGIT

    n = objects * per
    store = GITStore(n)
    obj = np.arange(n) // per
    for k in range(views):
        pieces = rng.integers(1, 4)
        local = obj * 3 + rng.integers(0, pieces, n)
        _, p = np.unique(local, return_inverse=True)
        g = np.arange(n, dtype=np.int32)
        w = (0.5 + rng.random(n)).astype(np.float32)
        store.add(ViewGIT(g, p.astype(np.int16), w, g, w.copy(), int(p.max()) + 1))
    return store


def test_merges_within_views_on_the_cluster_are_the_ones_made_here(ray, cluster):
    """Each view's greedy merges as tasks (one BLAS thread there and here): the same tree, bitwise, for
    the default scores and the per-view normalisation (which reads the columns' patches)."""
    from gs_core.methods.trace3d.consistency import ConsistencyConfig, consistent_instances

    store = _planted_store(np.random.default_rng(5))
    executor = RayExecutor()
    for config in (ConsistencyConfig(views_first_above=0), ConsistencyConfig(views_first_above=0, normalise="view")):
        here, there = consistent_instances(store, config), consistent_instances(store, config, executor=executor)
        within = here.tree.sequence < len(store.views)
        assert within.sum() > 6  # pieces merged inside views
        for f in ("into", "other", "score", "sequence"):
            assert np.array_equal(getattr(here.tree, f), getattr(there.tree, f))
        assert np.array_equal(here.patch_ids, there.patch_ids) and np.array_equal(here.labels, there.labels)

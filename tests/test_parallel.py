"""gs_core.parallel: maps over views reduced in item order, whatever order the items finish in."""

import numpy as np
import pytest

from gs_core import parallel
from gs_core.parallel import LOCAL, Shared, derived, forget, ordered, run_all


class Reversed:
    """An executor that finishes the items last to first (as a cluster may)."""

    def map(self, fn, items, *shared):
        items = list(items)
        for i in reversed(range(len(items))):
            yield i, fn(items[i], *shared)


def _scaled(x, factor):
    return x * factor


def test_run_all_and_ordered_give_item_order_from_any_finishing_order():
    items = list(range(7))
    assert run_all(Reversed(), _scaled, items, 3) == [3 * x for x in items]
    assert list(ordered(Reversed(), _scaled, items, 2)) == [2 * x for x in items]
    assert list(ordered(None, _scaled, items, 2)) == [2 * x for x in items]
    done = []
    run_all(LOCAL, _scaled, items, 1, progress=lambda d, n: done.append((d, n)))
    assert done == [(k, 7) for k in range(1, 8)]


def test_narrow_ids_keeps_the_values_in_fewer_bytes_and_only_travelling_executors_want_it():
    from gs_core.parallel import narrow_ids, travels

    for values, dtype in (([-1, 0, 32767], np.int16), ([-32769, 5], np.int32), ([2**31], np.int64)):
        a = np.array(values, np.int64)
        n = narrow_ids(a)
        assert n.dtype == dtype and np.array_equal(n, a)
    same = np.array([-1, 3], np.int16)
    assert narrow_ids(same) is same and narrow_ids(np.zeros(0, np.int64)).size == 0
    assert not travels(None) and not travels(LOCAL) and not travels(Reversed())


def test_a_worker_drops_what_it_derived_once_no_task_follows():
    import time

    from gs_core.parallel import task_ended, task_started

    shared = Shared(np.arange(3))
    try:
        task_started()
        derived(shared, "sum", lambda v: int(v.sum()))
        task_ended(0.3)
        task_started()  # the next task of the map came in time: the value stays
        time.sleep(0.6)
        assert (shared.token, "sum") in parallel._DERIVED
        task_ended(0.05)
        time.sleep(0.5)
        assert not parallel._DERIVED  # no task followed: dropped
    finally:
        forget(shared)


def test_many_tasks_in_a_row_keep_one_release_thread_and_still_release_when_idle():
    import threading
    import time

    from gs_core.parallel import RELEASE_THREAD, task_ended, task_started

    def release_threads():
        return [t for t in threading.enumerate() if t.name == RELEASE_THREAD]

    shared = Shared(np.arange(3))
    try:
        for _ in range(50):  # a map's tasks, one after the other on this worker
            task_started()
            derived(shared, "sum", lambda v: int(v.sum()))
            task_ended(0.3)
        assert len(release_threads()) == 1  # not one timer per finished task
        assert (shared.token, "sum") in parallel._DERIVED  # the last task ended under 0.3 s ago
        time.sleep(0.8)
        assert not parallel._DERIVED  # idle past the deadline: dropped
        task_started()
        derived(shared, "sum", lambda v: int(v.sum()))
        task_ended(0.05)
        time.sleep(0.5)
        assert not parallel._DERIVED and len(release_threads()) == 1  # the same thread, again
    finally:
        forget(shared)


def test_derived_builds_once_per_shared_value_and_forgets():
    built = []
    a, b = Shared(np.arange(3)), Shared(np.arange(4))
    for _ in range(3):
        assert derived(a, "sum", lambda v: built.append(1) or int(v.sum())) == 3
    assert len(built) == 1
    assert derived(b, "sum", lambda v: built.append(1) or int(v.sum())) == 6
    assert not any(k[0] == a.token for k in parallel._DERIVED)  # only the latest value's are kept
    forget(b)
    assert not parallel._DERIVED


def test_trace_all_store_is_the_same_whatever_order_the_views_finish(tmp_path):
    from gs_core.dataset import Dataset
    from gs_core.methods.trace3d import Trace3DConfig
    from gs_core.synth import MaskNoise, SynthConfig, build_dataset
    from gs_core.patches import make_patches
    from gs_core.methods.trace3d.git import trace_all

    build_dataset(tmp_path / "ds", SynthConfig.sized("tiny"), MaskNoise.level(0.5))
    ds = Dataset.load(tmp_path / "ds")
    views = [k for k in range(len(ds)) if ds.masks(k) is not None][:4]
    cams, patches = [ds.cameras[k] for k in views], [make_patches(ds.masks(k)) for k in views]
    local, _ = trace_all(ds.load_scene(), cams, patches, Trace3DConfig())
    shuffled, _ = trace_all(ds.load_scene(), cams, patches, Trace3DConfig(), executor=Reversed())
    assert len(local.views) == len(shuffled.views) == 4 and local.visible_pairs > 0
    for a, b in zip(local.views, shuffled.views):
        for name in ("gaussians", "patches", "weights", "seen", "total"):
            assert np.array_equal(getattr(a, name), getattr(b, name))
        assert a.num_patches == b.num_patches

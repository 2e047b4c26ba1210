"""The local cluster ``prepare --ray`` starts: its workers run at the driver's niceness (Ray's default
starts them 15 levels nicer, and a loaded machine then starves the workers the driver waits on), while
a cluster at an address keeps its own settings. Skipped (visibly) where Ray is not installed."""

import os

import pytest

from gs_core.parallel import run_all
from gs_core.pipeline.distributed import LOCAL_SYSTEM_CONFIG, RayExecutor


@pytest.fixture(scope="module")
def ray():
    return pytest.importorskip("ray", reason="Ray is not installed (pip install 'gs-core[ray]')")


def test_a_local_cluster_runs_its_workers_at_the_drivers_niceness(ray):
    assert not ray.is_initialized()  # the executor must start its own cluster for this test to mean anything
    executor = RayExecutor(num_cpus=1)
    try:
        niceness = run_all(executor, os.nice, [0, 0, 0])  # os.nice(0): the niceness of the worker it ran in
    finally:
        executor.close()
    assert not ray.is_initialized()
    assert niceness == [os.nice(0)] * 3


def test_a_cluster_at_an_address_is_not_given_the_local_settings(ray, monkeypatch):
    calls = []
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kw: calls.append(kw))
    monkeypatch.setattr(ray, "remote", lambda **kw: (lambda fn: fn))
    RayExecutor(address="10.0.0.1:6379")._connect()
    RayExecutor(num_cpus=2)._connect()
    assert "_system_config" not in calls[0] and calls[0]["address"] == "10.0.0.1:6379"
    assert calls[1]["_system_config"] == LOCAL_SYSTEM_CONFIG == {"worker_niceness": 0}  # a copy: ray.init adds to it
    assert calls[1]["num_cpus"] == 2

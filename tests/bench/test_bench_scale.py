"""gs-core bench scale's measuring executor (the Ray runs themselves are the benchmark, not a test)."""

import os
import pickle

import numpy as np

from gs_core.bench.scale import MeasuringExecutor
from gs_core.parallel import LOCAL, Shared, run_all


def _square(item, shared):
    return shared.value[item] ** 2


def test_measuring_executor_passes_results_through_and_counts_bytes_and_tasks():
    shared = Shared(np.arange(100, dtype=np.float64))
    measuring = MeasuringExecutor(LOCAL)
    assert run_all(measuring, _square, [3, 5, 7], shared) == [9.0, 25.0, 49.0]
    assert measuring.tasks == 3 and list(measuring.cpu) == [os.getpid()] and measuring.peak_mb[os.getpid()] > 0
    assert measuring.bytes_out == len(pickle.dumps(shared, protocol=5)) + sum(len(pickle.dumps(i, protocol=5))
                                                                              for i in (3, 5, 7))
    assert measuring.bytes_in == 3 * len(pickle.dumps(np.float64(9.0), protocol=5))

"""Memory figures every benchmark states: peak resident memory of a step and of the whole run."""

from __future__ import annotations

import os
import resource
import threading


class PeakRSS:
    """Peak resident memory above the level at entry, sampled every 2 ms from /proc."""

    def __enter__(self):
        self.base = self.peak = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())

    def _run(self):
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, self._rss())

    @staticmethod
    def _rss() -> int:
        try:
            with open("/proc/self/statm") as fh:
                return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:
            return 0

    @property
    def extra_mb(self) -> float:
        return (self.peak - self.base) / 2**20


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far plus its largest finished child, in MB (Linux
    reports kB). The benchmark's own figure to compare with the machine's RAM."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024

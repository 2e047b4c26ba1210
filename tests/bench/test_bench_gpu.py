"""``tools/gpu_check.sh`` / ``gs-core bench gpu`` in its CPU-only mode: it passes, says which GPU parts
it skipped, and its CPU self-check of the CUDA path's ops can fail."""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gs_core.bench import gpu

REPO = Path(__file__).resolve().parents[2]
no_gpu_only = pytest.mark.skipif(torch.cuda.is_available(),
                                 reason="with a GPU the check runs its GPU parts: run tools/gpu_check.sh itself")


@no_gpu_only
def test_script_passes_without_gpu_and_names_the_skips(tmp_path):
    out = tmp_path / "check"
    run = subprocess.run(["bash", str(REPO / "tools" / "gpu_check.sh"), "--quick", "--out", str(out)],
                         capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHON": sys.executable})
    assert run.returncode == 0, run.stdout + run.stderr
    result = json.loads((out / "gpu_check.json").read_text())
    assert result["gpu_parts_skipped"] is True
    skipped = {c["name"] for c in result["checks"] if c["status"] == "skipped"}
    assert {"pytest -m cuda", "gs-core demo --device cuda", "targets on the GPU"} <= skipped
    assert "[SKIPPED] gs-core demo --device cuda" in run.stdout
    assert "GPU PARTS SKIPPED" in (out / "gpu_check.txt").read_text()
    ran = [c for c in result["checks"] if c["status"] != "skipped"]
    assert len(ran) == 8 and all(c["status"] == "passed" for c in ran)  # every op of the self-check
    assert all(c["figures"]["elements"] > 1000 for c in ran)


@no_gpu_only
def test_a_wrong_op_fails_the_check(tmp_path, monkeypatch):
    from gs_core.engine import batched_backend

    real = batched_backend.trace

    def off_by_a_little(*args):  # 0.1% too much: a bug the comparison must catch
        acc, wsum, asum, hits = real(*args)
        return acc * 1.001, wsum, asum, hits

    monkeypatch.setattr(batched_backend, "trace", off_by_a_little)
    args = argparse.Namespace(out=tmp_path, count=0, repeats=1, timeout=60, skip_tests=True, skip_demo=True)
    assert gpu.run(args) == 1
    result = json.loads((tmp_path / "gpu_check.json").read_text())
    status = {c["name"].split(": ", 1)[1]: c["status"] for c in result["checks"] if ": " in c["name"]}
    assert status["trace D=16"] == "failed" and status["trace D=16 power 2"] == "failed"
    assert status["render D=3"] == "passed" and status["trace labels (top-8)"] == "passed"

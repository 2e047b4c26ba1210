"""``--device cuda`` through the pipeline: a clear error without a GPU; on one, the same results as the CPU."""

import subprocess
import sys

import numpy as np
import pytest
import torch

from gs_core.pipeline.prepare import PrepareOptions, prepare


@pytest.mark.skipif(torch.cuda.is_available(), reason="the error is for machines without a GPU")
@pytest.mark.parametrize("command", [["demo", "--out", "{tmp}/demo"], ["refine", "{work}"],
                                     ["prepare", "{dataset}", "--out", "{tmp}/work"]])
def test_device_cuda_without_gpu_is_one_clear_line(command, tiny_work, tmp_path):
    dataset, work = tiny_work
    argv = [a.format(tmp=tmp_path, work=work, dataset=dataset) for a in command] + ["--device", "cuda"]
    run = subprocess.run([sys.executable, "-m", "gs_core.cli", *argv], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2, run.stderr
    assert "--device cuda: torch sees no NVIDIA GPU" in run.stderr and "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1


@pytest.mark.cuda
@pytest.mark.slow
def test_prepare_on_cuda_matches_cpu(tiny_work, tmp_path):
    """The tiny dataset prepared on the GPU labels the Gaussians as on the CPU (git-consistent: no split)."""
    dataset, work = tiny_work
    prepare(PrepareOptions(dataset, tmp_path / "work", method="git-consistent", device="cuda"))
    cpu, gpu = np.load(work / "labels.npy"), np.load(tmp_path / "work" / "labels.npy")
    assert cpu.shape == gpu.shape
    # the same partition up to renaming: each CPU instance is one GPU instance and the other way round
    same = [len(np.unique(b[a == c])) == 1 for a, b in ((cpu, gpu), (gpu, cpu)) for c in np.unique(a) if c >= 0]
    assert np.mean(same) > 0.95


@pytest.mark.cuda
def test_refine_on_cuda_matches_cpu():
    from gs_core.refine import RefineConfig, refine

    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))
    from test_refine import perturbed, photos, ring, toy_scene

    scene, cams = toy_scene("3dgs"), ring()
    imgs = photos(scene, cams)
    start = perturbed(scene)
    config = RefineConfig(steps=10, seed=0)
    a, ra = refine(start, cams, lambda k: imgs[k], config)
    b, rb = refine(start, cams, lambda k: imgs[k], RefineConfig(steps=10, seed=0, device="cuda"))
    assert rb.psnr_after > rb.psnr_before
    np.testing.assert_allclose(rb.losses, ra.losses, rtol=1e-3)
    np.testing.assert_allclose(b.means, a.means, atol=1e-4)

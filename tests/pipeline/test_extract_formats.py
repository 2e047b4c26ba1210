"""gs-core extract to SPZ and .splat (with the lossy note), and prepare --scene from SPZ / a bad SPZ."""

import numpy as np
import pytest

from gs_core.cli import main
from gs_core.scene import GaussianScene


@pytest.fixture
def selection(tiny_work, tmp_path):
    _, work = tiny_work
    n = len(GaussianScene.load(work / "scene.ply"))
    sel = np.zeros(n, bool)
    sel[: n // 3] = True
    np.save(tmp_path / "sel.npy", sel)
    return work, tmp_path / "sel.npy", sel


@pytest.mark.parametrize("suffix, args, dropped", [(".spz", [], "precision"), (".spz", ["--spz-version", "4"], "precision"),
                                                   (".splat", [], "SH bands")])
def test_extract_writes_lossy_formats_with_a_note(selection, tmp_path, capsys, suffix, args, dropped):
    work, sel_path, sel = selection
    out, rest = tmp_path / f"object{suffix}", tmp_path / f"rest{suffix}"
    assert main(["extract", str(work), "--selection", str(sel_path), "--out", str(out), "--rest", str(rest), *args]) == 0
    printed = capsys.readouterr().out
    assert f"{int(sel.sum())} Gaussians -> {out}" in printed
    assert f"note: {suffix} is lossy; dropped: " in printed and dropped in printed
    source = GaussianScene.load(work / "scene.ply")
    got = GaussianScene.load(out)
    assert len(got) == sel.sum() and len(GaussianScene.load(rest)) == (~sel).sum()
    assert np.abs(got.means - source.means[sel]).max() < 1e-3


def test_extract_refuses_unknown_types_before_work(selection, tmp_path, capsys):
    work, sel_path, _ = selection
    assert main(["extract", str(work), "--selection", str(sel_path), "--out", str(tmp_path / "o.obj")]) == 2
    err = capsys.readouterr().err
    assert "--out" in err and "o.obj: unknown scene file type" in err and len(err.strip().splitlines()) == 1


def test_prepare_reads_spz_and_reports_a_bad_one(tiny_work, tmp_path, capsys):
    dataset, _ = tiny_work
    GaussianScene.load(dataset / "scene.ply").save(tmp_path / "scene.spz")
    (tmp_path / "bad.spz").write_bytes((tmp_path / "scene.spz").read_bytes()[:100])
    assert main(["prepare", str(dataset), "--out", str(tmp_path / "w_bad"), "--scene", str(tmp_path / "bad.spz"),
                 "--method", "git-consistent"]) == 2
    err = capsys.readouterr().err
    assert "bad.spz: truncated SPZ" in err and "Traceback" not in err
    assert main(["prepare", str(dataset), "--out", str(tmp_path / "w"), "--scene", str(tmp_path / "scene.spz"),
                 "--method", "git-consistent"]) == 0
    assert len(GaussianScene.load(tmp_path / "w" / "scene.ply")) == len(GaussianScene.load(dataset / "scene.ply"))

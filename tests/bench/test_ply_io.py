"""gs-core bench ply on a small scene: every format's row is measured and the PLY round trip is exact."""

from gs_core.cli import main


def test_bench_ply_reports_every_format(capsys, tmp_path):
    assert main(["bench", "ply", "--count", "600", "--repeats", "1", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "round trip bit-exact: yes" in out
    for row in ("SPZ v3", "SPZ v4", ".splat", "compressed"):
        assert row in out
    assert not list(tmp_path.glob("*.spz")) and not list(tmp_path.glob("*.splat"))  # cleaned up

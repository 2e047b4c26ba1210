"""A re-run clears exactly the files the last run of the same command wrote into its folder."""

import json

from gs_core.cli import main
from gs_core.outputs import RECORD_NAME, OutputRecord


def _run(folder, files, outputs=None, during=()):
    """One run writing ``files``; ``outputs`` the names the command declares (default: those files);
    ``during``: files the user makes while it runs."""
    record = OutputRecord(folder, "demo")
    removed = record.clear_previous()
    for rel in [*files, *during]:
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(rel)
    return removed, record.save(files if outputs is None else outputs)


def test_clears_its_own_files_and_nothing_else(tmp_path):
    (tmp_path / "mine.txt").write_text("the user's")
    assert _run(tmp_path, ["a.ply", "data/images/1.png", "data/images/2.png"]) == (
        0, ["a.ply", "data/images/1.png", "data/images/2.png"])
    (tmp_path / "data" / "notes.txt").write_text("the user's, inside an output folder")
    removed, written = _run(tmp_path, ["b.ply", "data/images/1.png"])
    assert removed == 3 and written == ["b.ply", "data/images/1.png"]
    left = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert left == [RECORD_NAME, "b.ply", "data/images/1.png", "data/notes.txt", "mine.txt"]


def test_emptied_folders_go_and_other_commands_records_stay(tmp_path):
    _run(tmp_path, ["views/1.png"])
    record = json.loads((tmp_path / RECORD_NAME).read_text())
    (tmp_path / RECORD_NAME).write_text(json.dumps({**record, "synth": {"other.ply": [1, 2]}}))
    _run(tmp_path, ["c.ply"])
    assert not (tmp_path / "views").exists()
    record = json.loads((tmp_path / RECORD_NAME).read_text())
    assert list(record["demo"]) == ["c.ply"] and record["synth"] == {"other.ply": [1, 2]}


def test_a_file_the_user_makes_during_a_run_is_never_recorded(tmp_path):
    """Issue 23: the record listed every file whose time changed during the run, so a file the user
    made meanwhile was deleted by the next run. Only the command's own outputs are recorded now."""
    _, written = _run(tmp_path, ["report/r.html", "a.ply"], outputs=["report", "a.ply"], during=["notes.txt"])
    assert written == ["a.ply", "report/r.html"]
    _run(tmp_path, ["b.ply"])
    assert (tmp_path / "notes.txt").read_text() == "notes.txt" and not (tmp_path / "a.ply").exists()


def test_a_recorded_file_changed_since_is_kept(tmp_path):
    _run(tmp_path, ["a.ply", "b.ply"])
    (tmp_path / "a.ply").write_text("the user's own version now, longer than before")
    removed, _ = _run(tmp_path, [])
    assert removed == 1 and (tmp_path / "a.ply").exists() and not (tmp_path / "b.ply").exists()


def test_a_record_without_stamps_deletes_nothing(tmp_path):
    (tmp_path / "old.ply").write_text("made by an older gs_core, or not")
    (tmp_path / RECORD_NAME).write_text(json.dumps({"demo": ["old.ply"]}))
    assert OutputRecord(tmp_path, "demo").clear_previous() == 0 and (tmp_path / "old.ply").exists()


def test_a_record_pointing_outside_the_folder_is_ignored(tmp_path):
    outside = tmp_path / "precious.txt"
    outside.write_text("keep me")
    folder = tmp_path / "out"
    folder.mkdir()
    stamp = [outside.stat().st_size, outside.stat().st_mtime_ns]
    (folder / RECORD_NAME).write_text(json.dumps({"demo": {"../precious.txt": stamp, str(outside): stamp}}))
    assert OutputRecord(folder, "demo").clear_previous() == 0
    assert outside.read_text() == "keep me"


def test_demo_rerun_leaves_no_stale_files(tmp_path):
    out = tmp_path / "demo"
    out.mkdir()
    (out / "keep.txt").write_text("the user's")
    assert main(["demo", "--out", str(out), "--size", "tiny", "--seed", "1"]) == 0
    first = {p for p in out.rglob("*") if p.is_file()}
    assert main(["demo", "--out", str(out), "--size", "tiny", "--seed", "2", "--layout", "room"]) == 0
    second = {p for p in out.rglob("*") if p.is_file()}
    written = {out / rel for rel in json.loads((out / RECORD_NAME).read_text())["demo"]}
    assert (out / "keep.txt").exists()
    assert second == written | {out / "keep.txt", out / RECORD_NAME}
    assert first - second  # files only the seed-1 table-top run wrote are gone

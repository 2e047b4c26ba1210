"""The backend's JSON-lines protocol (gs_core.server) against a real ``python -m gs_core.server``
process on a tiny prepared scene: answers match the library's own queries from any camera, the
granularity walk is monotonic, clicks add and remove, mistakes are one-line errors that leave the
process serving, prepare reports progress and can be cancelled, then resumes."""

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from gs_core.camera import Camera
from gs_core.engine import project
from gs_core.pipeline.segment import load_levels
from gs_core.pipeline.workdir import WorkDir
from gs_core.query import from_clicks
from gs_core.scene import GaussianScene


class Server:
    def __init__(self):
        self.proc = subprocess.Popen([sys.executable, "-m", "gs_core.server"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)
        self.ready = self.read()
        self.scratch = Path(self.ready["scratch"])  # the server's own folder: answers may go there
        self.next_id = 1

    def read(self) -> dict:
        line = self.proc.stdout.readline()
        assert line, f"server exited: {self.proc.stderr.read()[-2000:]}"
        return json.loads(line)  # every stdout line is JSON

    def send(self, cmd, **args) -> int:
        rid, self.next_id = self.next_id, self.next_id + 1
        self.proc.stdin.write(json.dumps({"id": rid, "cmd": cmd, "args": args}) + "\n")
        return rid

    def call(self, cmd, **args) -> tuple[dict, list[dict]]:
        rid, progress = self.send(cmd, **args), []
        while True:
            message = self.read()
            assert message["id"] == rid, message
            if "progress" in message:
                progress.append(message["progress"])
            else:
                return message, progress


@pytest.fixture(scope="module")
def server():
    s = Server()
    yield s
    if s.proc.poll() is None:
        s.proc.kill()
    s.proc.wait()


def camera_json(cam: Camera) -> dict:
    return {"fx": cam.fx, "fy": cam.fy, "cx": cam.cx, "cy": cam.cy, "width": cam.width, "height": cam.height,
            "world_to_camera": cam.world_to_camera.tolist()}


def rows(answer) -> np.ndarray:
    assert answer["ok"], answer
    out = np.load(answer["result"]["rows"])
    assert out.dtype == np.int64 and answer["result"]["count"] == len(out)
    assert np.all(np.diff(out) > 0)
    return out


@pytest.fixture(scope="module")
def loaded(server, tiny_work):
    _, work = tiny_work
    answer, _ = server.call("load", work=str(work))
    assert answer["ok"], answer
    wd = WorkDir(work, must_exist=True)
    return wd, load_levels(wd), GaussianScene.load(wd.scene_path).to_gaussians()


def test_ready_and_ping(server):
    assert server.ready["event"] == "ready" and server.ready["protocol"] == 1
    assert "click-rule" in server.ready["features"]  # query_pixels' rule: the add-on checks before a refine click
    answer, _ = server.call("ping")
    assert answer["ok"] and answer["result"]["version"] == server.ready["version"]
    assert answer["result"]["pid"] == server.proc.pid


def test_load_reports_the_work_folder(server, loaded):
    wd, levels, gaussians = loaded
    answer, _ = server.call("load", work=str(wd.root))
    result = answer["result"]
    assert result["gaussians"] == len(gaussians.means) == levels.labels.shape[1]
    assert result["levels"] == levels.levels.tolist()
    assert result["cameras"] == [c.name for c in wd.cameras()] and result["text"] is False


def test_labels_at_a_level(server, loaded, tmp_path):
    _, levels, _ = loaded
    answer, _ = server.call("labels", level=1.0, out=str(server.scratch / "labels.npy"))
    labels = np.load(server.scratch / "labels.npy")
    assert labels.dtype == np.int32 and np.array_equal(labels, levels.labels[-1])
    assert answer["result"]["instances"] == len(np.unique(labels[labels >= 0]))


def _camera_and_click(wd, gaussians):
    """A camera that is no dataset camera (between the first two, further out, another size), and
    the pixel at its centre."""
    c0, c1 = wd.cameras()[:2]
    centre = gaussians.means.numpy().mean(0)
    eye = centre + 1.15 * (0.5 * (c0.position + c1.position) - centre)
    cam = Camera.look_at(eye, centre, up=-c0.world_to_camera[1, :3], fov_x_deg=55, width=90, height=70)
    return cam, (45, 35)


def test_query_pixels_from_any_camera_matches_the_library(server, loaded, tmp_path):
    wd, levels, gaussians = loaded
    cam, xy = _camera_and_click(wd, gaussians)
    labels = levels.labels[0].astype(np.int64)  # level 0: the first grid level, no union involved
    expected = from_clicks(project(gaussians, cam), labels, np.array([xy]))
    answer, _ = server.call("query_pixels", camera=camera_json(cam), positive=[list(xy)], level=0.0,
                            out=str(server.scratch / "sel.npy"))
    got = rows(answer)
    assert len(got) > 0 and np.array_equal(got, np.flatnonzero(expected.selected))
    assert answer["result"]["instances"] == expected.labels.tolist()
    # a dataset camera too (the case `gs-core query --view` covers)
    cam = wd.cameras()[0]
    expected = from_clicks(project(gaussians, cam), labels, np.array([[30, 20]]), np.array([[5, 40]]))
    answer, _ = server.call("query_pixels", camera=camera_json(cam), positive=[[30, 20]], negative=[[5, 40]],
                            level=0.0, out=str(server.scratch / "sel.npy"))
    assert np.array_equal(rows(answer), np.flatnonzero(expected.selected))


def test_granularity_walk_is_monotonic_and_returns(server, loaded, tmp_path):
    wd, levels, gaussians = loaded
    cam, xy = _camera_and_click(wd, gaussians)
    first = rows(server.call("query_pixels", camera=camera_json(cam), positive=[list(xy)], level=0.0,
                             out=str(server.scratch / "a.npy"))[0])
    previous, sizes = first, []
    for level in levels.levels[1:]:
        now = rows(server.call("query_level", level=float(level), out=str(server.scratch / "b.npy"))[0])
        assert np.isin(previous, now).all(), f"level {level} dropped splats"
        previous = now
        sizes.append(len(now))
    assert sizes[-1] > len(first), "groups should take more than the finest part here"
    back = rows(server.call("query_level", level=0.0, out=str(server.scratch / "c.npy"))[0])
    assert np.array_equal(back, first)


def test_clicks_add_and_remove(server, loaded, tmp_path):
    wd, levels, _ = loaded
    cam = wd.cameras()[0]
    labels = levels.at(0.5)
    proj = project(loaded[2], cam)
    # two pixels on two different instances at level 0.5
    from gs_core.query import pixel_labels

    grid = np.stack(np.meshgrid(np.arange(2, cam.width, 6), np.arange(2, cam.height, 6)), -1).reshape(-1, 2)
    owner = pixel_labels(proj, labels, grid)
    a = grid[np.flatnonzero(owner >= 0)[0]]
    b = grid[np.flatnonzero((owner >= 0) & (owner != owner[np.flatnonzero(owner >= 0)[0]]))[0]]
    out = str(server.scratch / "s.npy")
    one = rows(server.call("query_pixels", camera=camera_json(cam), positive=[a.tolist()], level=0.5, out=out)[0])
    two = rows(server.call("query_pixels", camera=camera_json(cam), positive=[b.tolist()], level=0.5, out=out,
                           append=True)[0])
    alone_b = np.flatnonzero(from_clicks(proj, labels, b[None]).selected)
    assert np.array_equal(two, np.union1d(one, alone_b)) and len(two) > len(one)
    removed = rows(server.call("query_pixels", camera=camera_json(cam), negative=[a.tolist()], level=0.5, out=out,
                               append=True)[0])
    assert np.array_equal(removed, alone_b)
    replaced = rows(server.call("query_pixels", camera=camera_json(cam), positive=[a.tolist()], level=0.5, out=out)[0])
    assert np.array_equal(replaced, one)


def test_mistakes_are_one_line_errors_and_the_server_keeps_serving(server, loaded, tmp_path):
    wd = loaded[0]
    cam = camera_json(wd.cameras()[0])
    out = str(server.scratch / "x.npy")
    cases = [
        (("query_text", {"text": "red chair", "out": out}), "user", "no CLIP features in WORK"),
        (("query_pixels", {"camera": {"fx": 1}, "positive": [[1, 1]], "out": out}), "user", "camera: missing fy"),
        (("query_pixels", {"camera": cam, "positive": [[500, 1]], "out": out}), "user", "outside the 64x48 view"),
        (("query_pixels", {"camera": cam, "positive": [[1, 1]], "level": 2, "out": out}), "user", "level"),
        (("load", {"work": str(tmp_path / "nowhere")}), "user", "work folder does not exist"),
        (("prepare", {"dataset": str(tmp_path), "out": str(tmp_path / "w"), "sam_model": "vit_h"}), "user",
         "option 'sam_model' is not supported"),
        (("frobnicate", {}), "protocol", "unknown command 'frobnicate'"),
    ]
    for (cmd, args), kind, needle in cases:
        answer, _ = server.call(cmd, **args)
        assert answer["ok"] is False and answer["kind"] == kind and needle in answer["error"], answer
        assert "\n" not in answer["error"]
    server.proc.stdin.write("this is not json\n")
    answer = server.read()
    assert answer == {"id": None, "ok": False, "kind": "protocol",
                      "error": "bad request line (Expecting value: line 1 column 1 (char 0)): 'this is not json'"}
    assert server.call("ping")[0]["ok"]
    assert not (server.scratch / "x.npy").exists()


def test_answers_are_written_only_inside_the_work_folder_or_the_servers_own(server, loaded, tmp_path):
    """``out`` confined (issue 23): a ``labels`` answer aimed at WORK/scene.ply destroyed the work
    folder; ``..`` and absolute paths wrote anywhere. Each is a ``user`` error and the canaries survive."""
    wd = loaded[0]
    canary = tmp_path / "canary.npy"
    np.save(canary, np.arange(3))
    own = {name: (wd.root / name).read_bytes() for name in ("scene.ply", "labels.npy", "levels.npz")}
    cam = camera_json(wd.cameras()[0])
    for out, needle in [(canary, "outside the work folder"), (wd.root / ".." / "escaped.npy", "outside the work folder"),
                        (wd.root / "scene.ply", "a file of the work folder"), (wd.root / "labels.npy", "a file of"),
                        (wd.root / "cache" / "x.npy", "a file of the work folder"), (server.scratch / "x.ply", ".npy"),
                        (server.scratch / "no" / "x.npy", "does not exist"), ("relative.npy", "outside")]:
        for cmd, args in [("labels", {"level": 0.5}), ("query_level", {"level": 0.5}),
                          ("query_pixels", {"camera": cam, "positive": [[30, 20]]})]:
            answer, _ = server.call(cmd, out=str(out), **args)
            assert answer["kind"] == "user" and needle in answer["error"], (cmd, out, answer)
    assert np.array_equal(np.load(canary), np.arange(3)) and not (wd.root.parent / "escaped.npy").exists()
    assert own == {name: (wd.root / name).read_bytes() for name in own}
    inside = wd.root / "answers_test.npy"  # where the add-on writes: a name of its own in WORK
    answer, _ = server.call("labels", level=0.5, out=str(inside))
    assert answer["ok"] and np.load(inside).shape == (loaded[1].labels.shape[1],)
    inside.unlink()


@pytest.mark.parametrize("cmd, args, needle", [
    ("prepare", {"dataset": "d", "out": "w", "theta": 5}, "'theta' must be in (0, 1)"),
    ("prepare", {"dataset": "d", "out": "w", "theta": -1}, "'theta' must be in (0, 1)"),
    ("prepare", {"dataset": 3, "out": "w"}, "'dataset' must be a path"),
    ("prepare", {"dataset": "d", "out": "w", "force": "yes"}, "'force' must be true or false"),
    ("prepare", {"dataset": "d", "out": "w", "sam": {"checkpoint": "c", "mask_views": 0}}, "'mask_views' must be"),
    ("labels", {"level": "half", "out": "x.npy"}, "'level' must be a number"),
    ("labels", {"level": True, "out": "x.npy"}, "'level' must be a number"),
    ("query_pixels", {"camera": [], "positive": [[1, 1]]}, "'camera' must be an object"),
    ("query_pixels", {"camera": {}, "positive": [[1, "a"]]}, "'positive' must be a number"),
    ("query_pixels", {"camera": {}, "positive": [[1, 1e30]]}, "'positive' must be in"),
    ("query_pixels", {"camera": {"fx": 1, "fy": 1, "cx": 0, "cy": 0, "width": 1e12, "height": 9,
                                 "world_to_camera": np.eye(4).tolist()}, "positive": [[1, 1]], "out": "x.npy"},
     "width and height must be whole numbers"),
    ("query_text", {"text": ["red"], "out": "x.npy"}, "'text' must be a string"),
    ("cancel", {"target": [1]}, "'target' must be a request id"),
])
def test_wrong_types_and_ranges_are_user_errors(server, loaded, cmd, args, needle):
    """Fields of the wrong type or outside the command line's ranges answer ``user``, not ``internal``."""
    answer, _ = server.call(cmd, **args)
    assert answer["ok"] is False and answer["kind"] == "user" and needle in answer["error"], answer
    assert server.call("ping")[0]["ok"]


@pytest.mark.parametrize("line", [b"[" * 100_000, b'{"id": [1], "cmd": "ping"}', b'{"id": NaN, "cmd": "ping"}',
                                  b'{"id": 5, "cmd": "cancel", "args": {"target": [1]}}', b"\xff\xfe{}"])
def test_the_lines_that_used_to_kill_or_hang_it(line):
    """Issue 23: a RecursionError killed the reader thread (no answer, EOF ignored), an unhashable
    cancel target hung it, an id that cannot be echoed ended the process. Now: one answer, alive,
    and end of input ends it."""
    proc = subprocess.Popen([sys.executable, "-m", "gs_core.server"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    out, _ = proc.communicate(line + b"\n" + b'{"id": 2, "cmd": "shutdown"}\n', timeout=60)
    ready, answer, bye = [json.loads(x) for x in out.splitlines()]
    assert ready["event"] == "ready" and answer["ok"] is False and answer["kind"] in ("protocol", "user")
    assert bye == {"id": 2, "ok": True, "result": {}} and proc.returncode == 0


def test_prepare_progress_cancel_and_resume(server, tiny_work, tmp_path):
    dataset, work = tiny_work
    out = tmp_path / "work"
    rid = server.send("prepare", dataset=str(dataset), out=str(out), method="git-consistent")
    first = server.read()
    assert first["id"] == rid and first["progress"]["total"] >= 1, first
    server.proc.stdin.write(json.dumps({"id": 99, "cmd": "cancel", "args": {"target": rid}}) + "\n")
    seen = []
    while True:
        message = server.read()
        if message["id"] == 99:
            assert message["result"] == {"cancelled": rid}
        elif "progress" in message:
            seen.append(message["progress"])
        else:
            break
    assert message == {"id": rid, "ok": False, "kind": "cancelled", "error": "prepare cancelled"}
    assert json.loads((out / "manifest.json").read_text())["status"] == "running"
    start = time.perf_counter()
    answer, progress = server.call("prepare", dataset=str(dataset), out=str(out), method="git-consistent")
    assert answer["ok"], answer
    result = answer["result"]
    assert result["gaussians"] == len(GaussianScene.load(work / "scene.ply")) and result["up_to_date"] is False
    assert progress and progress[-1]["stage"] == "writing" and progress[-1]["done"] == 1
    assert all(p["elapsed"] <= time.perf_counter() - start + 1 for p in progress)
    assert server.call("prepare", dataset=str(dataset), out=str(out), method="git-consistent")[0]["result"][
        "up_to_date"] is True


def test_shutdown_exits(tiny_work):
    s = Server()
    assert s.call("shutdown")[0] == {"id": 1, "ok": True, "result": {}}
    assert s.proc.wait(timeout=30) == 0


def test_end_of_input_ends_the_server():
    s = Server()
    s.proc.stdin.close()
    assert s.proc.wait(timeout=30) == 0


def test_query_text_reaches_the_language_field(server, loaded, tmp_path):
    """With CLIP features in WORK the text query runs gs_core.language.text_query: features that name no
    model (as a stand-in embedder leaves them) are its one-line error; the loaded scene is kept."""
    import shutil

    from gs_core.language import LanguageField

    wd, levels, _ = loaded
    work = tmp_path / "work"
    shutil.copytree(wd.root, work)
    n = levels.labels.shape[1]
    LanguageField(np.eye(n, 4, dtype=np.float32), np.ones(n, np.float32), {}).save(work)
    assert server.call("load", work=str(work))[0]["result"]["text"] is True
    answer, _ = server.call("query_text", text="red chair", out=str(work / "t.npy"))
    assert answer["kind"] == "user" and answer["error"].startswith("query_text: the work folder's CLIP features "
                                                                   "name no model"), answer
    assert server.call("load", work=str(wd.root))[0]["ok"]


def test_a_negative_click_in_the_same_finest_instance_selects_a_part(server, loaded, tmp_path):
    """Positive and negative clicks on one instance of the finest level (no level separates them): the
    answer is the library's 3D split of it (:meth:`gs_core.query.LabelLevels.from_clicks` with the
    centres and colours), a part of that instance, and says so (``partial``); a plain click's answer does not."""
    from gs_core.query import pixel_labels, pixel_weights

    wd, levels, gaussians = loaded
    cam = wd.cameras()[0]
    proj = project(gaussians, cam)
    finest = levels.labels[0].astype(np.int64)
    grid = np.stack(np.meshgrid(np.arange(2, cam.width, 4), np.arange(2, cam.height, 4)), -1).reshape(-1, 2)
    owner = pixel_labels(proj, finest, grid)
    big = np.bincount(owner[owner >= 0]).argmax()
    on = grid[owner == big]
    far = np.linalg.norm(on[:, None] - on[None], axis=-1)
    i, j = np.unravel_index(np.argmax(far), far.shape)
    pos, neg = on[i], on[j]
    out = str(server.scratch / "p.npy")
    plain, _ = server.call("query_pixels", camera=camera_json(cam), positive=[pos.tolist()], level=0.0, out=out)
    assert plain["result"]["partial"] is False and plain["result"]["instances"] == [int(big)]
    answer, _ = server.call("query_pixels", camera=camera_json(cam), positive=[pos.tolist()],
                            negative=[neg.tolist()], level=0.0, out=out)
    got = rows(answer)
    expected = levels.from_clicks(0.0, pixel_weights(proj, pos[None]), pixel_weights(proj, neg[None]),
                                  means=gaussians.means.numpy(), colors=GaussianScene.load(wd.scene_path).sh_dc)
    assert np.array_equal(got, np.flatnonzero(expected.selected))
    assert answer["result"]["partial"] is True and answer["result"]["instances"] == [int(big)]
    assert 0 < len(got) < int((finest == big).sum())


def test_refine_adds_a_part_where_add_adds_the_other_object_whole(server, loaded, tmp_path):
    """A click on a small object, then one on another more than twice its size: appended with the default
    rule (the add-on's shift-click) the second instance comes whole, with ``rule: "split-support"`` (its
    shift+ctrl-click, a refinement) only a part of it; both the library's rows. The rule stays with its
    clicks: a re-cut at the same level and a later addition (on the first object) keep the part; an
    addition on the second object then adds it whole. An unknown rule is a one-line user error."""
    from click_scenes import add_and_refine_clicks
    from gs_core.query import PER_CLICK_RULES
    from gs_core.server_requests import CLICK_RULES

    wd, _, _ = loaded
    cam = wd.cameras()[0]
    a, b, add, refine = add_and_refine_clicks(wd.root, cam)
    assert np.isin(refine, add).all() and len(refine) < len(add)
    out, camera = str(server.scratch / "r.npy"), camera_json(cam)

    def click(pixel, **kw):
        return server.call("query_pixels", camera=camera, positive=[pixel], level=0.5, out=out, **kw)[0]

    click(a)
    assert np.array_equal(rows(click(b, append=True)), add)
    click(a)
    refined = click(b, append=True, rule="split-support")
    assert np.array_equal(rows(refined), refine) and refined["result"]["partial"] is True
    assert np.array_equal(rows(server.call("query_level", level=0.5, out=out)[0]), refine)
    assert np.array_equal(rows(click(a, append=True)), refine)  # an addition after it: b stays refined
    assert np.array_equal(rows(click(b, append=True, rule="split")), add)
    answer = click(b, append=True, rule="refine")
    assert answer["kind"] == "user" and "'rule' must be one of split, split-support" in answer["error"], answer
    assert np.array_equal(rows(server.call("query_level", level=0.5, out=out)[0]), add)  # nothing changed
    assert CLICK_RULES == PER_CLICK_RULES

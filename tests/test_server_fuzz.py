"""One bad line never takes the backend down: a few thousand mutated request lines to one
``python -m gs_core.server`` on the tiny prepared scene. Each line gets exactly one answer, a
``user`` or ``protocol`` error or a real result (never ``internal``: every mistake is caught by the
guard or the command), a ping after it is answered (the server is alive and in order), no file
outside the work folder and the server's scratch folder is written, the work folder's own files are
unchanged, and end of input ends the process with status 0."""

import hashlib
import json
import queue
import random
import subprocess
import sys
import threading
import time

from pathlib import Path

from gs_core.pipeline.workdir import OWN_FILES, WorkDir
from gs_core.server_requests import valid_id

LINES = 2500


class Client:
    """The server's stdout is read on a thread, so a server that hangs fails the test (no answer in
    ``TIMEOUT`` s) instead of hanging it."""

    TIMEOUT = 60

    def __init__(self, cwd):
        self.proc = subprocess.Popen([sys.executable, "-m", "gs_core.server"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=cwd)
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        self.ready = self.read()

    def _pump(self) -> None:
        for line in iter(self.proc.stdout.readline, b""):
            self.lines.put(line)
        self.lines.put(b"")  # end of output

    def read(self) -> dict:
        try:
            line = self.lines.get(timeout=self.TIMEOUT)
        except queue.Empty:
            self.proc.kill()
            raise AssertionError(f"no answer in {self.TIMEOUT} s: the server hangs") from None
        assert line, f"the server exited (status {self.proc.wait()})"
        return json.loads(line)  # every stdout line is JSON

    def write(self, raw: bytes) -> None:
        self.proc.stdin.write(raw + b"\n")
        self.proc.stdin.flush()

    def answer(self) -> dict:
        while True:
            message = self.read()
            if "progress" not in message:
                return message


def _deep(n: int):
    value = 0
    for _ in range(n):
        value = [value]
    return value


def _nasty(work, tmp_path) -> list:
    return [None, True, False, 0, -1, 1, 2, 5, 0.5, -0.0, 1e308, -1e308, 10**30, -(10**30), 2**63, "", " ", ".",
            "..", "/", "x" * 5000, "\u0000", "NaN", "nan", "Infinity", "ping", [], [1], [[1, 2]], [[1e9, 1e9]],
            [[0, 0], [1]], [["a", "b"]], [[True, False]], {}, {"a": 1}, {"checkpoint": 5}, {"mask_views": -3},
            _deep(12), _deep(40), str(work / "scene.ply"), str(work / "labels.npy"), str(work / "levels.npz"),
            str(work / "cache" / "x.npy"), str(work / "sub" / "x.npy"), str(work), str(tmp_path / "outside.npy"),
            str(tmp_path / "outside"), "../outside.npy", str(work / ".." / "outside.npy")]


def _bases(work, scratch, camera) -> list[dict]:
    out = str(scratch / "fuzz.npy")
    return [
        {"cmd": "ping", "args": {}},
        {"cmd": "load", "args": {"work": str(work)}},
        {"cmd": "labels", "args": {"level": 0.5, "out": out}},
        {"cmd": "query_level", "args": {"level": 1.0, "out": out}},
        {"cmd": "query_pixels", "args": {"camera": camera, "positive": [[30, 20]], "negative": [[5, 40]],
                                         "level": 0.5, "append": False, "out": out, "backend": "auto"}},
        {"cmd": "query_text", "args": {"text": "red chair", "out": out}},
        {"cmd": "prepare", "args": {"dataset": str(scratch / "no_dataset"), "out": str(scratch / "w"),
                                    "method": "git-consistent", "theta": 0.5, "force": False,
                                    "sam": {"checkpoint": str(scratch / "none.pth"), "mask_views": 2}}},
        {"cmd": "cancel", "args": {"target": 123456}},
        {"cmd": "version"},
    ]


COMMANDS = ["ping", "version", "load", "labels", "query_level", "query_pixels", "query_text", "prepare", "cancel",
            "frobnicate", "", "shutdown!"]


def _pick(rng: random.Random, nasty: list):
    return json.loads(json.dumps(rng.choice(nasty)))  # a copy: later mutations must not change the list


def _mutate(rng: random.Random, base: dict, nasty: list, rid: int) -> tuple[bytes, object]:
    """A mutated request line and the id it carries (answers echo it, or null)."""
    request = json.loads(json.dumps(base))
    request["id"] = rid
    for _ in range(rng.randint(1, 3)):
        args = request.get("args") if isinstance(request.get("args"), dict) else None
        what = rng.random()
        if what < 0.45 and args:
            key = rng.choice(sorted(args))
            if rng.random() < 0.15:
                del args[key]
            elif isinstance(args[key], dict) and args[key] and rng.random() < 0.5:
                inner = rng.choice(sorted(args[key]))
                args[key][inner] = _pick(rng, nasty)
            else:
                args[key] = _pick(rng, nasty)
        elif what < 0.55:
            request["args"] = _pick(rng, nasty)
        elif what < 0.65:
            request["cmd"] = rng.choice(COMMANDS + [_pick(rng, nasty)])
        elif what < 0.72:
            request["id"] = _pick(rng, nasty)
        elif what < 0.76:
            request.pop(rng.choice(["id", "cmd", "args"]), None)
        elif args is not None:
            args[rng.choice(["level", "target", "extra", "out", "work"])] = _pick(rng, nasty)
    line = json.dumps(request).encode()
    rid = request.get("id")
    raw = rng.random()
    if raw < 0.08:  # a torn line
        line = line[:rng.randint(1, max(1, len(line) - 1))]
    elif raw < 0.14:  # a flipped byte (never a newline, which would make two lines)
        k = rng.randrange(len(line))
        line = line[:k] + bytes([rng.choice([b for b in range(1, 256) if b not in (10, 13)])]) + line[k + 1:]
    elif raw < 0.17:
        line = b"\xff\xfe" + line
    return line, (rid if raw >= 0.17 else ...)  # a byte-level change may change the id too


def _fixed_lines() -> list[bytes]:
    """The lines issue 23 found deadly, and their relatives."""
    return [b"[" * 100_000, b"{" * 100_000, b'{"id": 1, "cmd": "ping", "args": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
            b'{"id": 2, "cmd": "cancel", "args": {"target": [1]}}', b'{"id": 3, "cmd": "cancel", "args": {"target": {}}}',
            b'{"id": [1], "cmd": "ping"}', b'{"id": NaN, "cmd": "ping"}', b'{"id": Infinity, "cmd": "ping"}',
            b'{"id": {"a": 1}, "cmd": "ping"}', b'{"id": 1e400, "cmd": "ping"}', b'{"id": true, "cmd": "ping"}',
            b'{"id": 4, "cmd": "labels", "args": {"level": NaN, "out": "x.npy"}}',
            b'{"id": 5, "cmd": "prepare", "args": {"dataset": "d", "out": "w", "theta": 5}}',
            b'{"id": 6, "cmd": "prepare", "args": {"dataset": "d", "out": "w", "theta": -1}}',
            b'{"id": 7, "cmd": "query_pixels", "args": {"camera": {"fx": "a"}}}',
            b'"just a string"', b"null", b"[]", b"42", b"\xc3\x28", b"\x00\x01\x02", b'{"cmd": 1}',
            b'{"id": 8, "cmd": "ping", "args": []}', b'{"id": 9, "cmd": "ping", "args": null}',
            b'{"id": 10, "cmd": "ping"' + b" " * 2_000_000 + b"}"]


def _digest(work) -> dict:
    return {name: hashlib.sha1((work / name).read_bytes()).hexdigest() for name in OWN_FILES if (work / name).is_file()}


def test_fuzzed_lines_never_take_the_server_down(tiny_work, tmp_path):
    _, work = tiny_work
    before = _digest(work)
    beside_work = set(work.parent.iterdir())
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    client = Client(cwd)
    scratch = Path(client.ready["scratch"])
    cam = WorkDir(work).cameras()[0]
    camera = {"fx": cam.fx, "fy": cam.fy, "cx": cam.cx, "cy": cam.cy, "width": cam.width, "height": cam.height,
              "world_to_camera": cam.world_to_camera.tolist()}
    nasty = _nasty(work, tmp_path)
    bases = _bases(work, scratch, camera)
    rng = random.Random(23)
    client.write(json.dumps({"id": 0, "cmd": "load", "args": {"work": str(work)}}).encode())
    assert client.answer()["ok"]
    lines = [(line, ...) for line in _fixed_lines()]  # (their ids vary: not compared)
    lines += [_mutate(rng, rng.choice(bases), nasty, 1000 + k) for k in range(LINES)]
    kinds: dict[str, int] = {}
    start = time.perf_counter()
    for k, (line, rid) in enumerate(lines):
        client.write(line)
        answer = client.answer()
        assert set(answer) >= {"id", "ok"}, (line[:200], answer)
        kind = "ok" if answer["ok"] else answer["kind"]
        kinds[kind] = kinds.get(kind, 0) + 1
        assert kind in ("ok", "user", "protocol", "cancelled"), (line[:300], answer)
        if rid is not ... and valid_id(rid):
            assert answer["id"] in (rid, None), (line[:300], answer)
        if not answer["ok"]:
            assert "\n" not in answer["error"] and len(answer["error"]) < 2000
        client.write(json.dumps({"id": f"alive {k}", "cmd": "ping"}).encode())
        alive = client.answer()
        assert alive["id"] == f"alive {k}" and alive["ok"], (line[:300], answer, alive)
    seconds = time.perf_counter() - start
    client.proc.stdin.close()
    assert client.proc.wait(timeout=60) == 0
    print(f"{len(lines)} lines in {seconds:.1f} s: {kinds}")
    assert kinds.get("user", 0) > 100 and kinds.get("protocol", 0) > 100 and kinds.get("ok", 0) > 100
    assert _digest(work) == before  # the work folder's own files: untouched
    assert sorted(tmp_path.iterdir()) == [cwd] and sorted(cwd.iterdir()) == []  # "outside.npy" never written
    assert set(work.parent.iterdir()) == beside_work
    assert not scratch.exists()  # the server removed what it wrote there, and its folder

"""The add-on's side of the gs_core backend (``python -m gs_core.server``): start it, talk JSON lines,
turn every failure into one :class:`BackendError`; find, check and set up the interpreter it runs in.

Blender-free and stdlib-only (numpy for the answers' arrays), so tests drive it headless. The protocol
is documented in ``gs_core/server.py``. The scene is never touched here: callers get a complete,
validated answer or an exception, and only then edit anything.

A reader thread moves the server's stdout lines into a queue and another keeps the last lines of its
stderr (for crash reports), so :meth:`Backend.poll` never blocks: a modal operator calls it from a
timer and the UI keeps running; :meth:`Backend.call` is the blocking form for background mode.
"""

from __future__ import annotations

import collections
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

PROTOCOL = 1
ENV_PYTHON = "GS_CORE_PYTHON"  # an interpreter with gs_core, chosen outside Blender
START_TIMEOUT = 120.0  # the server imports torch before its first answer: slow on a busy machine
CALL_TIMEOUT = 120.0
CANCEL_GRACE = 3.0  # seconds a cancelled command gets to stop by itself before terminate, then kill


class BackendError(Exception):
    """Anything that went wrong with the backend, as one line for the user.

    ``kind``: ``user`` (the input: the message says which), ``cancelled``, ``internal`` (a gs_core
    bug), ``protocol`` (a bad request), ``crashed``, ``timeout``, ``garbage`` (an answer that is not
    the protocol), ``start`` (the interpreter does not run the server). ``log``: the server's last
    stderr lines, for the console.
    """

    def __init__(self, kind: str, message: str, log: str = ""):
        super().__init__(message)
        self.kind, self.log = kind, log


@dataclass
class Request:
    """One command on its way: progress arrives in ``progress``; ``result`` once answered."""

    id: int
    cmd: str
    on_progress: Callable[[dict], None] | None = None
    progress: dict = field(default_factory=dict)
    result: dict | None = None
    error: BackendError | None = None
    started: float = field(default_factory=time.monotonic)

    @property
    def done(self) -> bool:
        return self.result is not None or self.error is not None


class Backend:
    """One warm ``python -m gs_core.server`` process.

    ``python``: the interpreter; ``args``: what follows it (tests run stand-in servers this way).
    """

    def __init__(self, python: str, args: tuple[str, ...] = ("-m", "gs_core.server"), *, env: dict | None = None,
                 cwd: str | None = None):
        self.python, self.args, self.env, self.cwd = str(python), tuple(args), env, cwd
        self.proc: subprocess.Popen | None = None
        self.version: str | None = None
        self.features: frozenset[str] = frozenset()  # the server's optional request fields (gs_core.server)
        self._lines: queue.Queue = queue.Queue()
        self._log: collections.deque = collections.deque(maxlen=40)
        self._pending: dict[int, Request] = {}
        self._pumps: list[threading.Thread] = []
        self._next_id = 1
        self._broken: BackendError | None = None

    # ---- process --------------------------------------------------------------------------------
    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None and self._broken is None

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Start the server and wait for its ``ready`` line (an error names what went wrong)."""
        if self.alive:
            return
        self.stop()
        env = {**os.environ, **(self.env or {}), "PYTHONUNBUFFERED": "1"}
        self._lines, self._log, self._pending, self._broken = queue.Queue(), collections.deque(maxlen=40), {}, None
        try:
            self.proc = subprocess.Popen([self.python, *self.args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, env=env, cwd=self.cwd, text=True, encoding="utf-8",
                                         errors="replace", bufsize=1)
        except OSError as exc:
            raise BackendError("start", f"cannot start the backend {self.python}: {exc.strerror or exc}") from None
        self._pumps = [threading.Thread(target=_pump, args=(self.proc.stdout, self._lines.put, True), daemon=True),
                       threading.Thread(target=_pump, args=(self.proc.stderr, self._log.append), daemon=True)]
        for thread in self._pumps:
            thread.start()
        deadline = time.monotonic() + timeout
        try:
            message = None
            while message is None or message.get("event") != "ready":
                if time.monotonic() > deadline:
                    raise BackendError("timeout", f"no answer in {timeout:.0f} s", self.log())
                message = self._next_message(min(0.5, deadline - time.monotonic()))
            if message.get("protocol") != PROTOCOL:
                raise BackendError("start", f"the backend speaks protocol {message.get('protocol')!r}, this add-on "
                                            f"{PROTOCOL}; update gs_core or the add-on")
        except BackendError as exc:
            log = exc.log or self.log()
            self.kill()
            raise BackendError("start", f"{self.python} does not run the gs_core backend: {exc}", log) from None
        self.version = message.get("version")
        self.features = frozenset(str(f) for f in message.get("features") or ())

    def stop(self, grace: float = 2.0) -> None:
        """Ask the server to exit; terminate, then kill, if it does not."""
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None and self._broken is None:
            try:
                proc.stdin.write(json.dumps({"id": 0, "cmd": "shutdown"}) + "\n")
                proc.stdin.flush()
            except OSError:
                pass
        _end(proc, grace)
        self._close_pipes()
        self.proc = None
        for request in self._pending.values():
            if not request.done:
                request.error = BackendError("cancelled", f"{request.cmd}: the backend was stopped")
        self._pending = {}

    def _close_pipes(self) -> None:
        for thread in self._pumps:  # the process has ended: its pipes reach EOF
            thread.join(timeout=1.0)
        for stream in (self.proc.stdout, self.proc.stderr):
            try:
                stream.close()
            except OSError:
                pass

    def log(self) -> str:
        """The backend's last stderr lines."""
        return "".join(self._log)

    # ---- requests -------------------------------------------------------------------------------
    def submit(self, cmd: str, on_progress: Callable[[dict], None] | None = None, **args) -> Request:
        """Send a command (starting the server if needed); poll the returned request."""
        self.start()
        request = Request(self._next_id, cmd, on_progress)
        self._next_id += 1
        self._pending[request.id] = request
        try:
            self.proc.stdin.write(json.dumps({"id": request.id, "cmd": cmd, "args": args}) + "\n")
            self.proc.stdin.flush()
        except OSError:
            self._crashed()
        return request

    def poll(self, request: Request, wait: float = 0.0) -> dict | None:
        """The request's result once answered, else None; raises its :class:`BackendError`.
        ``wait``: seconds to wait for a message first (0: do not block)."""
        deadline = time.monotonic() + wait
        while not request.done:
            message = self._next_message(max(0.0, deadline - time.monotonic()))
            if message is None:
                break
            self._dispatch(message)
        if request.error is not None:
            raise request.error
        return request.result

    def call(self, cmd: str, timeout: float = CALL_TIMEOUT, on_progress=None, should_cancel=None, **args) -> dict:
        """Blocking: send ``cmd`` and return its result. ``timeout`` counts from the last message (a
        long prepare that reports progress does not time out); ``should_cancel()`` -> True cancels."""
        request = self.submit(cmd, on_progress, **args)
        last, seen = time.monotonic(), request.progress
        while True:
            result = self.poll(request, wait=0.1)
            if result is not None:
                return result
            if request.progress is not seen:  # each progress message is a new dict
                last, seen = time.monotonic(), request.progress
            if should_cancel is not None and should_cancel():
                self.cancel(request)
            if time.monotonic() - last > timeout:
                log = self.log()
                self.kill()
                raise BackendError("timeout", f"{cmd}: no answer from the backend in {timeout:.0f} s; it was "
                                              "stopped", log)

    def cancel(self, request: Request, grace: float = CANCEL_GRACE) -> None:
        """Cancel ``request``: ask the server, wait ``grace`` seconds, then terminate, then kill.
        Raises the request's ``cancelled`` error (or its answer's error, if it ended first)."""
        if not request.done and self.alive:
            try:
                self.proc.stdin.write(json.dumps({"id": 0, "cmd": "cancel", "args": {"target": request.id}}) + "\n")
                self.proc.stdin.flush()
            except OSError:
                pass
            deadline = time.monotonic() + grace
            while not request.done and time.monotonic() < deadline and self.alive:
                try:
                    self.poll(request, wait=0.05)
                except BackendError:
                    break
        if not request.done:
            self.kill()
            request.error = BackendError("cancelled", f"{request.cmd} cancelled (the backend was stopped)")
        if request.error is None:
            request.error = BackendError("cancelled", f"{request.cmd} cancelled")
        raise request.error

    def kill(self) -> None:
        """Terminate, then kill, at once (no shutdown request): for a backend that does not answer."""
        if self.proc is not None:
            _end(self.proc, 0.0)
        self._broken = None
        self.stop()

    # ---- messages -------------------------------------------------------------------------------
    def _next_message(self, timeout: float) -> dict | None:
        """The next protocol message, None after ``timeout`` s; a dead or babbling server raises."""
        if self._broken is not None:
            raise self._broken
        try:
            line = self._lines.get(timeout=max(timeout, 0.0)) if timeout > 0 else self._lines.get_nowait()
        except queue.Empty:
            if self.proc is not None and self.proc.poll() is not None and self._lines.empty():
                self._crashed()
            return None
        if line is None:  # stdout closed
            self._crashed()
        try:
            message = json.loads(line)
        except ValueError:
            message = None
        if not isinstance(message, dict):
            self._garbage(line)
        return message

    def _dispatch(self, message: dict) -> None:
        rid = message.get("id")
        if rid == 0 or "event" in message:  # our own cancel/shutdown acknowledgements, events
            return
        request = self._pending.get(rid)
        if request is None:
            if rid is None and message.get("ok") is False:  # the server could not read a line of ours
                error = BackendError(message.get("kind", "protocol"), str(message.get("error")), self.log())
                for pending in self._pending.values():
                    pending.error = pending.error or error
                return
            self._garbage(json.dumps(message))
        if "progress" in message and isinstance(message["progress"], dict):
            request.progress = message["progress"]
            if request.on_progress is not None:
                request.on_progress(message["progress"])
            return
        if message.get("ok") is True and isinstance(message.get("result"), dict):
            request.result = message["result"]
        elif message.get("ok") is False and isinstance(message.get("error"), str):
            request.error = BackendError(str(message.get("kind", "internal")), message["error"], self.log())
        else:
            self._garbage(json.dumps(message))
        del self._pending[rid]

    def _crashed(self) -> None:
        status = None
        if self.proc is not None:
            _end(self.proc, 1.0)  # stdout closed: it is exiting (or is made to)
            status = self.proc.returncode
            self._pumps[-1].join(timeout=1.0)  # its last stderr lines
        log = self.log()
        last = next((line.strip() for line in reversed(log.splitlines()) if line.strip()), "no message")
        self._broken = BackendError("crashed", f"the backend exited (status {status}): {last}", log)
        self._finish_broken()

    def _garbage(self, line: str) -> None:
        self._broken = BackendError("garbage", f"the backend answered something that is not the gs_core protocol: "
                                               f"{line.strip()[:120]!r}; it was stopped", self.log())
        self._finish_broken()

    def _finish_broken(self) -> None:
        error = self._broken
        if self.proc is not None:
            _end(self.proc, 0.0)
        for request in self._pending.values():
            request.error = request.error or error
        raise error


def _pump(stream, put, end_marker: bool = False) -> None:
    """Thread: each line of ``stream`` to ``put``; then None if ``end_marker``."""
    try:
        for line in stream:
            put(line)
    except (OSError, ValueError):  # closed under us
        pass
    if end_marker:
        put(None)


def _end(proc: subprocess.Popen, grace: float) -> None:
    """Wait ``grace`` s for ``proc`` to exit, then terminate (SIGTERM), then kill (SIGKILL)."""
    for step in (None, proc.terminate, proc.kill):
        if step is not None:
            try:
                step()
            except OSError:
                pass
        try:
            proc.wait(timeout=grace if step is None else 2.0)
            break
        except subprocess.TimeoutExpired:
            continue
    try:
        proc.stdin.close()
    except (OSError, AttributeError):
        pass


# ---- answers ------------------------------------------------------------------------------------

def load_rows(result: dict, num_gaussians: int):
    """The selected rows [K] int64 of a query answer, checked (file, dtype, range) before use."""
    import numpy as np

    path = result.get("rows") if isinstance(result, dict) else None
    if not isinstance(path, str):
        raise BackendError("garbage", f"the backend's answer names no rows file: {result!r}")
    try:
        rows = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise BackendError("garbage", f"{path}: the backend's selection is unreadable ({exc})") from None
    if rows.ndim != 1 or not np.issubdtype(rows.dtype, np.integer):
        raise BackendError("garbage", f"{path}: expected integer rows [K], got {rows.dtype} {rows.shape}")
    if rows.size and (rows.min() < 0 or rows.max() >= num_gaussians):
        raise BackendError("garbage", f"{path}: rows {rows.min()}..{rows.max()} outside the {num_gaussians} "
                                      "Gaussians of the prepared scene")
    if result.get("count") != len(rows):
        raise BackendError("garbage", f"{path}: {len(rows)} rows, the answer said {result.get('count')}")
    return rows.astype(np.int64)


# ---- the interpreter ----------------------------------------------------------------------------

@dataclass
class InterpreterCheck:
    ok: bool
    message: str  # one line: the version found, or what is wrong and what to do
    version: str | None = None


CHECK_CODE = ("import json, sys, gs_core, torch; import gs_core.server; "
              "print(json.dumps({'version': gs_core.__version__, 'torch': torch.__version__, "
              "'python': sys.version.split()[0]}))")


def check_interpreter(python: str, timeout: float = 120.0) -> InterpreterCheck:
    """Does ``python`` run the gs_core backend? Imports gs_core, torch and the server there."""
    if not python:
        return InterpreterCheck(False, "no gs_core Python set: choose one, or press Set up backend")
    path = Path(python)
    if not path.is_file():
        return InterpreterCheck(False, f"{python}: no such file")
    if not os.access(path, os.X_OK):
        return InterpreterCheck(False, f"{python}: not executable")
    try:
        # from a neutral folder: `-c` puts the current one first on sys.path, and a checkout there would hide
        # what the environment itself has
        done = subprocess.run([str(path), "-c", CHECK_CODE], capture_output=True, text=True, timeout=timeout,
                              cwd=tempfile.gettempdir())
    except subprocess.TimeoutExpired:
        return InterpreterCheck(False, f"{python}: importing gs_core took more than {timeout:.0f} s")
    except OSError as exc:
        return InterpreterCheck(False, f"{python}: cannot run it ({exc.strerror or exc})")
    if done.returncode != 0:
        last = next((l for l in reversed(done.stderr.splitlines()) if l.strip()), f"exit status {done.returncode}")
        hint = " (install gs-core there, or press Set up backend)" if "ModuleNotFoundError" in last else ""
        return InterpreterCheck(False, f"{python}: {last.strip()}{hint}")
    try:
        info = json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return InterpreterCheck(False, f"{python}: unexpected output {done.stdout[:80]!r}")
    return InterpreterCheck(True, f"gs_core {info['version']} (torch {info['torch']}, Python {info['python']})",
                            info["version"])


def venv_python(venv: str | os.PathLike) -> Path:
    """The interpreter of a virtual environment folder."""
    venv = Path(venv)
    return venv / "Scripts" / "python.exe" if os.name == "nt" else venv / "bin" / "python"


def candidate_interpreters(setup_dir: str | os.PathLike | None = None) -> list[str]:
    """Where a gs_core interpreter may be, most explicit first: ``$GS_CORE_PYTHON``, the venv that
    Set up backend makes, a ``.venv`` beside the add-on's source checkout, and this very Python when
    it is not Blender's (e.g. the bpy wheel in the gs_core venv)."""
    found = []
    if os.environ.get(ENV_PYTHON):
        found.append(os.environ[ENV_PYTHON])
    if setup_dir:
        found.append(str(venv_python(setup_dir)))
    checkout = Path(__file__).resolve().parent.parent
    found.append(str(venv_python(checkout / ".venv")))
    if Path(sys.executable).name.startswith("python"):
        found.append(sys.executable)
    unique = []
    for path in found:
        if path not in unique:
            unique.append(path)
    return unique


def detect_interpreter(setup_dir=None, check=check_interpreter) -> tuple[str | None, str]:
    """The first candidate that passes :func:`check_interpreter`, with its message; else
    (None, what was tried)."""
    tried = []
    for python in candidate_interpreters(setup_dir):
        if not Path(python).is_file():
            continue
        result = check(python)
        if result.ok:
            return python, result.message
        tried.append(result.message)
    return None, "no gs_core Python found" + (f" ({'; '.join(tried)})" if tried else "") + \
        ": press Set up backend, or set the path"


# ---- Set up backend -----------------------------------------------------------------------------

def setup_backend(venv: str | os.PathLike, *, packages=("gs-core",), find_links=(), no_index: bool = False,
                  inherit: str | None = None, base_python: str | None = None,
                  progress: Callable[[str, float], None] | None = None,
                  should_cancel: Callable[[], bool] | None = None) -> str:
    """Make a virtual environment at ``venv`` and install ``packages`` into it; returns its Python.

    ``find_links`` / ``no_index``: local wheel folders (an offline install, or a gs-core wheel made
    with ``pip wheel --no-build-isolation --no-deps -w DIR``). ``inherit``: the Python of another
    environment whose packages the new one may use (a large torch install is not copied again; a
    ``.pth`` file lists its site-packages). ``progress(message, fraction)`` reports each step and
    pip's lines; ``should_cancel()`` -> True stops pip (terminate, then kill) and raises a
    ``cancelled`` :class:`BackendError`. Runs outside Blender's Python: ``base_python`` (default
    this one) makes the venv.
    """
    say = progress or (lambda message, fraction: None)
    venv = Path(venv)
    python = venv_python(venv)
    base = base_python or (sys.executable if Path(sys.executable).name.startswith("python") else None)
    if base is None:  # Blender's sys.executable is blender itself; its Python is in sys.prefix
        base = _blender_python()
    say(f"making the environment {venv}", 0.02)
    _run([base, "-m", "venv", str(venv)], "venv", say, 0.02, 0.1, should_cancel)
    if inherit:
        site = _site_packages(inherit)
        own = _site_packages(str(python))
        (Path(own[0]) / "_gs_core_inherit.pth").write_text("\n".join(site) + "\n")
        # the venv's bundled setuptools (65 on Python 3.11) would shadow the inherited one, and torch
        # 2.13 requires setuptools >= 77: pip would then try to fetch it
        _run([str(python), "-m", "pip", "uninstall", "-y", "-q", "setuptools"], "pip uninstall", say, 0.08, 0.1,
             should_cancel)
        say(f"using the packages of {inherit}", 0.1)
    command = [str(python), "-m", "pip", "install", "--progress-bar", "off"]
    for folder in find_links:
        command += ["--find-links", str(folder)]
    if no_index:
        command.append("--no-index")
    say("installing " + " ".join(packages), 0.1)
    _run(command + list(packages), "pip install", say, 0.1, 0.9, should_cancel)
    say("checking the new backend", 0.92)
    result = check_interpreter(str(python))
    if not result.ok:
        raise BackendError("start", f"the new environment does not run gs_core: {result.message}")
    say(f"ready: {result.message}", 1.0)
    return str(python)


def _blender_python() -> str:
    for name in ("python3.11", "python3", "python"):
        candidate = Path(sys.prefix) / "bin" / name
        if candidate.is_file():
            return str(candidate)
    raise BackendError("start", f"cannot find Blender's Python under {sys.prefix}; set a Python to make the venv")


def _site_packages(python: str) -> list[str]:
    done = subprocess.run([python, "-c", "import json, site; print(json.dumps(site.getsitepackages()))"],
                          capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise BackendError("start", f"{python}: cannot read its site-packages ({done.stderr.strip()[-200:]})")
    return json.loads(done.stdout)


def _run(command, what: str, say, start: float, end: float, should_cancel) -> None:
    """Run ``command``, reporting each output line between fractions ``start`` and ``end``."""
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_pump, args=(proc.stdout, lines.put, True), daemon=True).start()
    tail: collections.deque = collections.deque(maxlen=20)
    count = 0
    while True:
        try:
            line = lines.get(timeout=0.1)
        except queue.Empty:
            line = ""
        if line is None:
            break
        if line.strip():
            count += 1
            tail.append(line)
            say(line.strip(), start + (end - start) * (1 - 1 / (1 + count / 20)))
        if should_cancel is not None and should_cancel():
            _end(proc, 0.0)
            raise BackendError("cancelled", f"{what} cancelled")
    status = proc.wait()
    if status != 0:
        last = next((l.strip() for l in reversed(tail) if l.strip()), "")
        raise BackendError("start", f"{what} failed (exit status {status}): {last}", "".join(tail))

"""The add-on's backend client (blender_addon.backend_client, Blender-free): the real gs_core server on a
tiny scene (queries, progress, in-band cancel, the process kept warm), and stand-in servers that
crash, hang or answer garbage, each of which becomes one clear BackendError; answers are validated
before use; the interpreter is checked and detected; Set up backend makes a working venv from a local
wheel folder."""

import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from blender_addon import backend_client as bc

READY = 'import json, sys; print(json.dumps({"event": "ready", "version": "x", "protocol": 1}), flush=True)\n'


def fake(body: str) -> bc.Backend:
    """A stand-in server: says ready, then runs ``body``."""
    return bc.Backend(sys.executable, ("-c", READY + textwrap.dedent(body)))


def camera_json(cam):
    return {"fx": cam.fx, "fy": cam.fy, "cx": cam.cx, "cy": cam.cy, "width": cam.width, "height": cam.height,
            "world_to_camera": cam.world_to_camera.tolist()}


@pytest.fixture(scope="module")
def real():
    backend = bc.Backend(sys.executable)
    yield backend
    backend.stop()


def test_real_backend_queries_and_stays_warm(real, tiny_work, tmp_path):
    from gs_core.pipeline.workdir import WorkDir

    import shutil

    work = tmp_path / "work"  # a copy: the answers written into it must not reach other tests' session fixture
    shutil.copytree(tiny_work[1], work)
    info = real.call("load", work=str(work))
    pid = real.proc.pid
    cam = WorkDir(work).cameras()[0]
    sizes = []
    for level in (0.0, 0.5, 1.0):
        answer = real.call("query_pixels", camera=camera_json(cam), positive=[[30, 20]], level=level,
                           out=str(work / "backend_client_sel.npy"))  # answers go in WORK (or the server's folder)
        rows = bc.load_rows(answer, info["gaussians"])
        sizes.append(len(rows))
    assert 0 < sizes[0] <= sizes[1] <= sizes[2] < info["gaussians"]
    assert real.proc.pid == pid and real.version == "0.1.0"  # one process for all of them
    with pytest.raises(bc.BackendError, match="no CLIP features in WORK") as err:
        real.call("query_text", text="a mug", out=str(work / "backend_client_t.npy"))
    assert err.value.kind == "user" and real.alive  # a user error does not cost the warm process


def test_real_backend_progress_and_cancel(real, tiny_work, tmp_path):
    dataset, _ = tiny_work
    seen = []
    request = real.submit("prepare", seen.append, dataset=str(dataset), out=str(tmp_path / "w"),
                          method="git-consistent")
    while not seen:
        assert real.poll(request, wait=0.2) is None
    with pytest.raises(bc.BackendError, match="prepare cancelled") as err:
        real.cancel(request)
    assert err.value.kind == "cancelled" and real.alive  # cancelled in-band: still warm
    assert seen[0]["stage"] and seen[0]["total"] >= 1
    result = real.call("prepare", on_progress=seen.append, dataset=str(dataset), out=str(tmp_path / "w"),
                       method="git-consistent")
    assert result["gaussians"] > 0 and seen[-1]["stage"] == "writing"


def test_crashing_backend_is_a_clear_error(tmp_path):
    backend = fake("""
        sys.stdin.readline()
        print("Traceback (most recent call last):\\nMemoryError: out of memory in the kernel", file=sys.stderr)
        sys.exit(3)
    """)
    with pytest.raises(bc.BackendError) as err:
        backend.call("ping", timeout=30)
    assert err.value.kind == "crashed"
    assert str(err.value) == "the backend exited (status 3): MemoryError: out of memory in the kernel"
    assert "Traceback" in err.value.log and not backend.alive
    backend.stop()


def test_hanging_backend_is_cancelled_then_killed():
    backend = fake("""
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # only SIGKILL ends it
        for line in sys.stdin:
            time.sleep(3600)
    """)
    request = backend.submit("prepare")
    assert backend.poll(request, wait=0.3) is None
    proc = backend.proc
    start = time.monotonic()
    with pytest.raises(bc.BackendError, match="prepare cancelled") as err:
        backend.cancel(request, grace=0.5)
    assert err.value.kind == "cancelled" and time.monotonic() - start < 10
    assert proc.poll() == -9  # terminate was ignored: killed
    assert not backend.alive


def test_hanging_backend_times_out():
    backend = fake("""
        for line in sys.stdin:
            pass
    """)
    with pytest.raises(bc.BackendError, match=r"ping: no answer from the backend in 1 s; it was stopped") as err:
        backend.call("ping", timeout=1.0)
    assert err.value.kind == "timeout" and not backend.alive


@pytest.mark.parametrize("answer", ["Hello from some other script", '{"id": 1, "ok": true, "result": 42}',
                                    '{"id": 7, "ok": true, "result": {}}', "[1, 2, 3]"])
def test_garbage_answers_are_a_clear_error(answer):
    backend = fake(f"""
        sys.stdin.readline()
        print({answer!r}, flush=True)
        sys.stdin.readline()
    """)
    with pytest.raises(bc.BackendError, match="answered something that is not the gs_core protocol") as err:
        backend.call("ping", timeout=30)
    assert err.value.kind == "garbage" and answer[:40] in str(err.value).replace("\\'", "'")
    assert not backend.alive
    backend.stop()


def test_start_failures_name_the_interpreter(tmp_path):
    with pytest.raises(bc.BackendError, match="cannot start the backend /no/such/python") as err:
        bc.Backend("/no/such/python").start()
    assert err.value.kind == "start"
    silent = bc.Backend(sys.executable, ("-c", "import time; time.sleep(60)"))
    with pytest.raises(bc.BackendError, match="does not run the gs_core backend: no answer in 1 s"):
        silent.start(timeout=1.0)
    assert silent.proc is None
    wrong = bc.Backend(sys.executable, ("-c", "import sys; sys.exit('No module named gs_core.server')"))
    with pytest.raises(bc.BackendError, match="No module named gs_core.server") as err:
        wrong.start(timeout=30)
    old = fake("").__class__(sys.executable, ("-c", READY.replace('"protocol": 1', '"protocol": 0') + "input()"))
    with pytest.raises(bc.BackendError, match="speaks protocol 0, this add-on 1"):
        old.start(timeout=30)


def test_answers_are_validated(tmp_path):
    path = tmp_path / "rows.npy"
    np.save(path, np.array([0, 3, 9], np.int64))
    assert bc.load_rows({"rows": str(path), "count": 3}, 10).tolist() == [0, 3, 9]
    for rows, n, count, needle in [(np.array([0, 10]), 10, 2, "rows 0..10 outside the 10 Gaussians"),
                                   (np.array([0.5]), 10, 1, "expected integer rows"),
                                   (np.array([1, 2]), 10, 3, "2 rows, the answer said 3")]:
        np.save(path, rows)
        with pytest.raises(bc.BackendError, match=needle):
            bc.load_rows({"rows": str(path), "count": count}, n)
    path.write_bytes(b"not an npy file")
    with pytest.raises(bc.BackendError, match="unreadable"):
        bc.load_rows({"rows": str(path), "count": 1}, 10)
    with pytest.raises(bc.BackendError, match="names no rows file"):
        bc.load_rows({"count": 1}, 10)


def test_interpreter_check_and_detection(tmp_path, monkeypatch):
    good = bc.check_interpreter(sys.executable)
    assert good.ok and good.version == "0.1.0" and good.message.startswith("gs_core 0.1.0 (torch ")
    assert bc.check_interpreter("").message.startswith("no gs_core Python set")
    assert bc.check_interpreter(str(tmp_path / "python")).message == f"{tmp_path / 'python'}: no such file"
    script = tmp_path / "notpython"
    script.write_text("#!/bin/sh\necho 'ModuleNotFoundError: No module named gs_core' >&2; exit 1\n")
    assert bc.check_interpreter(str(script)).message == f"{script}: not executable"
    script.chmod(0o755)
    bad = bc.check_interpreter(str(script))
    assert not bad.ok and "No module named gs_core (install gs-core there, or press Set up backend)" in bad.message
    monkeypatch.setenv(bc.ENV_PYTHON, str(script))
    assert bc.candidate_interpreters()[0] == str(script)
    python, message = bc.detect_interpreter()
    assert python == sys.executable or python.endswith("/.venv/bin/python")  # the env var's one failed
    assert message.startswith("gs_core 0.1.0")
    monkeypatch.setattr(bc, "candidate_interpreters", lambda setup_dir=None: [str(script)])
    python, message = bc.detect_interpreter()
    assert python is None and "No module named gs_core" in message and "Set up backend" in message


@pytest.mark.slow
def test_setup_backend_from_a_local_wheel_folder(tmp_path):
    """Builds a gs-core wheel of this checkout (no native kernels: they compile on first use) and
    installs it offline into a new venv that borrows torch & co. from an environment without gs_core."""
    import site

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "-q", "-w",
                    str(wheels), root], check=True, env={**os.environ, "GS_CORE_NO_NATIVE_BUILD": "1"})
    assert len(list(wheels.glob("gs_core-*.whl"))) == 1
    # "an environment with torch but not gs-core": this venv's site-packages without gs_core
    deps = tmp_path / "deps"
    deps.mkdir()
    for entry in os.scandir(site.getsitepackages()[0]):
        if not entry.name.lower().startswith(("gs_core", "__editable__", "_gs_core")):
            os.symlink(entry.path, deps / entry.name)
    borrowed = tmp_path / "borrowed_python"
    borrowed.write_text(f"#!/bin/sh\nexec {sys.executable} -c 'import json; print(json.dumps([\"{deps}\"]))'\n")
    borrowed.chmod(0o755)
    steps = []
    python = bc.setup_backend(tmp_path / "venv", find_links=[wheels], no_index=True, inherit=str(borrowed),
                              progress=lambda message, fraction: steps.append((message, fraction)))
    assert python == str(tmp_path / "venv" / "bin" / "python")
    fractions = [f for _, f in steps]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert any("gs_core-0.1.0" in m or "gs-core" in m for m, _ in steps)
    assert steps[-1][0].startswith("ready: gs_core 0.1.0")
    where = subprocess.run([python, "-c", "import gs_core; print(gs_core.__file__)"], capture_output=True, text=True,
                           cwd=tmp_path)  # (not the checkout's folder, which `-c` puts first on sys.path)
    assert where.stdout.strip().startswith(str(tmp_path / "venv"))  # the installed copy, not the checkout


@pytest.mark.slow
def test_setup_backend_reports_a_failed_install(tmp_path):
    steps = []
    with pytest.raises(bc.BackendError, match=r"pip install failed \(exit status 1\)") as err:
        bc.setup_backend(tmp_path / "venv", packages=["gs-core-does-not-exist"], find_links=[tmp_path],
                         no_index=True, progress=lambda m, f: steps.append(m))
    assert err.value.kind == "start" and "gs-core-does-not-exist" in err.value.log

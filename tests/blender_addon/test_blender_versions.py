"""The add-on on Blender 4.5 LTS as well as 5.0: every Blender test of this folder (``-m blender``:
registration, import, edit, selection, export, segmentation operators, the built zip installing with
``extensions.package_install_files``) runs again under ``.venv-blender45`` (bpy 4.5, made by
``install.sh`` on Python 3.11) in a subprocess. Skipped, visibly, when that environment is missing.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LTS_PYTHON = ROOT / ".venv-blender45" / "bin" / "python"
INNER = "GS_CORE_BLENDER_LTS_RUN"  # set in the subprocess: do not recurse
TIMEOUT_S = 1200  # ~1.5-3 min on the shared 2-core machine; bpy 4.5 can hang at exit (see below)

pytestmark = pytest.mark.blender


@pytest.mark.slow
@pytest.mark.skipif(bool(os.environ.get(INNER)), reason="already the Blender 4.5 run")
@pytest.mark.skipif(not LTS_PYTHON.exists(), reason=f"no {LTS_PYTHON.parent.parent.name} (./install.sh makes it "
                                                    "on Python 3.11): the add-on is tested on Blender 5.0 only")
def test_blender_tests_pass_on_blender_4_5_lts():
    version = subprocess.run([str(LTS_PYTHON), "-c", "import bpy; print(bpy.app.version_string)"],
                             capture_output=True, text=True, timeout=120)
    assert version.stdout.startswith("4.5"), f"{LTS_PYTHON}: bpy 4.5 expected, got {version.stdout!r} {version.stderr}"
    command = [str(LTS_PYTHON), "-m", "pytest", "-q", "-m", "blender", "-p", "no:cacheprovider", "-rfEs",
               str(Path(__file__).parent)]
    try:
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT_S,
                                env={**os.environ, INNER: "1"})
    except subprocess.TimeoutExpired as exc:
        tail = (exc.stdout or b"")[-3000:]
        # bpy 4.5 as a module deadlocks in a static destructor at interpreter exit while any Python-defined
        # class (e.g. an operator) is still registered: a test that leaves the add-on registered hangs here
        pytest.fail(f"the Blender 4.5 run did not finish in {TIMEOUT_S} s (a class left registered hangs bpy "
                    f"4.5 at exit):\n{tail.decode(errors='replace') if isinstance(tail, bytes) else tail}")
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    print(f"Blender {version.stdout.strip()}: {summary}")
    assert result.returncode == 0, f"{' '.join(command)}\n{result.stdout[-6000:]}\n{result.stderr[-2000:]}"
    assert " passed" in summary and " failed" not in summary

"""build_addon.py: the zip holds the add-on, byte-identical copies of gs_core's numpy-only modules
and the manifest's wheels; the vendored add-on imports without gs_core or torch; Blender's own
extension validator accepts it; it installs with extensions.package_install_files and enables."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import build_addon

PACKAGE = build_addon.read_manifest()["id"]


@pytest.fixture(scope="module")
def built_zip(tmp_path_factory):
    try:
        return build_addon.build(tmp_path_factory.mktemp("dist") / f"{PACKAGE}.zip",
                                 build_addon.ROOT / "build" / "wheels")
    except subprocess.CalledProcessError as exc:  # offline without a wheel cache
        pytest.skip(f"cannot download the manifest's wheels: {exc}")


def test_zip_holds_addon_vendored_gs_core_and_wheels(built_zip):
    names = set(zipfile.ZipFile(built_zip).namelist())
    addon = {p.name for p in build_addon.ADDON_DIR.glob("*.py")} | {"blender_manifest.toml"}
    assert addon <= names
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
    with zipfile.ZipFile(built_zip) as archive:
        for rel in build_addon.VENDORED:
            assert archive.read(f"_vendor/{rel}") == (build_addon.ROOT / rel).read_bytes(), rel
    for wheel in build_addon.read_manifest().get("wheels", []):
        assert wheel.removeprefix("./") in names


def test_vendored_addon_imports_without_gs_core_or_torch(built_zip, tmp_path):
    zipfile.ZipFile(built_zip).extractall(tmp_path / PACKAGE)
    script = f"""
import sys
for blocked in ("gs_core", "torch", "bpy", "plyfile"):
    sys.modules[blocked] = None
sys.path.insert(0, {str(tmp_path)!r})
from {PACKAGE} import splat_attributes, gs_core_modules
assert "_vendor" in gs_core_modules.ply.__file__ and "_vendor" in gs_core_modules.sh.__file__
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert result.stdout.strip() == "ok", result.stderr


@pytest.mark.blender
def test_blender_extension_validator_accepts_the_zip(built_zip):
    pytest.importorskip("bpy")
    passed, report = build_addon.validate(built_zip)
    assert passed, report


@pytest.mark.blender
def test_zip_installs_and_enables(built_zip, splat_ply, tmp_path):
    bpy = pytest.importorskip("bpy")
    bpy.ops.wm.read_factory_settings(use_empty=True)
    repo_dir = tmp_path / "extension_repo"
    bpy.ops.preferences.extension_repo_add(name="gs_test_repo", type='LOCAL', use_custom_directory=True,
                                           custom_directory=str(repo_dir))
    repos = bpy.context.preferences.extensions.repos
    repo = repos[-1]
    module = f"bl_ext.{repo.module}.{PACKAGE}"
    try:
        result = bpy.ops.extensions.package_install_files(filepath=str(built_zip), repo=repo.module,
                                                          enable_on_install=True)
        assert result == {'FINISHED'}
        assert module in bpy.context.preferences.addons
        prefs = bpy.context.preferences.addons[module].preferences
        assert prefs.python_path == "" and prefs.ray_address == ""  # empty: prepare without Ray
        assert "_vendor" in sys.modules[f"{module}.gs_core_modules"].ply.__file__

        path, table = splat_ply(n=200)
        assert bpy.ops.gs_splats.import_ply(filepath=str(path)) == {'FINISHED'}
        assert len(bpy.context.active_object.data.points) == 200
    finally:
        bpy.ops.preferences.addon_disable(module=module)
        bpy.ops.extensions.package_uninstall(repo_index=len(repos) - 1, pkg_id=PACKAGE)
        bpy.ops.preferences.extension_repo_remove(index=len(repos) - 1, remove_files=True)
    with pytest.raises(KeyError):  # disabled: its operators are gone
        bpy.ops.gs_splats.import_ply.get_rna_type()
    assert not Path(repo_dir, PACKAGE).exists()


def test_zip_entries_are_world_readable_and_the_zip_follows_the_umask(tmp_path):
    import os
    import stat

    old = os.umask(0o022)
    try:
        built = build_addon.build(tmp_path / f"{PACKAGE}.zip", build_addon.ROOT / "build" / "wheels")
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"cannot download the manifest's wheels: {exc}")
    finally:
        os.umask(old)
    assert stat.S_IMODE(built.stat().st_mode) == 0o644
    with zipfile.ZipFile(built) as archive:
        modes = {info.filename: stat.S_IMODE(info.external_attr >> 16) for info in archive.infolist()}
        assert "LICENSE" in modes and b"GNU GENERAL PUBLIC LICENSE" in archive.read("LICENSE")
    assert set(modes.values()) == {0o644}, modes

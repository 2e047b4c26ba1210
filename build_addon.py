"""Build the installable Blender extension zip.

The zip holds ``blender_addon/`` at its root, a copy of gs_core's numpy-only modules in ``_vendor/``
(so the add-on and gs_core share one implementation of PLY I/O, SH rotation and transform baking),
and the wheels ``blender_manifest.toml`` lists (downloaded once with ``pip download --no-deps`` into
a cache). When the bpy wheel is installed, the zip is then checked with Blender's own extension
validator (the code behind ``blender --command extension validate``).

    python build_addon.py [--output dist/NAME.zip] [--wheel-cache build/wheels] [--no-validate]
"""

from __future__ import annotations

import argparse
import importlib.util
import stat
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
ADDON_DIR = ROOT / "blender_addon"
MANIFEST = ADDON_DIR / "blender_manifest.toml"
# gs_core modules the add-on imports (numpy only; SPZ v4 uses Blender's zstandard), with the
# package __init__ files they need
VENDORED = ("gs_core/__init__.py", "gs_core/io/__init__.py", "gs_core/io/atomic.py", "gs_core/io/ply.py",
            "gs_core/io/errors.py", "gs_core/io/spz.py", "gs_core/io/splat.py", "gs_core/io/compressed_ply.py",
            "gs_core/scene.py",
            "gs_core/sh.py", "gs_core/splat_ids.py", "gs_core/splat_transform.py", "gs_core/instance_colors.py",
            "gs_core/splat_view.py")
VENDOR_INIT = '"""Copies of gs_core\'s numpy-only modules, made by build_addon.py: edit gs_core, not these."""\n'


def read_manifest() -> dict:
    with open(MANIFEST, "rb") as fh:
        return tomllib.load(fh)


def fetch_wheels(wheels: list[str], cache: Path) -> dict[str, Path]:
    """Archive path -> local file for each manifest wheel, downloading missing ones into ``cache``."""
    cache.mkdir(parents=True, exist_ok=True)
    found = {}
    for wheel in wheels:
        filename = Path(wheel).name
        local = cache / filename
        if not local.is_file():
            dist, version = filename.split("-")[:2]
            subprocess.run([sys.executable, "-m", "pip", "download", f"{dist}=={version}", "--no-deps",
                            "--only-binary=:all:", "--quiet", "-d", str(cache)], check=True)
            if not local.is_file():
                raise SystemExit(f"pip downloaded {dist} {version} but not {filename}; fix the manifest's wheels")
        found[wheel.removeprefix("./")] = local
    return found


def addon_files() -> dict[str, Path]:
    """Archive path -> source file for the add-on itself (no caches, no dot-files)."""
    files = {}
    for path in sorted(ADDON_DIR.rglob("*")):
        rel = path.relative_to(ADDON_DIR)
        if path.is_file() and "__pycache__" not in rel.parts and not any(p.startswith(".") for p in rel.parts):
            files[rel.as_posix()] = path
    if "_vendor" in {Path(p).parts[0] for p in files}:
        raise SystemExit(f"{ADDON_DIR / '_vendor'} exists in the source tree; remove it (the build makes it)")
    return files


def _entry(arcname: str) -> zipfile.ZipInfo:
    """A regular file readable by everyone (0644) whatever the source's mode or the umask: Blender
    unpacks the zip with the modes it records, and writestr's default is 0600."""
    info = zipfile.ZipInfo(arcname, date_time=(1980, 1, 1, 0, 0, 0))
    info.external_attr = (stat.S_IFREG | 0o644) << 16
    info.compress_type = zipfile.ZIP_STORED if arcname.endswith(".whl") else zipfile.ZIP_DEFLATED
    return info


def build(output: Path, wheel_cache: Path) -> Path:
    """Write the extension zip to ``output`` (atomically, with the umask's mode) and return its path."""
    from gs_core.io.atomic import atomic_write

    manifest = read_manifest()
    entries = addon_files()
    entries.update({f"_vendor/{rel}": ROOT / rel for rel in VENDORED})
    entries.update(fetch_wheels(manifest.get("wheels", []), wheel_cache))
    output.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(output) as fh, zipfile.ZipFile(fh, "w") as archive:
        archive.writestr(_entry("_vendor/__init__.py"), VENDOR_INIT)
        for arcname, source in entries.items():
            archive.writestr(_entry(arcname), source.read_bytes())
    return output


def blender_validator() -> Path | None:
    """Blender's extension command-line tool inside the installed bpy wheel, if any."""
    spec = importlib.util.find_spec("bpy")
    if spec is None or not spec.submodule_search_locations:
        return None
    found = sorted(Path(spec.submodule_search_locations[0]).glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
    return found[-1] if found else None


def validate(archive: Path) -> tuple[bool, str]:
    """Run Blender's ``validate`` on the zip: (passed, its output)."""
    tool = blender_validator()
    if tool is None:
        return False, "bpy is not installed: Blender's extension validator is not available"
    result = subprocess.run([sys.executable, str(tool), "validate", str(archive)],
                            capture_output=True, text=True)
    return result.returncode == 0, (result.stdout + result.stderr).strip()


def default_output() -> Path:
    manifest = read_manifest()
    return ROOT / "dist" / f"{manifest['id']}-{manifest['version']}.zip"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=None, help="zip to write (default dist/ID-VERSION.zip)")
    parser.add_argument("--wheel-cache", type=Path, default=ROOT / "build" / "wheels",
                        help="where downloaded wheels are kept between builds")
    parser.add_argument("--no-validate", action="store_true", help="skip Blender's extension validator")
    args = parser.parse_args(argv)
    archive = build(args.output or default_output(), args.wheel_cache)
    print(f"built {archive} ({archive.stat().st_size:,} bytes)")
    if args.no_validate:
        return 0
    passed, report = validate(archive)
    print(f"Blender extension validator: {'passed' if passed else 'FAILED'}\n{report}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())

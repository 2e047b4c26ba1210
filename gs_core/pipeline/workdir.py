"""The work folder of ``gs-core prepare``: everything a run computes, written atomically, keyed on
its inputs so a changed input invalidates it and an interrupted run resumes.

::

    WORK/
      manifest.json      inputs (dataset, scene, masks fingerprints), config, stage times, status
      cameras.json       the training cameras (so later commands need not read the dataset)
      views.json         every posed image of the dataset (a click may come from any of them)
      scene.ply          the (possibly refined) scene every per-Gaussian array below indexes
      labels.npy         [N] int32 global instance id at the object level, -1 = none
      confidence.npy     [N] float32 share of the traced weight carrying that id
      levels.npz         ``levels`` [L], ``labels`` [L, N]: ids from part (0) to group (1)
      view_maps.npz      per training view [H, W] consistent instance maps (for reports)
      clip_features.npy  with --clip-model: [N, D + 1] lifted CLIP features (float16), coverage last
      clip_instances.npy with --clip-model: [I, D + 1] one CLIP embedding per instance, its weight last
      clip.json          with --clip-model: the model that made them
      cache/git/<key>/   per-view GIT of interrupted runs (removed when prepare completes)

Nothing is written outside WORK; the dataset folder is only read. Every file here is read as data
(:mod:`gs_core.io.safe_load`: no pickles), and a damaged one is a one-line error that says to run
prepare again; the manifest records each output's size and time, so prepare rebuilds a missing or
changed one instead of calling the folder up to date. Only files prepare can prove it made are
deleted: the per-view cache's own names in folders that carry its marker.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from pathlib import Path

import numpy as np

from ..camera import Camera
from ..errors import UserError
from ..io.atomic import atomic_write, write_text

FORMAT = "gs_core.work/1"
OUTPUTS = ("scene.ply", "labels.npy", "confidence.npy", "levels.npz", "view_maps.npz", "cameras.json")
# every name prepare writes in WORK (files, then folders); outputs of other commands never go there
OWN_FILES = ("manifest.json", *OUTPUTS, "views.json", "clip_features.npy", "clip_instances.npy", "clip.json",
             "iqgs_model.pt")
OWN_FOLDERS = ("cache", "masks", "virtual")
AGAIN = "run gs-core prepare again"
CACHE_MARKER = ".gs_core_cache"  # in each per-view cache folder: prepare made it, and may empty it
_TEMP = re.compile(r"\..+\.[0-9a-f]{8}\.tmp|\.gs_core_probe_[0-9a-f]{8}")  # atomic_write / preflight leftovers
_CACHE_FILE = re.compile(r"(\d{5}\.npz|\.\d{5}\.npz\.[0-9a-f]{8}\.tmp)")  # a view's entry, or its atomic-write leftover


class WorkDir:
    def __init__(self, root: str | os.PathLike, *, must_exist: bool = False):
        self.root = Path(root)
        if must_exist:
            if not self.root.is_dir():
                raise UserError(f"{self.root}: work folder does not exist (run gs-core prepare first)")
            if not self.manifest_path.is_file() or self.manifest().get("status") != "complete":
                raise UserError(f"{self.root}: not a prepared work folder (no complete manifest.json); "
                                "run gs-core prepare DATASET --out WORK")

    @property
    def manifest_path(self) -> Path:
        return self.root / "manifest.json"

    @property
    def scene_path(self) -> Path:
        return self.root / "scene.ply"

    def manifest(self) -> dict:
        from ..io.safe_load import load_json

        data = load_json(self.manifest_path, dict, AGAIN)
        if data.get("format") != FORMAT:
            raise UserError(f"{self.manifest_path}: format {data.get('format')!r}, expected {FORMAT!r}")
        return data

    def write_manifest(self, data: dict) -> None:
        write_text(self.manifest_path, json.dumps({"format": FORMAT, **data}, indent=1))

    # ---- arrays ---------------------------------------------------------------------------------
    def save_npy(self, name: str, array: np.ndarray) -> None:
        save_npy(self.root / name, array)

    def save_npz(self, name: str, **arrays) -> None:
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        with atomic_write(self.root / name, "wb") as fh:
            fh.write(buffer.getvalue())

    def load(self, name: str):
        """An array of WORK (``.npy``), or all arrays of an ``.npz`` as a dict; damaged or missing:
        a one-line error."""
        from ..io.safe_load import load_npy, load_npz

        path = self.root / name
        if not path.is_file():
            raise UserError(f"{path}: missing; {AGAIN}")
        return load_npz(path, hint=AGAIN) if path.suffix == ".npz" else load_npy(path, AGAIN)

    def owns(self, path: str | os.PathLike) -> bool:
        """Whether ``path`` is (or is inside) something prepare writes in WORK: no other command may
        write there."""
        root, path = self.root.resolve(), Path(path).resolve()
        if path.parent == root and path.name in OWN_FILES:
            return True
        return any(root / folder == path or root / folder in path.parents for folder in OWN_FOLDERS)

    def claim(self, flag: str = "--out") -> None:
        """Refuse to make WORK in a folder of the user's. WORK may be new or empty, a work folder
        (a gs_core manifest; other files beside it, e.g. the add-on's query answers, are left
        alone), or hold only what prepare writes (an interrupted or damaged run). Anything else
        would have files overwritten that prepare did not make."""
        if not self.root.is_dir():
            return
        if self.manifest_path.is_file():
            try:
                self.manifest()
                return
            except UserError:
                pass
        foreign = sorted(p.name for p in self.root.iterdir()
                         if p.name not in OWN_FILES + OWN_FOLDERS and not _TEMP.fullmatch(p.name))
        if foreign:
            some = ", ".join(foreign[:3]) + (" ..." if len(foreign) > 3 else "")
            why = ("its manifest.json is not a gs_core work folder's (delete manifest.json if it is one, to rebuild it)"
                   if self.manifest_path.exists() else "it is not a gs_core work folder")
            raise UserError(f"{flag} {self.root}: holds files of its own ({some}) and {why}; prepare writes "
                            "scene.ply, labels.npy and more there, so choose a new or empty folder")

    # ---- outputs ---------------------------------------------------------------------------------
    def output_prints(self) -> dict[str, str]:
        """Size and time of each output there is (recorded in the manifest when prepare completes)."""
        return {name: file_fingerprint(self.root / name) for name in OWN_FILES[1:] if (self.root / name).is_file()}

    def outputs_intact(self, manifest: dict) -> bool:
        """Every output the manifest records is there, unchanged since it was written (a manifest
        from before outputs were recorded: every output is there)."""
        recorded = manifest.get("outputs")
        if not isinstance(recorded, dict):
            return all((self.root / name).is_file() for name in OUTPUTS)
        if any(name not in recorded for name in OUTPUTS):
            return False
        for name, print_ in recorded.items():
            path = self.root / str(name)
            if str(name) not in OWN_FILES or not path.is_file() or file_fingerprint(path) != print_:
                return False
        return True

    # ---- cameras --------------------------------------------------------------------------------
    def save_cameras(self, cameras: list[Camera], views: list[Camera] | None = None) -> None:
        """The training cameras (``cameras.json``, indexing ``view_maps.npz``) and every posed image
        of the dataset (``views.json``: a click may come from any of them, not only training views)."""
        write_text(self.root / "cameras.json", json.dumps([c.to_dict() for c in cameras]))
        if views is not None:
            write_text(self.root / "views.json", json.dumps([c.to_dict() for c in views]))

    def cameras(self) -> list[Camera]:
        """The training cameras, in the order of ``view_maps.npz``."""
        return self._read_cameras(self.root / "cameras.json")

    def views(self) -> list[Camera]:
        """Every camera a view name may refer to: the training cameras, then the dataset's other posed
        images (``views.json``; for a work folder prepared before it existed, the dataset's cameras
        read again from the manifest's dataset folder, when it is still there)."""
        cameras = self.cameras()
        path = self.root / "views.json"
        if path.is_file():
            others = self._read_cameras(path)
        else:
            others = self._dataset_cameras()
        names = {c.name for c in cameras}
        return cameras + [c for c in others if c.name not in names]

    def _dataset_cameras(self) -> list[Camera]:
        from ..dataset import Dataset

        try:
            root = self.manifest().get("dataset")
        except UserError:
            return []
        if not root or not Path(root).is_dir():
            return []
        try:
            return Dataset.load(root).cameras
        except UserError:
            return []

    @staticmethod
    def _read_cameras(path: Path) -> list[Camera]:
        from ..io.safe_load import load_json

        items = load_json(path, list, AGAIN)
        try:
            return [Camera.from_dict(d) for d in items]
        except (KeyError, TypeError, ValueError, IndexError, UserError) as exc:
            raise UserError(f"{path}: not a camera list ({exc}); {AGAIN}") from None

    def camera(self, name: str) -> Camera:
        """The camera of image ``name`` (with or without its extension, or its folder): a training
        view or any other posed image of the dataset."""
        cameras = self.views()
        stem = Path(name).stem
        for match in (lambda c: name in (c.name, Path(c.name).name), lambda c: stem == Path(c.name).stem):
            for cam in cameras:
                if match(cam):
                    return cam
        some = ", ".join(c.name for c in cameras[:5]) + (" ..." if len(cameras) > 5 else "")
        raise UserError(f"--view {name}: no such view in {self.root} (views: {some})")

    # ---- per-view cache -------------------------------------------------------------------------
    def cache_dir(self, key: str) -> Path:
        return self.root / "cache" / "git" / key

    def clear_cache(self) -> int:
        """Delete the per-view cache: in each folder under ``cache/git`` that holds the cache's
        marker, the view entries (and atomic-write leftovers) by their names, then the marker and
        the folders left empty. Anything else (a file the user put there) stays, with its folders.
        Returns the number of files removed."""
        git = self.root / "cache" / "git"
        removed = 0
        if not git.is_dir():
            return 0
        for marker in sorted(git.glob(f"*/*/{CACHE_MARKER}")):
            folder = marker.parent
            for path in folder.iterdir():
                if path.is_file() and not path.is_symlink() and _CACHE_FILE.fullmatch(path.name):
                    path.unlink()
                    removed += 1
            marker.unlink()
            removed += 1
            for empty in (folder, folder.parent):
                try:
                    empty.rmdir()  # only if empty
                except OSError:
                    break
        for empty in (git, git.parent):
            try:
                empty.rmdir()
            except OSError:
                break
        return removed


def save_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write one array as ``.npy`` atomically."""
    with atomic_write(path, "wb") as fh:
        np.save(fh, array)


def fingerprint(*parts) -> str:
    """A short hash of strings, bytes and arrays (cache keys)."""
    h = hashlib.sha1()
    for p in parts:
        if isinstance(p, np.ndarray):
            h.update(str(p.dtype).encode() + str(p.shape).encode())
            h.update(np.ascontiguousarray(p).tobytes())
        elif isinstance(p, bytes):
            h.update(p)
        else:
            h.update(str(p).encode())
    return h.hexdigest()[:16]


def file_fingerprint(path: Path) -> str:
    """Name, size and modification time of a file (cheap; a changed file changes it)."""
    st = path.stat()
    return f"{path.name}:{st.st_size}:{st.st_mtime_ns}"

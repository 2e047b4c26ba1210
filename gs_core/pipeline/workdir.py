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
      cache/git/<key>/   per-view GIT of interrupted runs (removed when prepare completes)

Nothing is written outside WORK; the dataset folder is only read.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
from pathlib import Path

import numpy as np

from ..camera import Camera
from ..errors import UserError
from ..io.atomic import atomic_write, write_text

FORMAT = "gs_core.work/1"


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
        try:
            data = json.loads(self.manifest_path.read_text())
        except (OSError, ValueError) as exc:
            raise UserError(f"{self.manifest_path}: unreadable ({exc})") from None
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

    def load(self, name: str) -> np.ndarray:
        path = self.root / name
        if not path.is_file():
            raise UserError(f"{path}: missing; run gs-core prepare again")
        return np.load(path, allow_pickle=False)

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
        try:
            items = json.loads(path.read_text())
            return [Camera.from_dict(d) for d in items]
        except (OSError, ValueError, TypeError) as exc:
            raise UserError(f"{path}: unreadable ({exc})") from None

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

    def clear_cache(self) -> None:
        shutil.rmtree(self.root / "cache", ignore_errors=True)


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

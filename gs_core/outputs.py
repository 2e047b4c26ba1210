"""A record of the files a command wrote into its output folder, so a re-run clears exactly those.

Re-running a command into the same folder must not leave files of the last run beside the new ones
(an extracted object that is no longer chosen, views of a larger size), and must never delete what
the user put there. The record (``.gs_core_outputs.json`` in the folder) lists, per command, the files
the last run wrote with their size and modification time; a file is recorded only if it lies at a
path the command names as its own output (a file, or a folder it writes, such as ``report``) and
changed during the run, so a file the user made beside them, even during the run, is never listed.
:meth:`OutputRecord.clear_previous` removes a listed file only while its size and time are still the
recorded ones (a file the user has since replaced stays), then the folders left empty.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

from .io.atomic import write_text

RECORD_NAME = ".gs_core_outputs.json"


def _stamp(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def _files(folder: Path) -> dict[str, list[int]]:
    """Relative path -> [size, mtime (ns)] of every file under ``folder`` (links are not followed)."""
    found = {}
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink() and path.name != RECORD_NAME:
            found[path.relative_to(folder).as_posix()] = _stamp(path)
    return found


class OutputRecord:
    """What ``command`` wrote into ``folder`` last time; use as clear, snapshot, run, save."""

    def __init__(self, folder: str | os.PathLike, command: str):
        self.folder = Path(folder)
        self.command = command
        self.path = self.folder / RECORD_NAME
        self._before: dict[str, list[int]] = {}

    def _read(self) -> dict:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            return {}
        return data if isinstance(data, dict) else {}

    def previous(self) -> dict[str, list[int]]:
        """Relative path -> [size, mtime] the last run of this command recorded (a record without
        stamps, from before they were kept, proves nothing: empty)."""
        entries = self._read().get(self.command)
        if not isinstance(entries, dict):
            return {}
        return {p: s for p, s in entries.items() if isinstance(p, str) and isinstance(s, list) and len(s) == 2}

    def clear_previous(self) -> int:
        """Delete the files of the last run that are unchanged since (only paths inside the folder),
        prune the folders they leave empty, and snapshot what remains; returns how many were removed."""
        root = self.folder.resolve()
        removed, parents = 0, set()
        for rel, stamp in self.previous().items():
            path = self.folder / rel
            resolved = path.resolve()
            if root not in resolved.parents or not path.is_file() or path.is_symlink():
                continue  # outside the folder (a tampered record), a link, or already gone
            if _stamp(path) != stamp:
                continue  # changed since: not the file this command wrote
            path.unlink()
            removed += 1
            parents.update(p for p in resolved.parents if root in p.parents)
        for folder in sorted(parents, key=lambda p: len(p.parts), reverse=True):
            try:
                folder.rmdir()  # only if empty: the user's own files keep their folder
            except OSError:
                pass
        self._before = _files(self.folder) if self.folder.is_dir() else {}
        return removed

    def save(self, outputs: Iterable[str]) -> list[str]:
        """Record the files written or rewritten since :meth:`clear_previous` at the ``outputs`` the
        command names (paths relative to the folder: files, or folders it writes whole); returns them."""
        names = [Path(o).as_posix().strip("/") for o in outputs]

        def named(rel: str) -> bool:
            return any(rel == n or rel.startswith(n + "/") for n in names if n)

        now = _files(self.folder)
        written = {p: s for p, s in sorted(now.items()) if named(p) and self._before.get(p) != s}
        write_text(self.path, json.dumps({**self._read(), self.command: written}, indent=1) + "\n")
        return list(written)

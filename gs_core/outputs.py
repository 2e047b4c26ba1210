"""A record of the files a command wrote into its output folder, so a re-run clears exactly those.

Re-running a command into the same folder must not leave files of the last run beside the new ones
(an extracted object that is no longer chosen, views of a larger size), and must never delete what
the user put there. The record (``.gs_core_outputs.json`` in the folder) lists the files the last
run wrote, relative to the folder; :meth:`OutputRecord.clear_previous` removes those and the folders
they leave empty.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .io.atomic import write_text

RECORD_NAME = ".gs_core_outputs.json"


def _files(folder: Path) -> dict[str, int]:
    """Relative path -> mtime (ns) of every file under ``folder``."""
    found = {}
    for path in folder.rglob("*"):
        if path.is_file() and path.name != RECORD_NAME:
            found[path.relative_to(folder).as_posix()] = path.stat().st_mtime_ns
    return found


class OutputRecord:
    """What ``command`` wrote into ``folder`` last time; use as clear, snapshot, run, save."""

    def __init__(self, folder: str | os.PathLike, command: str):
        self.folder = Path(folder)
        self.command = command
        self.path = self.folder / RECORD_NAME
        self._before: dict[str, int] = {}

    def _read(self) -> dict:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def previous(self) -> list[str]:
        """Relative paths the last run of this command recorded (none if there is no record)."""
        return [p for p in self._read().get(self.command, []) if isinstance(p, str)]

    def clear_previous(self) -> int:
        """Delete the files of the last run (only paths inside the folder), prune the folders they
        leave empty, and snapshot what remains; returns how many files were removed."""
        root = self.folder.resolve()
        removed, parents = 0, set()
        for rel in self.previous():
            path = (self.folder / rel).resolve()
            if root not in path.parents or not path.is_file():
                continue  # outside the folder (a tampered record) or already gone
            path.unlink()
            removed += 1
            parents.update(p for p in path.parents if root in p.parents)
        for folder in sorted(parents, key=lambda p: len(p.parts), reverse=True):
            try:
                folder.rmdir()  # only if empty: the user's own files keep their folder
            except OSError:
                pass
        self._before = _files(self.folder) if self.folder.is_dir() else {}
        return removed

    def save(self) -> list[str]:
        """Record the files written or rewritten since :meth:`clear_previous`; returns them."""
        now = _files(self.folder)
        written = sorted(p for p, mtime in now.items() if self._before.get(p) != mtime)
        write_text(self.path, json.dumps({**self._read(), self.command: written}, indent=1) + "\n")
        return written

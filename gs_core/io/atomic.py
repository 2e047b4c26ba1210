"""Atomic file writes that respect the umask (stdlib only; vendored into the add-on).

A file is written under a temporary name in its own folder and renamed over the target, so a reader
never sees half a file and a crash leaves the old file intact. The temporary file is created with
``os.open(..., 0o666)`` like a plain ``open()``, so the kernel applies the user's umask; tempfile's
``mkstemp`` would make every output private (0600).
"""

from __future__ import annotations

import os
import secrets
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator


def _create_temp(path: Path) -> tuple[int, Path]:
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"{path}: could not pick a free temporary name beside it")


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", **open_kwargs) -> Iterator[IO]:
    """``with atomic_write(path, "w") as fh:`` writes ``path`` all at once or not at all."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write mode must be 'w' or 'wb', not {mode!r}")
    path = Path(path)
    fd, tmp = _create_temp(path)
    try:
        with os.fdopen(fd, mode, **open_kwargs) as fh:
            yield fh
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8, ``\\n`` line ends) to ``path`` atomically."""
    with atomic_write(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(text)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_write(path, "wb") as fh:
        fh.write(data)

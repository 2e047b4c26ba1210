"""Checks of command-line arguments before any work starts (no torch at import).

A mistake found after minutes of work, as a traceback, is the worst way to learn about it. Commands
use the argparse types here; :func:`preflight` runs for every command before its ``run`` and checks
the arguments whose names mean the same everywhere (``out``, ``backend``, ``noise``). Each failure is
a :class:`~gs_core.errors.UserError` naming the argument and the file.
"""

from __future__ import annotations

import argparse
import os
import secrets
from pathlib import Path

from .errors import UserError


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive integer")
    return value


def pixel_coordinate(text: str) -> int:
    """argparse type: a pixel coordinate, an integer of at most 9 digits (a larger one is in no image,
    and would overflow the engine's int32/int64 arrays)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if abs(value) >= 10**9:
        raise argparse.ArgumentTypeError(f"{text} is outside any image")
    return value


def non_negative_float(text: str) -> float:
    """argparse type: a finite number >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (value >= 0 and value != float("inf")):
        raise argparse.ArgumentTypeError(f"{text} must be a finite number >= 0")
    return value


def unit_float(text: str) -> float:
    """argparse type: a share, a number in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a share between 0 and 1")
    return value


def _nearest_existing(path: Path) -> Path:
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_output_path(path: str | os.PathLike, flag: str) -> None:
    """``path`` (a file or a folder) can be written: it is writable if it exists, else its nearest
    existing ancestor is a folder where a file can be created (a probe file, removed at once)."""
    path = Path(path)
    base = _nearest_existing(path)
    if base != Path(os.path.abspath(path)) and not base.is_dir():
        raise UserError(f"{flag} {path}: {base} is a file, not a folder")
    if not os.access(base, os.W_OK | (os.X_OK if base.is_dir() else 0)):
        raise UserError(f"{flag} {path}: {base} is not writable (permission denied)")
    if base.is_dir():  # os.access says yes to root on read-only places: try it
        probe = base / f".gs_core_probe_{secrets.token_hex(4)}"
        try:
            os.close(os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            probe.unlink()
        except OSError as exc:
            raise UserError(f"{flag} {path}: cannot write in {base} ({exc.strerror or exc})") from None


def check_output_file(path: str | os.PathLike, flag: str) -> None:
    """``path`` can be written as a file: writable (:func:`check_output_path`) and not a folder."""
    check_output_path(path, flag)
    if Path(path).is_dir():
        raise UserError(f"{flag} {path}: is a folder; give a file name")


def check_output_dir(path: str | os.PathLike, flag: str) -> Path:
    """Create the output folder ``path`` if needed and prove it writable by writing a probe file
    (``os.access`` says yes to root on read-only places); return it."""
    path = Path(path)
    check_output_path(path, flag)
    if path.exists() and not path.is_dir():
        raise UserError(f"{flag} {path}: is a file, not a folder")
    probe = path / f".gs_core_probe_{secrets.token_hex(4)}"
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise UserError(f"{flag} {path}: cannot write there ({exc.strerror or exc})") from None
    return path


def check_backend(name: str | None, flag: str = "--backend") -> None:
    """An explicitly chosen engine backend runs on this machine (``auto`` always does)."""
    if name in (None, "auto", "torch"):
        return
    import torch

    if name == "gsplat":
        from .engine import gsplat_backend

        if not torch.cuda.is_available():
            raise UserError(f"{flag} gsplat: needs an NVIDIA GPU with CUDA, and torch sees none here; "
                            "use --backend auto, cpu or torch")
        if not gsplat_backend.available():
            raise UserError(f"{flag} gsplat: the gsplat package does not import (pip install 'gs-core[gpu]')")
    elif name == "cpu":
        from .engine import cpu_backend

        if not cpu_backend.available():
            raise UserError(f"{flag} cpu: the native CPU kernels are not available here (see the warning "
                            "above); use --backend auto or torch")


def preflight(args: argparse.Namespace) -> None:
    """Checks every command gets: ``--out`` writable, ``--backend`` available, ``--noise`` >= 0."""
    out = getattr(args, "out", None)
    if isinstance(out, (str, os.PathLike)):
        check_output_path(out, "--out")
    noise = getattr(args, "noise", None)
    for level in (noise if isinstance(noise, (list, tuple)) else [noise]):
        if isinstance(level, (int, float)) and not (0 <= level < float("inf")):
            raise UserError(f"--noise {level:g}: must be a finite number >= 0 (0 = clean masks, 1 = typical SAM)")
    backend = getattr(args, "backend", None)
    if isinstance(backend, str):
        check_backend(backend)


def check_not_inputs(outputs: list[tuple[str, str | os.PathLike | None]],
                     inputs: list[tuple[str, str | os.PathLike | None]], work=None) -> None:
    """Refuse an output that would write over an input of the same command, over another output,
    or over a file of the work folder ``work`` (a :class:`~gs_core.pipeline.workdir.WorkDir`):
    ``extract --out WORK/scene.ply`` would leave a work folder whose arrays index other Gaussians."""
    def key(path) -> Path:
        return Path(os.path.abspath(path)).resolve()

    read = {key(path): flag for flag, path in inputs if path is not None}
    written: dict[Path, str] = {}
    for flag, path in outputs:
        if path is None:
            continue
        target = key(path)
        if target in read:
            raise UserError(f"{flag} {path}: is the input {read[target]}; writing it would destroy it")
        if target in written:
            raise UserError(f"{flag} {path}: is also {written[target]}; give two different files")
        if work is not None and work.owns(target):
            raise UserError(f"{flag} {path}: is a file of the work folder {work.root}, which later commands "
                            "read; write outputs elsewhere")
        written[target] = flag

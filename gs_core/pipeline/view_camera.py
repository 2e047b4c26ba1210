"""Which camera a command's pixels belong to: ``--view NAME`` (any posed image of the dataset, trained
on or not) or ``--camera FILE`` (intrinsics and pose, the object the add-on sends the server:
``{fx, fy, cx, cy, width, height, world_to_camera}``, 4x4, OpenCV axes, in the work scene's frame).
A click is a ray: any pinhole camera in the scene's frame gives one."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..camera import Camera
from ..errors import UserError
from .workdir import WorkDir

CAMERA_HELP = ("a camera as JSON (a file, or the text itself): {fx, fy, cx, cy, width, height, world_to_camera "
               "(4x4, OpenCV axes: x right, y down, z forward, in the work scene's frame)}, instead of --view")


def add_camera_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--camera", help=CAMERA_HELP)


def load_camera(text: str) -> Camera:
    """The camera of ``--camera``: a JSON file's path or the JSON text; mistakes are one-line UserErrors."""
    source, name, label = text, "camera", "(JSON text)"
    if not text.lstrip().startswith("{"):
        path = Path(text)
        try:
            source, name, label = path.read_text(), path.stem, text
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"--camera {text}: cannot read ({exc.__class__.__name__}: {exc})") from None
    try:
        data = json.loads(source)
    except ValueError as exc:
        raise UserError(f"--camera {label}: not JSON ({exc})") from None
    try:
        return Camera.from_dict(data, name)
    except ValueError as exc:
        raise UserError(f"--camera {label}: {exc}") from None


def view_camera(args: argparse.Namespace, work: WorkDir) -> Camera:
    """The camera of ``--view`` or ``--camera`` (exactly one of them)."""
    if (args.view is None) == (getattr(args, "camera", None) is None):
        raise UserError("give --view NAME (an image of the dataset) or --camera JSON (intrinsics and pose), "
                        "one of them")
    if args.view is not None:
        return work.camera(args.view)
    return load_camera(args.camera)

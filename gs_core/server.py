"""``python -m gs_core.server``: the backend the Blender add-on talks to, one warm process reused
across queries (torch, the scene and its labels stay loaded between clicks).

Protocol: JSON lines. The client writes one request per line on stdin; the server writes one message
per line on stdout (its own prints and native libraries' output go to stderr, which the client keeps
for crash reports). Bulk arrays never travel in JSON: the client names an ``.npy`` path in a work
folder and the server writes it there atomically (:func:`gs_core.io.atomic.atomic_write`).

On start the server writes ``{"event": "ready", "version": V, "protocol": 1}``. Then::

    -> {"id": 7, "cmd": "NAME", "args": {...}}
    <- {"id": 7, "progress": {"stage": "tracing", "done": 3, "total": 6, "elapsed": 1.2}}   (zero or more)
    <- {"id": 7, "ok": true, "result": {...}}
    <- {"id": 7, "ok": false, "kind": "user" | "cancelled" | "internal" | "protocol", "error": "one line"}

Exactly one ``ok`` message answers each request, in order, except ``cancel``, which the server
answers at once (``{"cancelled": ID}``) whatever runs. Commands:

``ping`` (alias ``version``) -> ``{"version", "protocol", "pid", "torch"}``.

``prepare`` ``{dataset, out, scene?, method?, device?, backend?, theta?, force?, ...}``: runs
:func:`gs_core.pipeline.prepare.prepare` (the ``gs-core prepare`` job) with progress messages; any
other key must be a field of :class:`~gs_core.pipeline.prepare.PrepareOptions`, else a ``user`` error
names it; ``sam`` and ``clip`` are objects of their option dataclasses' fields (e.g. ``{"sam":
{"checkpoint": FILE}}``). A
``{"cmd": "cancel", "args": {"target": ID}}`` line (no target: whatever runs) stops request ``ID``
at its next progress step, or before it starts if it is still queued (answer: kind ``cancelled``; the work folder's per-view cache makes the next run resume). Result: ``{gaussians,
instances, seconds, stages, up_to_date, work}``.

``load`` ``{work}``: keeps the work folder's scene, :class:`~gs_core.query.LabelLevels` and cameras
in memory. Result: ``{work, gaussians, levels, cameras, text}`` (``text``: whether text queries can
run).

``query_pixels`` ``{camera, positive, negative?, level, append?, out, backend?}``: a click query
from any pinhole camera, not only the dataset's: ``camera`` is ``{fx, fy, cx, cy, width, height,
world_to_camera}`` (4x4, OpenCV axes: x right, y down, z forward, in the work scene's frame),
pixels ``[[x, y], ...]``. Each clicked pixel is traced to the Gaussians blending into it
(:func:`gs_core.query.pixel_weights`) and kept; ``append`` adds these clicks to the current
selection (the add-on's shift- and ctrl-clicks), else they replace it. At a level the selection is
the instances of heaviest weight under the positive clicks minus those under the negative ones
(the rule of :func:`gs_core.query.from_clicks`, Trace3D Sec. 3.5 queries).

``query_level`` ``{level, out}``: the current clicks re-cut at another granularity. Each click walks
the nested levels of the merge tree (:meth:`gs_core.query.LabelLevels.click_path`), so moving the
slider toward groups only grows the selection.

``query_text`` ``{text, out}``: a text query (:func:`gs_core.language.text_query`: lifted CLIP
features scored by relevancy, thresholded automatically); a work folder prepared without a CLIP model
answers ``no CLIP features in WORK``. Replaces the current clicks.

Every query writes ``out``: the selected rows of ``WORK/scene.ply``, int64 [K] ascending; result:
``{rows: out, count, instances, level, gaussians}``.

``labels`` ``{level, out}``: every Gaussian's instance id at ``level`` (int32 [N], -1 none; what
``gs-core segment`` writes), for instance-colour previews. Result: ``{labels: out, level, instances}``.

``shutdown``: answers, then the process exits 0. End of stdin also ends it.
"""

from __future__ import annotations

import json
import os
import queue
import sys
import threading
import time
import traceback
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from . import __version__
from .errors import UserError

PROTOCOL = 1
TEXT_FEATURES = ("clip_features.npy",)  # gs_core.language.FEATURES_FILE, written by prepare with a CLIP model


class Cancelled(Exception):
    """The client sent ``cancel`` while a command ran."""


@dataclass
class Click:
    sign: int  # +1 positive, -1 negative
    gaussians: np.ndarray  # [K] int64: the Gaussians blending into the clicked pixel
    weights: np.ndarray  # [K] float32: their weights there


class Session:
    """What ``load`` keeps warm, and the current clicks."""

    def __init__(self, work, gaussians, levels, cameras):
        self.work, self.gaussians, self.levels, self.cameras = work, gaussians, levels, cameras
        self.clicks: list[Click] = []

    @property
    def num_gaussians(self) -> int:
        return self.levels.labels.shape[1]

    def select(self, level: float) -> tuple[np.ndarray, list[int]]:
        """Selected rows and instance ids (at ``level``) of the current clicks
        (:meth:`gs_core.query.LabelLevels.from_clicks`)."""
        positive = [(c.gaussians, c.weights) for c in self.clicks if c.sign > 0]
        negative = [(c.gaussians, c.weights) for c in self.clicks if c.sign < 0]
        sel = self.levels.from_clicks(level, positive, negative)
        return np.flatnonzero(sel.selected), [int(x) for x in sel.labels]


class Server:
    def __init__(self, out, inbox: "queue.Queue[str | None]"):
        self._out = out
        self._lock = threading.Lock()
        self.inbox = inbox
        self.cancelled: set = set()  # ids of requests the client cancelled (read by the reader thread)
        self.running = None  # id of the request being handled
        self.session: Session | None = None

    # ---- output ---------------------------------------------------------------------------------
    def send(self, message: dict) -> None:
        line = json.dumps(message, allow_nan=False)
        with self._lock:
            self._out.write(line + "\n")
            self._out.flush()

    def reply(self, rid, result: dict) -> None:
        self.send({"id": rid, "ok": True, "result": result})

    def fail(self, rid, kind: str, error: str) -> None:
        self.send({"id": rid, "ok": False, "kind": kind, "error": " ".join(str(error).split())})

    # ---- loop -----------------------------------------------------------------------------------
    def run(self) -> int:
        self.send({"event": "ready", "version": __version__, "protocol": PROTOCOL, "pid": os.getpid()})
        while True:
            line = self.inbox.get()
            if line is None:  # stdin closed: the client is gone
                return 0
            try:
                request = json.loads(line)
                if not isinstance(request, dict) or not isinstance(request.get("cmd"), str):
                    raise ValueError("expected an object with a 'cmd' string")
                args = request.get("args", {})
                if not isinstance(args, dict):
                    raise ValueError("'args' must be an object")
            except ValueError as exc:
                parsed = _safe(line)
                self.fail(parsed.get("id") if isinstance(parsed, dict) else None, "protocol",
                          f"bad request line ({exc}): {line[:80]!r}")
                continue
            rid, cmd = request.get("id"), request["cmd"]
            handler = getattr(self, f"cmd_{cmd}", None)
            if handler is None:
                self.fail(rid, "protocol", f"unknown command {cmd!r} (commands: {', '.join(COMMANDS)})")
                continue
            self.running = rid
            try:
                if rid in self.cancelled:
                    raise Cancelled
                result = handler(rid, args)
            except Cancelled:
                self.fail(rid, "cancelled", f"{cmd} cancelled")
                continue
            except UserError as exc:
                self.fail(rid, "user", str(exc))
                continue
            except Exception as exc:  # a bug: one line to the client, the traceback to stderr
                traceback.print_exc(file=sys.stderr)
                self.fail(rid, "internal", f"{cmd} failed: {type(exc).__name__}: {exc}")
                continue
            finally:
                self.running = None
                self.cancelled.discard(rid)
            self.reply(rid, result)
            if cmd == "shutdown":
                return 0

    # ---- commands -------------------------------------------------------------------------------
    def cmd_ping(self, rid, args) -> dict:
        import torch

        return {"version": __version__, "protocol": PROTOCOL, "pid": os.getpid(), "torch": torch.__version__}

    cmd_version = cmd_ping

    def cmd_shutdown(self, rid, args) -> dict:
        return {}

    def cmd_prepare(self, rid, args) -> dict:
        from .pipeline.prepare import PrepareOptions, prepare

        known = {f.name for f in fields(PrepareOptions)}
        unknown = sorted(set(args) - known)
        if unknown:
            raise UserError(f"prepare: option {unknown[0]!r} is not supported by this gs_core {__version__} "
                            f"(options: {', '.join(sorted(known))})")
        if not args.get("dataset"):
            raise UserError("prepare: no dataset folder given; preparing from the splat file alone (virtual "
                            "views) is not in this gs_core yet: choose the folder with the photos, cameras and masks")
        if not args.get("out"):
            raise UserError("prepare: no work folder ('out') given")
        options = PrepareOptions(**{k: _option(k, v) for k, v in args.items()})
        start = time.perf_counter()

        def progress(stage: str, done: int, total: int) -> None:
            if rid in self.cancelled:
                raise Cancelled
            self.send({"id": rid, "progress": {"stage": stage, "done": int(done), "total": int(total),
                                               "elapsed": round(time.perf_counter() - start, 3)}})

        manifest = prepare(options, progress)
        return {"work": str(options.out), "gaussians": manifest.get("gaussians"),
                "instances": manifest.get("instances"), "seconds": manifest.get("seconds"),
                "stages": manifest.get("stages", {}), "up_to_date": bool(manifest.get("up_to_date"))}

    def cmd_load(self, rid, args) -> dict:
        from .pipeline.segment import load_levels
        from .pipeline.workdir import WorkDir
        from .scene import GaussianScene

        work = WorkDir(_path(args, "work", "load"), must_exist=True)
        levels = load_levels(work)
        gaussians = GaussianScene.load(work.scene_path).to_gaussians()
        if len(gaussians.means) != levels.labels.shape[1]:
            raise UserError(f"{work.root}: scene.ply has {len(gaussians.means)} Gaussians, levels.npz "
                            f"{levels.labels.shape[1]}; run prepare again")
        self.session = Session(work, gaussians, levels, work.cameras())
        return {"work": str(work.root), "gaussians": self.session.num_gaussians,
                "levels": levels.levels.tolist(), "cameras": [c.name for c in self.session.cameras],
                "text": _text_features(work.root) is not None}

    def cmd_query_pixels(self, rid, args) -> dict:
        import torch

        from .engine import project
        from .query import pixel_weights

        session = self._loaded("query_pixels")
        camera = camera_from_json(args.get("camera"))
        positive, negative = _pixels(args, "positive"), _pixels(args, "negative")
        if len(positive) == 0 and len(negative) == 0:
            raise UserError("query_pixels: no pixels given (positive or negative)")
        level = _level(args)
        with torch.no_grad():
            proj = project(session.gaussians, camera)
            try:
                traced = pixel_weights(proj, np.concatenate([positive, negative]), args.get("backend", "auto"))
            except UserError as exc:
                raise UserError(f"query_pixels: {exc}") from None
        clicks = [Click(+1 if k < len(positive) else -1, g, w) for k, (g, w) in enumerate(traced)]
        session.clicks = (session.clicks if args.get("append") else []) + clicks
        return self._answer(session, level, args, "query_pixels")

    def cmd_query_level(self, rid, args) -> dict:
        session = self._loaded("query_level")
        if not session.clicks:
            raise UserError("query_level: nothing selected yet (click first)")
        return self._answer(session, _level(args), args, "query_level")

    def cmd_labels(self, rid, args) -> dict:
        from .pipeline.workdir import save_npy

        session = self._loaded("labels")
        level = _level(args)
        labels = session.levels.at(level).astype(np.int32)
        save_npy(_path(args, "out", "labels"), labels)
        return {"labels": args["out"], "level": level, "instances": int(len(np.unique(labels[labels >= 0])))}

    def cmd_query_text(self, rid, args) -> dict:
        from .language import text_query
        from .pipeline.workdir import save_npy

        session = self._loaded("query_text")
        text = args.get("text")
        if not isinstance(text, str) or not text.strip():
            raise UserError("query_text: empty text")
        if _text_features(session.work.root) is None:
            raise UserError(f"no CLIP features in WORK ({session.work.root}): prepare with a CLIP model first")
        out = _path(args, "out", "query_text")
        try:
            result = text_query(session.work.root, text)
        except UserError as exc:
            raise UserError(f"query_text: {exc}") from None
        if len(result.selected) != session.num_gaussians:
            raise UserError(f"{session.work.root}: the CLIP features cover {len(result.selected)} Gaussians, the "
                            f"scene {session.num_gaussians}; run prepare again")
        session.clicks = []  # a text selection has no clicks to re-cut
        rows = np.flatnonzero(result.selected)
        save_npy(out, rows.astype(np.int64))
        return {"rows": str(out), "count": int(len(rows)), "instances": [], "level": _level(args),
                "gaussians": session.num_gaussians, "threshold": result.threshold}

    # ---- helpers --------------------------------------------------------------------------------
    def _loaded(self, cmd: str) -> Session:
        if self.session is None:
            raise UserError(f"{cmd}: no work folder loaded (send load first)")
        return self.session

    def _answer(self, session: Session, level: float, args: dict, cmd: str) -> dict:
        from .pipeline.workdir import save_npy

        out = _path(args, "out", cmd)
        rows, chosen = session.select(level)
        save_npy(out, rows.astype(np.int64))
        return {"rows": str(out), "count": int(len(rows)), "instances": chosen, "level": level,
                "gaussians": session.num_gaussians}


COMMANDS = sorted([name[4:] for name in dir(Server) if name.startswith("cmd_")] + ["cancel"])


def camera_from_json(data) -> "Camera":
    """A :class:`~gs_core.camera.Camera` from the protocol's camera object; mistakes are UserErrors."""
    from .camera import Camera

    try:
        return Camera.from_dict(data, "query")
    except ValueError as exc:
        raise UserError(f"camera: {exc}") from None


def _pixels(args: dict, key: str) -> np.ndarray:  # -> [P, 2] int64
    try:
        xy = np.asarray(args.get(key) or [], np.float64).reshape(-1, 2)
    except (TypeError, ValueError):
        raise UserError(f"{key}: expected a list of [x, y] pixels") from None
    if not np.isfinite(xy).all():
        raise UserError(f"{key}: pixels must be finite")
    return np.floor(xy).astype(np.int64)


def _level(args: dict) -> float:
    level = args.get("level", 0.5)
    if not isinstance(level, (int, float)) or isinstance(level, bool) or not 0.0 <= level <= 1.0:
        raise UserError(f"level must be a number in [0, 1], got {level!r}")
    return float(level)


# prepare options that arrive as JSON objects: the dataclass each one is (issue 12's SAM and CLIP)
OPTION_TYPES = {"sam": ("gs_core.pipeline.sam_masks", "SamOptions"), "clip": ("gs_core.models.clip", "ClipOptions")}


def _option(key: str, value):
    """A prepare option from JSON: paths as Paths, nested objects as their option dataclasses."""
    if key in ("dataset", "out", "scene"):
        return Path(value) if value else None
    if isinstance(value, dict) and key in OPTION_TYPES:
        import importlib

        module, name = OPTION_TYPES[key]
        try:
            cls = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError) as exc:
            raise UserError(f"prepare: option {key!r} needs {module}.{name}, which does not import here ({exc})") \
                from None
        try:
            return cls(**{k: Path(v) if k == "checkpoint" and v else v for k, v in value.items()})
        except TypeError as exc:
            raise UserError(f"prepare: option {key!r}: {exc}") from None
    return value


def _path(args: dict, key: str, cmd: str) -> Path:
    value = args.get(key)
    if not isinstance(value, str) or not value:
        raise UserError(f"{cmd}: '{key}' must be a path")
    return Path(value)


def _text_features(root: Path) -> Path | None:
    return next((root / n for n in TEXT_FEATURES if (root / n).is_file()), None)


def _safe(line: str):
    try:
        return json.loads(line)
    except ValueError:
        return None


def _reader(stream, server: Server) -> None:
    """stdin -> the server's inbox; a ``cancel`` line sets the flag at once (the main thread may be
    busy in a long command) and is answered there."""
    for line in stream:
        line = line.strip()
        if not line:
            continue
        request = _safe(line)
        if isinstance(request, dict) and request.get("cmd") == "cancel":
            args = request.get("args") if isinstance(request.get("args"), dict) else {}
            target = args.get("target", server.running)
            server.cancelled.add(target)
            server.reply(request.get("id"), {"cancelled": target})
            continue
        server.inbox.put(line)
    server.cancelled.add(server.running)  # the client is gone: stop what runs
    server.inbox.put(None)


def main(argv=None) -> int:
    # stdout carries only protocol lines: keep a private handle on it and point fd 1 (prints, rich,
    # native libraries) at stderr.
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")  # as the gs-core command (cli.main)
    server = Server(out, queue.Queue())
    threading.Thread(target=_reader, args=(sys.stdin, server), daemon=True).start()
    try:
        return server.run()
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""``python -m gs_core.server``: the backend the Blender add-on talks to, one warm process reused
across queries (torch, the scene and its labels stay loaded between clicks).

Protocol: JSON lines. The client writes one request per line on stdin; the server writes one message
per line on stdout (its own prints and native libraries' output go to stderr, which the client keeps
for crash reports). Bulk arrays never travel in JSON: the client names an ``.npy`` path in a work
folder and the server writes it there atomically (:func:`gs_core.io.atomic.atomic_write`).

On start the server writes ``{"event": "ready", "version": V, "protocol": 1, "features": [...], "pid", "scratch"}``
(``scratch``: a temporary folder the server made and owns). Then::

    -> {"id": 7, "cmd": "NAME", "args": {...}}
    <- {"id": 7, "progress": {"stage": "tracing", "done": 3, "total": 6, "elapsed": 1.2}}   (zero or more)
    <- {"id": 7, "ok": true, "result": {...}}
    <- {"id": 7, "ok": false, "kind": "user" | "cancelled" | "internal" | "protocol", "error": "one line"}

Exactly one ``ok`` message answers each request line, in order, except ``cancel``, which the server
answers at once (``{"cancelled": ID}``) whatever runs. Every line passes one guard first
(:mod:`gs_core.server_requests`: UTF-8, JSON without NaN, depth, an ``id`` that is null, an integer or
a short string, each command's field types and the command line's ranges); a bad line is answered
with one ``protocol`` or ``user`` error (``id`` null if its own could not be read) and the server
goes on. End of stdin always ends it. Commands:

``ping`` (alias ``version``) -> ``{"version", "protocol", "features", "pid", "torch"}``. ``features`` names the
optional request fields added within a protocol version (an older server ignores a field it does not know, so a
client checks here before relying on one): ``click-rule``, ``query_pixels``' ``rule``.

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

``query_pixels`` ``{camera, positive, negative?, level, append?, rule?, out, backend?}``: a click query
from any pinhole camera, not only the dataset's: ``camera`` is ``{fx, fy, cx, cy, width, height,
world_to_camera}`` (4x4, OpenCV axes: x right, y down, z forward, in the work scene's frame),
pixels ``[[x, y], ...]``. Each clicked pixel is turned into the Gaussians blending into it and their
weights there by the CLI's own function (:func:`gs_core.query.click_weights`) and kept; ``append``
adds these clicks to the current selection (the add-on's shift- and ctrl-clicks), else they replace
it. At a level the selection is the instances of heaviest weight under the positive clicks; a negative click in the same instance
splits it at the coarsest finer level that separates the clicks, or in 3D by the splats' centres and colours where
no level does (:meth:`gs_core.query.LabelLevels.from_clicks`, the same rule as ``gs-core query --negative``).
``rule`` says how this request's positive clicks add to the clicks before them, and is kept with them (for
``query_level`` and later appends): ``"split"`` (the default) adds each click's instance whole (another object,
the add-on's shift-click), ``"split-support"`` only as much of it as the selection supports (a missed part of the
selected object, the add-on's shift+ctrl-click; ``gs-core query --refine``); a first click adds its instance whole
either way. Negative clicks split whatever the rule.

``query_level`` ``{level, out}``: the current clicks re-cut at another granularity. Each click walks
the nested levels of the merge tree (:meth:`gs_core.query.LabelLevels.click_path`), so moving the
slider toward groups only grows the selection.

``query_text`` ``{text, out}``: a text query (:func:`gs_core.language.text_query`, as ``gs-core query
--text``: each consistent instance's CLIP embedding scored by relevancy where the work folder has them,
else the lifted per-Gaussian features; thresholded automatically); a work folder prepared without a CLIP
model answers ``no CLIP features in WORK``. Replaces the current clicks.

Every query writes ``out``: the selected rows of ``WORK/scene.ply``, int64 [K] ascending; result:
``{rows: out, count, instances, partial, level, gaussians}`` (``partial``: the rows are only a part of
``instances``, a negative click split one; added in a backward-compatible way, a client may ignore it). An ``out`` must be an ``.npy`` path inside the
loaded work folder (not one of the files prepare writes there) or inside ``scratch``; anything else
is a ``user`` error, so no request can write over a file elsewhere.

``labels`` ``{level, out}``: every Gaussian's instance id at ``level`` (int32 [N], -1 none; what
``gs-core segment`` writes), for instance-colour previews. Result: ``{labels: out, level, instances}``.

``render_splats`` ``{objects: [{path, matrix}], camera, out, backend?}``: the final-render layer of the
add-on's splat objects (:func:`gs_core.render_layer.render_layer`): each ``path`` an ``.npz`` of an
object's splats in its own frame (:func:`gs_core.splat_view.save_splats`; kept loaded while its file is
unchanged), ``matrix`` its 4x4 world matrix, ``camera`` as for ``query_pixels`` in world space. Writes
the file named ``out`` (a name; its folder is the server's scratch folder) with float32 [H, W, 5]
(premultiplied r, g, b, alpha, depth; depth ``inf`` where empty). Result: ``{layer: the path written,
width, height, splats, seconds}``. Needs no prepared work folder.

``shutdown``: answers, then the process exits 0. End of stdin also ends it.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import queue
import sys
import threading
import time
import traceback
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np

from . import __version__
from . import server_requests as guard
from .errors import UserError
from .io.errors import SceneFormatError

PROTOCOL = 1
FEATURES = ("click-rule",)  # optional request fields within PROTOCOL (the module docstring)
TEXT_FEATURES = ("clip_features.npy",)  # gs_core.language.FEATURES_FILE, written by prepare with a CLIP model


class Cancelled(Exception):
    """The client sent ``cancel`` while a command ran."""


@dataclass
class Click:
    sign: int  # +1 positive, -1 negative
    gaussians: np.ndarray  # [K] int64: the Gaussians blending into the clicked pixel
    weights: np.ndarray  # [K] float32: their weights there
    rule: str = "split"  # a positive click's (gs_core.query.PER_CLICK_RULES): "split" adds, "split-support" refines


class Session:
    """What ``load`` keeps warm, and the current clicks."""

    def __init__(self, work, gaussians, levels, cameras, colors=None, scene=None):
        self.work, self.gaussians, self.levels, self.cameras = work, gaussians, levels, cameras
        self.scene = scene  # the work folder's GaussianScene (its geometry): clicked pixels become Gaussians on it
        self.colors = colors  # [N, 3] the scene's base colours (SH DC), for a negative click's split in 3D
        self.clicks: list[Click] = []

    @property
    def num_gaussians(self) -> int:
        return self.levels.labels.shape[1]

    @functools.cached_property
    def means(self) -> np.ndarray:  # [N, 3]
        """The Gaussians' centres, for the clicks' splits in 3D and the splats a click points at."""
        return self.gaussians.means.detach().cpu().numpy()

    def select(self, level: float) -> tuple[np.ndarray, list[int], bool]:
        """Selected rows, instance ids (at ``level``) of the current clicks and whether the rows are only
        a part of those instances (:meth:`gs_core.query.LabelLevels.from_clicks`)."""
        positive = [(c.gaussians, c.weights) for c in self.clicks if c.sign > 0]
        negative = [(c.gaussians, c.weights) for c in self.clicks if c.sign < 0]
        rules = [c.rule for c in self.clicks if c.sign > 0]
        sel = self.levels.from_clicks(level, positive, negative, rule=rules, means=self.means,
                                      colors=self.colors)
        return np.flatnonzero(sel.selected), [int(x) for x in sel.labels], sel.partial


class Server:
    def __init__(self, out, inbox: "queue.Queue"):
        self._out = out
        self._lock = threading.Lock()
        self.inbox = inbox  # guard.Request | guard.Rejected | None (end of input), from the reader thread
        self.cancelled: set = set()  # ids of requests the client cancelled (read by the reader thread)
        self.running = None  # id of the request being handled
        self.session: Session | None = None
        self._scratch: Path | None = None
        self.written: set[Path] = set()  # files the server wrote in its scratch folder (removed on exit)
        self.layer_objects: dict = {}  # splat layer file -> ((mtime, size), arrays), for render_splats
        self.ray = None  # the RayExecutor of the last prepare with a ``ray`` field, kept for the next (its cluster)

    @property
    def scratch(self) -> Path:
        """A temporary folder the server made (and so owns): one place ``out`` may point besides WORK."""
        if self._scratch is None:
            import tempfile

            self._scratch = Path(tempfile.mkdtemp(prefix="gs_core_server_")).resolve()
        return self._scratch

    def close(self) -> None:
        """Shut down the Ray cluster it started, if any; remove the files the server wrote in its scratch
        folder, and the folder if that empties it."""
        if self.ray is not None:
            self.ray.close()
            self.ray = None
        if self._scratch is None:
            return
        for path in self.written:
            if path.parent == self._scratch:
                path.unlink(missing_ok=True)
        try:
            self._scratch.rmdir()
        except OSError:
            pass

    # ---- output ---------------------------------------------------------------------------------
    def send(self, message: dict) -> None:
        try:
            line = json.dumps(message, allow_nan=False)
        except (TypeError, ValueError) as exc:  # a NaN or an odd type in an answer: still one JSON line
            rid = message.get("id") if guard.valid_id(message.get("id")) else None
            line = json.dumps({"id": rid, "ok": False, "kind": "internal",
                               "error": f"answer could not be written as JSON ({exc})"})
        with self._lock:
            self._out.write(line + "\n")
            self._out.flush()

    def reply(self, rid, result: dict) -> None:
        self.send({"id": rid, "ok": True, "result": result})

    def fail(self, rid, kind: str, error: str) -> None:
        self.send({"id": rid, "ok": False, "kind": kind, "error": " ".join(str(error).split())})

    # ---- loop -----------------------------------------------------------------------------------
    def run(self, stream=None) -> int:
        """Serve the request lines of ``stream`` (bytes; read on a thread started after ``ready``,
        so no answer comes before it) until end of input or ``shutdown``."""
        self.send({"event": "ready", "version": __version__, "protocol": PROTOCOL, "features": list(FEATURES),
                   "pid": os.getpid(), "scratch": str(self.scratch)})
        if stream is not None:
            threading.Thread(target=_reader, args=(stream, self), daemon=True).start()
        try:
            while True:
                item = self.inbox.get()
                if item is None:  # stdin closed: the client is gone
                    return 0
                if isinstance(item, guard.Rejected):
                    self.fail(item.id, item.kind, item.error)
                    continue
                if self.handle(item):
                    return 0
        finally:
            self.close()

    def handle(self, request: "guard.Request") -> bool:
        """Answer one checked request; True if it was ``shutdown``."""
        rid, cmd, args = request.id, request.cmd, request.args
        handler = getattr(self, f"cmd_{cmd}", None)
        if handler is None:
            self.fail(rid, "protocol", f"unknown command {cmd[:80]!r} (commands: {', '.join(COMMANDS)})")
            return False
        problem = guard.check_fields(cmd, args)
        if problem is not None:
            self.fail(rid, "user", problem)
            return False
        self.running = rid
        try:
            if rid in self.cancelled:
                raise Cancelled
            result = handler(rid, args)
        except Cancelled:
            self.fail(rid, "cancelled", f"{cmd} cancelled")
            return False
        except (UserError, SceneFormatError) as exc:  # names the file or field and the problem
            self.fail(rid, "user", str(exc))
            return False
        except OSError as exc:  # a path of the request (too long, not allowed, disk full): as the CLI says it
            self.fail(rid, "user", f"{cmd}: {exc.filename or 'writing'}: {exc.strerror or exc}")
            return False
        except Exception as exc:  # a bug: one line to the client, the traceback to stderr
            traceback.print_exc(file=sys.stderr)
            self.fail(rid, "internal", f"{cmd} failed: {type(exc).__name__}: {exc}")
            return False
        finally:
            self.running = None
            self.cancelled.discard(rid)
        self.reply(rid, result)
        return cmd == "shutdown"

    # ---- commands -------------------------------------------------------------------------------
    def cmd_ping(self, rid, args) -> dict:
        import torch

        return {"version": __version__, "protocol": PROTOCOL, "features": list(FEATURES), "pid": os.getpid(),
                "torch": torch.__version__}

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

        manifest = prepare(options, progress, executor=self._ray_executor(options))
        return {"work": str(options.out), "gaussians": manifest.get("gaussians"),
                "instances": manifest.get("instances"), "seconds": manifest.get("seconds"),
                "stages": manifest.get("stages", {}), "up_to_date": bool(manifest.get("up_to_date"))}

    def _ray_executor(self, options):
        """The executor for ``options.ray`` (None without it): the one kept from an earlier prepare with
        the same address, so its cluster (about 15 s to start) serves every prepare of the session."""
        from .pipeline.prepare import check_ray, ray_executor

        if options.ray is None:
            return None
        check_ray(options)  # every prepare's options, also when the kept executor serves it
        if self.ray is not None and self.ray.address != options.ray:
            self.ray.close()
            self.ray = None
        if self.ray is None:
            self.ray = ray_executor(options)
        return self.ray

    def cmd_load(self, rid, args) -> dict:
        from .pipeline.segment import load_levels
        from .pipeline.workdir import WorkDir
        from .scene import GaussianScene

        work = WorkDir(_path(args, "work", "load"), must_exist=True)
        levels = load_levels(work)
        scene = GaussianScene.load(work.scene_path)
        gaussians = scene.to_gaussians()
        if len(gaussians.means) != levels.labels.shape[1]:
            raise UserError(f"{work.root}: scene.ply has {len(gaussians.means)} Gaussians, levels.npz "
                            f"{levels.labels.shape[1]}; run prepare again")
        geometry = dataclasses.replace(scene, sh_rest=np.zeros((len(scene), 0, 3), np.float32),
                                       normals=None, extra={})  # not the SH: a click needs none
        self.session = Session(work, gaussians, levels, work.cameras(), scene.sh_dc, scene=geometry)
        return {"work": str(work.root), "gaussians": self.session.num_gaussians,
                "levels": levels.levels.tolist(), "cameras": [c.name for c in self.session.cameras],
                "text": _text_features(work.root) is not None}

    def cmd_query_pixels(self, rid, args) -> dict:
        import torch

        from .query import click_weights

        session = self._loaded("query_pixels")
        camera = camera_from_json(args.get("camera"))
        positive, negative = _pixels(args, "positive"), _pixels(args, "negative")
        if len(positive) == 0 and len(negative) == 0:
            raise UserError("query_pixels: no pixels given (positive or negative)")
        level = _level(args)
        self._out_path(args, "query_pixels")  # before the clicks change
        from .preflight import check_backend

        check_backend(args.get("backend", "auto"), "backend")
        with torch.no_grad():
            try:  # the CLI's own function (gs-core query --pixel), on the session's scene
                pos, neg = click_weights(session.scene, camera, positive, negative, args.get("backend", "auto"),
                                         gaussians=session.gaussians)
            except UserError as exc:
                raise UserError(f"query_pixels: {exc}") from None
        rule = args.get("rule", "split")  # checked by the guard (CLICK_RULES)
        clicks = [Click(+1 if k < len(pos) else -1, g, w, rule) for k, (g, w) in enumerate(pos + neg)]
        session.clicks = (session.clicks if args.get("append") else []) + clicks
        return self._answer(session, level, args, "query_pixels")

    def cmd_query_level(self, rid, args) -> dict:
        session = self._loaded("query_level")
        self._out_path(args, "query_level")
        if not session.clicks:
            raise UserError("query_level: nothing selected yet (click first)")
        return self._answer(session, _level(args), args, "query_level")

    def cmd_labels(self, rid, args) -> dict:
        session = self._loaded("labels")
        level = _level(args)
        out = self._out_path(args, "labels")
        labels = session.levels.at(level).astype(np.int32)
        self._save(out, labels)
        return {"labels": args["out"], "level": level, "instances": int(len(np.unique(labels[labels >= 0])))}

    def cmd_query_text(self, rid, args) -> dict:
        from .language import text_query

        session = self._loaded("query_text")
        text = args.get("text")
        if not isinstance(text, str) or not text.strip():
            raise UserError("query_text: empty text")
        if _text_features(session.work.root) is None:
            raise UserError(f"no CLIP features in WORK ({session.work.root}): prepare with a CLIP model first")
        out = self._out_path(args, "query_text")
        try:
            result = text_query(session.work.root, text)
        except UserError as exc:
            raise UserError(f"query_text: {exc}") from None
        if len(result.selected) != session.num_gaussians:
            raise UserError(f"{session.work.root}: the CLIP features cover {len(result.selected)} Gaussians, the "
                            f"scene {session.num_gaussians}; run prepare again")
        session.clicks = []  # a text selection has no clicks to re-cut
        rows = np.flatnonzero(result.selected)
        self._save(out, rows.astype(np.int64))
        return {"rows": str(out), "count": int(len(rows)), "instances": [], "level": _level(args),
                "gaussians": session.num_gaussians, "threshold": result.threshold}

    # ---- helpers --------------------------------------------------------------------------------
    def cmd_render_splats(self, rid, args) -> dict:
        from . import render_layer

        start = time.perf_counter()
        camera = camera_from_json(args.get("camera"))
        # only a file name: the layer goes to the server's own folder (answers are written only in WORK or there)
        name = Path(str(_path(args, "out", "render_splats"))).name
        if not name.endswith(".npy"):
            raise UserError(f"render_splats: 'out' {name} must name an .npy file")
        out = self.scratch / name
        entries = args.get("objects")
        if not isinstance(entries, list):
            raise UserError("render_splats: 'objects' must be a list of {path, matrix}")
        objects, cache = [], {}
        for entry in entries:
            path = _path(entry if isinstance(entry, dict) else {}, "path", "render_splats")
            try:
                st = path.stat()
            except OSError:
                raise UserError(f"{path}: no such splat layer file") from None
            key, stamp = str(path), (st.st_mtime_ns, st.st_size)
            cached = self.layer_objects.get(key)
            obj = render_layer.load_object(path, entry.get("matrix")) if cached is None or cached[0] != stamp \
                else replace(cached[1], matrix=render_layer.object_matrix(path, entry.get("matrix")))
            cache[key] = (stamp, obj)
            objects.append(obj)
        self.layer_objects = cache  # files no longer drawn are let go
        layer = render_layer.render_layer(objects, camera, backend=args.get("backend", "auto"))
        render_layer.save_layer(out, layer)
        self.written.add(out)
        return {"layer": str(out), "width": camera.width, "height": camera.height,
                "splats": int(sum(len(o) for o in objects)), "seconds": round(time.perf_counter() - start, 3)}

    def _loaded(self, cmd: str) -> Session:
        if self.session is None:
            raise UserError(f"{cmd}: no work folder loaded (send load first)")
        return self.session

    def _out_path(self, args: dict, cmd: str) -> Path:
        """``args["out"]``, confined: an ``.npy`` file inside the loaded work folder (none of the files
        prepare writes there) or inside the server's scratch folder, in a folder that exists."""
        value = _path(args, "out", cmd)
        session = self._loaded(cmd)
        path = Path(os.path.abspath(value))
        resolved = path.resolve()
        work = session.work.root.resolve()
        inside = [root for root in (work, self.scratch) if root in resolved.parents]
        if not inside:
            raise UserError(f"{cmd}: 'out' {value} is outside the work folder {session.work.root} and the server's "
                            f"folder {self.scratch}; answers are written only there")
        if inside[0] == work and session.work.owns(resolved):
            raise UserError(f"{cmd}: 'out' {value} is a file of the work folder that prepare writes; choose another "
                            "name")
        if resolved.suffix != ".npy" or resolved.is_dir():
            raise UserError(f"{cmd}: 'out' {value} must name an .npy file")
        if not resolved.parent.is_dir():
            raise UserError(f"{cmd}: 'out' {value}: folder {resolved.parent} does not exist")
        return resolved

    def _save(self, out: Path, array: np.ndarray) -> None:
        from .pipeline.workdir import save_npy

        save_npy(out, array)
        if out.parent == self.scratch:
            self.written.add(out)

    def _answer(self, session: Session, level: float, args: dict, cmd: str) -> dict:
        out = self._out_path(args, cmd)
        rows, chosen, partial = session.select(level)
        self._save(out, rows.astype(np.int64))
        return {"rows": str(out), "count": int(len(rows)), "instances": chosen, "partial": partial, "level": level,
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


def _reader(stream, server: Server) -> None:
    """stdin (bytes) -> the server's inbox, each line through the guard (:func:`guard.parse`); a
    ``cancel`` line sets the flag at once (the main thread may be busy in a long command) and is
    answered here. Whatever a line holds, it gets one answer and the next line is read; end of
    input (or a failure of the stream itself) always ends the server."""
    try:
        for raw in stream:
            try:
                _one_line(raw, server)
            except Exception as exc:  # a bug in the guard itself: still one answer, and go on
                traceback.print_exc(file=sys.stderr)
                server.inbox.put(guard.Rejected(None, "internal", f"request line failed: {type(exc).__name__}"))
    except Exception:  # the stream broke: as end of input
        traceback.print_exc(file=sys.stderr)
    finally:
        server.cancelled.add(server.running)  # the client is gone: stop what runs
        server.inbox.put(None)


def _one_line(raw: bytes, server: Server) -> None:
    if not raw.strip():
        return
    request = guard.parse(raw)
    if isinstance(request, guard.Request) and request.cmd == "cancel":
        try:
            target = guard.cancel_target(request.args, server.running)
        except guard.FieldError as exc:
            server.fail(request.id, "user", str(exc))
            return
        server.cancelled.add(target)
        server.reply(request.id, {"cancelled": target})
        return
    server.inbox.put(request)


def main(argv=None) -> int:
    # stdout carries only protocol lines: keep a private handle on it and point fd 1 (prints, rich,
    # native libraries) at stderr.
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")  # as the gs-core command (cli.main)
    # the reader thread gets a private handle on stdin: a daemon thread blocked in sys.stdin.buffer
    # aborts the interpreter at exit ("could not acquire lock ... at interpreter shutdown")
    stdin = os.fdopen(os.dup(sys.stdin.fileno()), "rb")
    server = Server(out, queue.Queue())
    try:
        return server.run(stdin)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

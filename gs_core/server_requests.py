"""The guard every line to :mod:`gs_core.server` passes before anything acts on it.

One line is parsed and checked here as a whole: UTF-8, JSON without NaN/Infinity, nesting depth, an
object with a ``cmd`` string, an ``id`` that can be echoed and used as a key (null, an integer or a
short string), ``args`` an object, and each command's fields by type and by the command line's
ranges. Whatever is wrong becomes one :class:`Rejected` (``protocol`` for the envelope, ``user``
for the fields), which the server answers and goes on; nothing here raises anything else.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

MAX_LINE = 1 << 24  # bytes; a request is a few hundred (bulk arrays travel as .npy files)
MAX_DEPTH = 16  # the deepest request (a camera's 4x4 matrix inside args) is 5
MAX_ID = 2**53  # ids round-trip through JSON clients that hold numbers as doubles
BACKENDS = ("auto", "torch", "cpu", "gsplat")
DEVICES = ("cpu", "cuda")
CLICK_RULES = ("split", "split-support")  # query_pixels' rule: add, refine (gs_core.query.PER_CLICK_RULES)


@dataclass
class Request:
    id: object  # None, int or str
    cmd: str
    args: dict


@dataclass
class Rejected:
    id: object  # the request's id when it could be read, else None
    kind: str  # "protocol" or "user"
    error: str


def _depth(value) -> int:
    """Nesting depth of parsed JSON, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > MAX_DEPTH:
            break
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return deepest


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def valid_id(rid) -> bool:
    """An id the server can echo and use as a key: null, an integer (not a bool) or a short string."""
    if rid is None:
        return True
    if isinstance(rid, bool):
        return False
    if isinstance(rid, int):
        return abs(rid) <= MAX_ID
    return isinstance(rid, str) and len(rid) <= 200


def _short(raw: bytes | str) -> str:
    text = raw if isinstance(raw, str) else raw[:200].decode("utf-8", "replace")
    return repr(text[:80])


def parse(raw: bytes | str) -> Request | Rejected:
    """One request line -> a :class:`Request` with checked envelope, or why not."""
    if len(raw) > MAX_LINE:
        return Rejected(None, "protocol", f"bad request line (longer than {MAX_LINE} bytes)")
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError as exc:
        return Rejected(None, "protocol", f"bad request line (not UTF-8: {exc.reason} at byte {exc.start}): "
                                          f"{_short(raw)}")
    text = text.strip()
    try:
        request = json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        return Rejected(None, "protocol", f"bad request line (nested deeper than {MAX_DEPTH}): {_short(text)}")
    except ValueError as exc:
        return Rejected(None, "protocol", f"bad request line ({exc}): {_short(text)}")
    rid = request.get("id") if isinstance(request, dict) else None
    if not valid_id(rid):
        return Rejected(None, "protocol", f"bad request line ('id' must be null, an integer or a short string, "
                                          f"got {type(rid).__name__}): {_short(text)}")
    if _depth(request) > MAX_DEPTH:
        return Rejected(rid, "protocol", f"bad request line (nested deeper than {MAX_DEPTH}): {_short(text)}")
    if not isinstance(request, dict) or not isinstance(request.get("cmd"), str):
        return Rejected(rid, "protocol", f"bad request line (expected an object with a 'cmd' string): {_short(text)}")
    args = request.get("args", {})
    if args is None:
        args = {}
    if not isinstance(args, dict):
        return Rejected(rid, "protocol", f"bad request line ('args' must be an object): {_short(text)}")
    return Request(rid, request["cmd"], args)


# ---- the commands' fields --------------------------------------------------------------------------

def _describe(value) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


class FieldError(ValueError):
    """A field of ``args`` of the wrong type or out of range (answered as a ``user`` error)."""


def _number(value, name: str, low: float, high: float, *, open_low=False, open_high=False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise FieldError(f"{name} must be a number, got {_describe(value)}")
    too_low = value <= low if open_low else value < low
    too_high = value >= high if open_high else value > high
    if too_low or too_high:
        raise FieldError(f"{name} must be in {'(' if open_low else '['}{low:g}, {high:g}{')' if open_high else ']'}, "
                         f"got {value!r}")
    return float(value)


def _check(cmd: str, args: dict, spec: dict) -> None:
    for key, rule in spec.items():
        if key not in args:
            continue
        value, name = args[key], f"{cmd}: '{key}'"
        kind = rule[0]
        if kind == "path":
            if value is not None and (not isinstance(value, str) or not value or "\0" in value or len(value) > 4096):
                raise FieldError(f"{name} must be a path, got {_describe(value)}")
        elif kind == "str":
            if value is not None and (not isinstance(value, str) or len(value) > 10_000):
                raise FieldError(f"{name} must be a string, got {_describe(value)}")
        elif kind == "bool":
            if not isinstance(value, bool):
                raise FieldError(f"{name} must be true or false, got {_describe(value)}")
        elif kind == "choice":
            if value not in rule[1]:
                raise FieldError(f"{name} must be one of {', '.join(rule[1])}, got {_describe(value)}")
        elif kind == "number":
            _number(value, name, *rule[1], **rule[2])
        elif kind == "object":
            if value is not None and not isinstance(value, dict):
                raise FieldError(f"{name} must be an object, got {_describe(value)}")
            if isinstance(value, dict) and len(rule) > 1:
                _check(f"{cmd}: '{key}'", value, rule[1])
        elif kind == "int":
            if isinstance(value, bool) or not isinstance(value, int) or not rule[1][0] <= value <= rule[1][1]:
                if not (value is None and rule[2]):
                    raise FieldError(f"{name} must be an integer in [{rule[1][0]}, {rule[1][1]}], got {_describe(value)}")
        elif kind == "pixels":
            if value is None:
                continue
            if not isinstance(value, list) or not all(isinstance(p, list) and len(p) == 2 for p in value):
                raise FieldError(f"{name} must be a list of [x, y] pixels, got {_describe(value)}")
            for p in value:
                for c in p:
                    _number(c, name, -1e9, 1e9)


UNIT = ("number", (0.0, 1.0), {})
SAM = {"checkpoint": ("path",), "model": ("str",), "device": ("choice", DEVICES), "mask_views": ("int", (1, 10**6), True),
       "budget_minutes": ("number", (0.0, 1e9), {"open_low": True}), "points_per_side": ("int", (1, 1024), False),
       "mask_config": ("choice", (None,))}  # the command line's --sam-* options
CLIP = {"model": ("str",), "pretrained": ("str",), "checkpoint": ("path",), "device": ("choice", DEVICES),
        "batch": ("int", (1, 4096), False)}
# each command's fields: ("path",), ("str",), ("bool",), ("choice", values), ("number", (low, high), openness),
# ("object",), ("pixels",). Required fields and meaning are checked by the commands themselves.
FIELDS: dict[str, dict] = {
    "load": {"work": ("path",)},
    "query_pixels": {"camera": ("object",), "positive": ("pixels",), "negative": ("pixels",), "level": UNIT,
                     "append": ("bool",), "rule": ("choice", CLICK_RULES), "out": ("path",),
                     "backend": ("choice", BACKENDS)},
    "query_level": {"level": UNIT, "out": ("path",)},
    "query_text": {"text": ("str",), "level": UNIT, "out": ("path",)},
    "labels": {"level": UNIT, "out": ("path",)},
    "render_splats": {"camera": ("object",), "out": ("path",), "backend": ("choice", BACKENDS)},
    "prepare": {"dataset": ("path",), "out": ("path",), "scene": ("path",), "method": ("str",),
                "device": ("choice", DEVICES), "backend": ("choice", BACKENDS),
                "theta": ("number", (0.0, 1.0), {"open_low": True, "open_high": True}), "force": ("bool",),
                "sam": ("object", SAM), "clip": ("object", CLIP)},
}


def check_fields(cmd: str, args: dict) -> str | None:
    """Why ``args`` of ``cmd`` are wrong (the message of a ``user`` error), or None."""
    try:
        _check(cmd, args, FIELDS.get(cmd, {}))
    except FieldError as exc:
        return str(exc)
    return None


def cancel_target(args: dict, running):
    """The id a ``cancel`` stops (``target``, else whatever runs), or a :class:`Rejected` message."""
    target = args.get("target", running)
    if not valid_id(target):
        raise FieldError(f"cancel: 'target' must be a request id (null, an integer or a short string), "
                         f"got {_describe(target)}")
    return target

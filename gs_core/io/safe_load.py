"""Reading files from work folders, datasets and user paths without running code from them.

Every such file is data: ``.npy`` / ``.npz`` are read with ``allow_pickle=False``, torch files with
``weights_only=True`` and JSON as JSON. A file that holds pickled Python objects (which can run any
code while they load) is refused, and so is a torn or foreign one; either way the caller gets one
:class:`~gs_core.errors.UserError` line naming the file and the problem (``hint`` says what to do),
never a traceback. ``.npz`` members are read at once, so a torn member fails here, not later.
"""

from __future__ import annotations

import json
import os
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ..errors import UserError

# what numpy, zipfile and zlib raise for a file that is not a complete .npy/.npz
_NUMPY_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, KeyError, TypeError)
PICKLE_REFUSED = "holds pickled Python objects, which could run code when loaded; refused"


class UnsafeFileError(UserError):
    """A file that holds pickled objects (code could run while it loads): refused, never dropped
    silently, so the user learns that something planted it."""


def _fail(path, problem: str, hint: str | None) -> UserError:
    cls = UnsafeFileError if "could run code" in problem else UserError
    return cls(f"{path}: {problem}" + (f"; {hint}" if hint else ""))


def _numpy_problem(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    if "pickle" in text.lower() or "object arrays" in text.lower():
        return PICKLE_REFUSED
    return f"damaged or not a numpy file ({type(exc).__name__}: {text[:160]})"


def load_npy(path: str | os.PathLike, hint: str | None = None) -> np.ndarray:
    """One array from a ``.npy`` file, never unpickling."""
    path = Path(path)
    if not path.is_file():
        raise _fail(path, "no such file", hint)
    try:
        array = np.load(path, allow_pickle=False)
    except _NUMPY_ERRORS as exc:
        raise _fail(path, _numpy_problem(exc), hint) from None
    if not isinstance(array, np.ndarray):  # an .npz under an .npy name
        array.close()
        raise _fail(path, "holds several arrays (.npz), expected one (.npy)", hint)
    return array


def load_npz(path: str | os.PathLike, required: tuple[str, ...] = (), hint: str | None = None) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` file, read now (``required`` names must be among them), never unpickling."""
    path = Path(path)
    if not path.is_file():
        raise _fail(path, "no such file", hint)
    try:
        z = np.load(path, allow_pickle=False)
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise _fail(path, "a single array (.npy), not an .npz archive", hint)
        with z:
            arrays = {name: z[name] for name in z.files}
    except _NUMPY_ERRORS as exc:
        raise _fail(path, _numpy_problem(exc), hint) from None
    missing = [name for name in required if name not in arrays]
    if missing:
        raise _fail(path, f"has no array {missing[0]!r} (has {', '.join(sorted(arrays)) or 'none'})", hint)
    return arrays


def load_torch(path: str | os.PathLike, hint: str | None = None):
    """A torch file (tensors, numbers, strings, lists and dicts only: ``weights_only=True``)."""
    import pickle

    import torch

    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights only load failed" in str(exc).lower():
            raise _fail(path, "holds Python objects other than tensors, which could run code when loaded; refused",
                        hint) from None
        raise _fail(path, f"damaged or not a torch file ({' '.join(str(exc).split())[:160]})", hint) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, KeyError, TypeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise _fail(path, f"damaged or not a torch file ({first})", hint) from None


def load_json(path: str | os.PathLike, expect: type = dict, hint: str | None = None):
    """A JSON file whose top level is an ``expect`` (dict or list); NaN and Infinity are refused."""
    path = Path(path)

    def no_constants(name):
        raise ValueError(f"{name} is not JSON")

    try:
        data = json.loads(path.read_text(encoding="utf-8"), parse_constant=no_constants)
    except FileNotFoundError:
        raise _fail(path, "no such file", hint) from None
    except (OSError, ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise _fail(path, f"not readable JSON ({' '.join(str(exc).split())[:160]})", hint) from None
    if not isinstance(data, expect):
        raise _fail(path, f"holds a JSON {type(data).__name__}, expected a{'n object' if expect is dict else ' list'}",
                    hint)
    return data

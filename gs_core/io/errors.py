"""The common error of the scene file readers and writers (stdlib only; vendored into the add-on).

Each format has its own subclass (:class:`~gs_core.io.ply.PlyError`, :class:`~gs_core.io.spz.SpzError`,
:class:`~gs_core.io.splat.SplatError`, :class:`~gs_core.io.compressed_ply.CompressedPlyError`), so a
caller can catch one family or all of them. The message always names the file and the problem on
one line; command-line paths turn it into a :class:`~gs_core.errors.UserError` (exit status 2), the
add-on into an operator report. Anything else escaping a reader is a bug (the fuzzer checks this).
"""

from __future__ import annotations


class SceneFormatError(ValueError):
    """A splat scene file that cannot be read or written; the message names the file and the problem."""

"""The one exception type for user mistakes: the CLI prints its message on one line and exits 2."""

from __future__ import annotations


class UserError(Exception):
    """A mistake the user can fix (missing file, bad argument, unwritable folder).

    The message names the file or argument and the problem, on one line, without a traceback.
    Library code raises it (or a subclass, e.g. :class:`~gs_core.dataset.DatasetError`) where the
    cause is the input, never for a bug.
    """

"""File names as text that can always be logged and written.

POSIX file names are bytes; Python decodes the undecodable ones with ``surrogateescape``, and such a ``str``
cannot be encoded as UTF-8 (a log file, report.md, a JSON report would raise ``UnicodeEncodeError``).
:func:`printable` turns those bytes into ``\\xNN`` escapes; every message that names a user's file goes through
it, so a clip named ``b"clip_\\xff.mp4"`` appears as ``clip_\\xff.mp4``.

Example:
    >>> import os
    >>> printable(os.fsdecode(b"clip_\\xff.mp4")), printable("café.mp4")
    ('clip_\\\\xff.mp4', 'café.mp4')
"""

from __future__ import annotations

import os


def printable(text: str | os.PathLike[str]) -> str:
    """``text`` safe to log or write as UTF-8: undecodable bytes of a file name become ``\\xNN`` escapes."""
    if isinstance(text, os.PathLike):
        text = os.fspath(text)
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def encodable(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` encodes as UTF-8 (libraries that take ``str`` names, decord, need it)."""
    try:
        os.fspath(path).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True

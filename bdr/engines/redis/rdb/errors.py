"""The errors of digesting an RDB file, as ``bdr.errors`` classes (docstring = message template).

A file that is not there is "not found" (exit 4); one that cannot be read as a file, or is
not a valid RDB, or holds something bdr cannot digest, is an integrity problem (exit 6):
the backup set holding it cannot be trusted as it is.
"""

from __future__ import annotations

from bdr.errors import BdrError, IntegrityError


class RdbNotFound(BdrError):
    """RDB file {path} not found"""

    exit_code = 4


class RdbUnreadable(IntegrityError):
    """cannot read {path} as an RDB file: {detail}"""


class RdbCorrupt(IntegrityError):
    """{path} is not a valid RDB file: at byte offset {offset}, {detail}; the copy is corrupt or truncated: take the
    backup again, or use an older one"""


class RdbUnsupported(IntegrityError):
    """{path} cannot be digested: at byte offset {offset}, {detail}"""

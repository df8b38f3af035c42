"""The `Content-Disposition` of a download, its file name made from known values only.

A name is put together from values the service just found (a branch code, a card number, a
record's UUID), never from what the request said; the character filter here is the last line,
so that even a surprising stored value cannot break out of the quoted header value.
"""

from __future__ import annotations

import re
import uuid as uuid_module

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def attachment(name: str) -> dict[str, str]:
    """The header that makes a browser save the answer as `name`."""
    return {"Content-Disposition": f'attachment; filename="{_UNSAFE.sub("_", name)}"'}


def short_id(uuid_text: str) -> str:
    """The first eight hex digits of a UUID the service accepted, in its canonical spelling."""
    return str(uuid_module.UUID(str(uuid_text)))[:8]

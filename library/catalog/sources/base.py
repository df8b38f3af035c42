"""What every source client shares: the target asked, the question, a candidate, the failure.

A client takes a `Target` and a `SourceQuery` and returns the records the target sent, each as
a pymarc record read in the target's own record syntax and character set, or raises
`SourceFailed` with a reason code the intake page can show beside the other targets' answers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pymarc import Record as MarcRecord

PROTOCOLS = ("z3950", "sru")
SYNTAXES = ("marc21", "unimarc")  # UNIMARC covers CNMARC, its Chinese profile
CHARSETS = ("utf-8", "marc-8", "gb18030")  # gb18030 reads GBK too: it is a superset


@dataclass(frozen=True)
class Target:
    name: str
    protocol: str  # one of PROTOCOLS
    host: str
    port: int
    database: str
    syntax: str = "marc21"
    charset: str = "utf-8"
    username: str | None = None
    password: str | None = None
    timeout_seconds: float = 10.0
    enabled: bool = True
    uuid: str | None = None  # the row's, when the target is stored


@dataclass(frozen=True)
class SourceQuery:
    """By ISBN (either form), or by title / author / publisher for a book without one."""

    isbn: str | None = None
    title: str | None = None
    author: str | None = None
    publisher: str | None = None


@dataclass
class Candidate:
    target: str  # the target's name
    record: MarcRecord
    syntax: str  # marc21 | unimarc: how `record` is to be read
    raw: bytes = field(repr=False, default=b"")  # as the target sent it (ISO 2709 or MARCXML), kept as provenance


class SourceFailed(Exception):
    """A target could not answer: `reason` is a code in library.errors.MESSAGES
    (source_timeout, source_unreachable, source_garbage, source_refused, ...)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail

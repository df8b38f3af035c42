"""Asking every enabled catalogue at once, and what the intake page shows of their answers.

Each target is asked within its own timeout: a slow one answers `source_timeout` when its time
is up while the others' candidates are already there, one that answers garbage is set aside
with its reason, and nothing one target does holds up or breaks another (asyncio.gather of
answers that never raise).

A candidate the librarian takes comes back to us in a form: its bytes travel with a signature
(HMAC with the node's secret key), so that what is kept as the record's provenance is what the
named target really sent, not what a tampered form says it sent.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import hmac
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pymarc

from library.catalog import marc
from library.catalog.records import RecordInput
from library.catalog.sources import sru, z3950
from library.catalog.sources.base import Candidate, SourceFailed, SourceQuery, Target
from library.errors import MESSAGES
from library.i18n import gettext

log = logging.getLogger(__name__)

Client = Callable[[Target, SourceQuery], Awaitable[list[Candidate]]]
CLIENTS: dict[str, Client] = {"z3950": z3950.search, "sru": sru.search}
FLAVOUR_OF_SYNTAX = {"marc21": "marc21", "unimarc": "cnmarc"}
CANDIDATES_PER_TARGET = 10
# What "how complete" counts: the record form's fields a cataloguer would otherwise type.
COMPLETENESS = ("title", "isbn", "contributors", "publisher", "publication_year", "pages", "subjects", "summary",
                "clc", "series", "age")


@dataclass
class Answer:
    """One target's answer: its candidates, or the reason it gave none."""

    target: Target
    candidates: list[Candidate] = field(default_factory=list)
    failure: str | None = None  # a reason code of library.errors.MESSAGES
    detail: str = ""
    seconds: float = 0.0

    def message(self) -> str:
        """The failure in the reader's language, naming the target."""
        if self.failure is None:
            return ""
        template = MESSAGES.get(self.failure, MESSAGES["source_failed"])
        return gettext(template).format(target=self.target.name, seconds=f"{self.target.timeout_seconds:g}",
                                        host=f"{self.target.host}:{self.target.port}", detail=self.detail or self.failure)


async def ask(target: Target, query: SourceQuery, clients: Mapping[str, Client] = CLIENTS) -> Answer:
    """One target's answer, never an exception: within its timeout, or `source_timeout`."""
    started = time.monotonic()
    client = clients.get(target.protocol)
    try:
        if client is None:
            raise SourceFailed("source_unavailable", target.protocol)
        found = await asyncio.wait_for(client(target, query), target.timeout_seconds)
        answer = Answer(target, candidates=list(found)[:CANDIDATES_PER_TARGET])
    except TimeoutError:
        answer = Answer(target, failure="source_timeout")
    except SourceFailed as failed:
        answer = Answer(target, failure=failed.reason, detail=failed.detail)
    except Exception as error:  # noqa: BLE001 - a client's bug must not cost the other targets their answers
        log.exception("copy cataloguing: %s failed", target.name)
        answer = Answer(target, failure="source_failed", detail=type(error).__name__)
    answer.seconds = time.monotonic() - started
    return answer


async def ask_all(targets: Iterable[Target], query: SourceQuery,
                  clients: Mapping[str, Client] = CLIENTS) -> list[Answer]:
    """Every target at once; the answers in the targets' order."""
    return list(await asyncio.gather(*(ask(target, query, clients) for target in targets)))


# --- what the page shows ------------------------------------------------------------------


def converted(candidate: Candidate, today: dt.date) -> RecordInput | None:
    """The candidate through our MARC mapping (what the record form would be filled with), or
    None when the record cannot be read as its syntax says."""
    try:
        return marc.convert(candidate.record, FLAVOUR_OF_SYNTAX.get(candidate.syntax, "marc21"), today).record
    except Exception:  # noqa: BLE001 - a target's odd record is shown as unreadable, not as an error page
        log.info("copy cataloguing: a record from %s could not be converted", candidate.target, exc_info=True)
        return None


def completeness(data: RecordInput) -> int:
    """How many of COMPLETENESS the record fills."""
    filled = {"title": data.title, "isbn": data.isbn, "contributors": data.contributors, "publisher": data.publisher,
              "publication_year": data.publication_year, "pages": data.pages, "subjects": data.subjects,
              "summary": data.summary, "clc": data.clc, "series": data.series,
              "age": data.age_min is not None or data.age_max is not None}
    return sum(1 for name in COMPLETENESS if filled[name])


def marc_lines(record: pymarc.Record) -> list[str]:
    """The record as a cataloguer reads MARC: one line per field, `$a` before each subfield."""
    lines = [f"LDR {record.leader}"]
    for marc_field in record.fields:
        if marc_field.control_field:
            lines.append(f"{marc_field.tag} {marc_field.data}")
        else:
            indicators = "".join((i or " ")[:1] for i in marc_field.indicators).replace(" ", "#")
            lines.append(f"{marc_field.tag} {indicators} " + " ".join(f"${s.code} {s.value}" for s in marc_field.subfields))
    return lines


def summary(candidate: Candidate, today: dt.date) -> dict[str, Any]:
    data = converted(candidate, today)
    view: dict[str, Any] = {"target": candidate.target, "syntax": candidate.syntax, "marc": marc_lines(candidate.record),
                            "readable": data is not None, "of": len(COMPLETENESS)}
    if data is not None:
        view.update(title=data.title, subtitle=data.subtitle, contributors=data.contributors,
                    publisher=data.publisher, year=data.publication_year, isbn=data.isbn or "",
                    complete=completeness(data))
    return view


def answer_view(answer: Answer, today: dt.date, key: str) -> dict[str, Any]:
    """One target's answer as the page shows it, each candidate with its signed token for taking it."""
    return {"target": answer.target.name, "uuid": answer.target.uuid, "failure": answer.failure,
            "message": answer.message(), "seconds": round(answer.seconds, 2),
            "candidates": [{**summary(candidate, today), "token": sign(key, answer.target, candidate.raw)}
                           for candidate in answer.candidates]}


# --- taking a candidate -------------------------------------------------------------------


def _mac(key: str, target_uuid: str, raw: bytes) -> str:
    message = target_uuid.encode() + b"\x00" + raw
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


def sign(key: str, target: Target, raw: bytes) -> str:
    """The candidate's bytes and their signature, for the form that takes it."""
    return f"{base64.urlsafe_b64encode(raw).decode('ascii')}.{_mac(key, target.uuid or '', raw)}"


def taken(raw: bytes, target: Target) -> Candidate:
    """The candidate again from the bytes its token carried: ISO 2709 from a Z39.50 target,
    MARCXML from an SRU one, read as that client reads what its target sends."""
    return sru.decode(raw, target) if target.protocol == "sru" else z3950.decode(raw, target)


def verified(key: str, target: Target, token: str) -> bytes | None:
    """The bytes the target sent, or None for a token not signed for this target."""
    data, _, mac = (token or "").rpartition(".")
    try:
        raw = base64.urlsafe_b64decode(data.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        return None
    return raw if raw and hmac.compare_digest(mac, _mac(key, target.uuid or "", raw)) else None

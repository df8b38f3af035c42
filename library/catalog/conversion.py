"""A MARC file's records converted into the rows they become: what the converter processes
(library.catalog.converters) run while the importing process writes.

Pure CPU work and light on purpose: no Piccolo, no database. A worker imports this, the
MARC mapping and the record rules, and hands back plain tuples.

A file is cut into *frames* where it is read (`iso2709_frames`, in the importing process):
the bytes up to each record terminator (0x1D), each one position of the file. That is what
a refused record's "original bytes" are, and what keeps one broken record from taking its
neighbours with it: pymarc reads a record by the length its leader states, so a record whose
length is wrong (a Chinese system counting characters instead of bytes) or a run of garbage
would otherwise misplace every record after it.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from typing import IO, Any, NamedTuple

from library.catalog import marc
from library.catalog.marc import Note
from library.catalog.marc_record import pack
from library.catalog.matching import Keys, keys_of
from library.catalog.records import JSON_COLUMNS, VALUE_COLUMNS, record_values
from library.errors import DomainError, InvalidInput, InvalidRecord
from library.i18n import N_

# What an import keeps of the record as it came (library.catalog.marc_record): the whole MARC
# record, its format, where it came from, and whose control number its 001 is (003).
MARC_COLUMNS = ("marc", "marc_format", "marc_source", "control_agency")
# A record's row in an import: its uuid, what `record_values` gives (its keys are the columns
# it fills, see library.catalog.records.VALUE_COLUMNS), the MARC columns, then the two timestamps.
RECORD_COLUMNS = ("uuid", *VALUE_COLUMNS, *MARC_COLUMNS, "created_at", "updated_at")
# What a converted record carries: every column but the two timestamps, in that order.
ROW_COLUMNS = RECORD_COLUMNS[:-2]
ENCODINGS = marc.ENCODINGS
# A frame that does not start with a record (garbage between records) is looked into for one
# this far at most (a record is at most 99,999 bytes).
_RECORD_TERMINATOR = b"\x1d"
_BLANK = b" \t\r\n\x00\x1a"  # what some systems put between records (a newline, a DOS end of file)


class Entry(NamedTuple):
    """A converted record: its position in the file (from 1), where its bytes are, its match
    keys, its row (ROW_COLUMNS, JSON columns as text), its copies, and what was odd about it
    (str or library.catalog.marc.Note each).
    A holding is (uuid, barcode, home branch, current branch, shelf location, item type, status,
    price, acquired on), its branches codes as converted and ids once placed (`place_copies`)."""

    position: int
    offset: int
    length: int
    keys: Keys
    row: tuple
    holdings: list[tuple]
    warnings: list[str]


class Refusal(NamedTuple):
    """A record that is not imported, and why (a str, or a library.catalog.marc.Note that a page
    can translate); its bytes are `length` bytes at `offset` of the file (0, 0 for MARCXML: the
    record is found again by its position)."""

    position: int
    offset: int
    length: int
    control_number: str
    title: str
    reason: str


class ChunkResult(NamedTuple):
    entries: list[Entry]
    refusals: list[Refusal]
    read: int
    flavour: str  # the first record's, as detected (or as asked)


_ISBN, _NUMBER = ROW_COLUMNS.index("isbn13"), ROW_COLUMNS.index("control_number")
_TITLE = ROW_COLUMNS.index("title")


def _uuid7_factory() -> Callable[[], str]:
    """New UUIDs as text, version 7 (RFC 9562): 48 bits of Unix time in milliseconds, then 74
    random bits. Rows imported together get neighbouring keys, so the unique indexes of
    record.uuid and item.uuid (and the change log's) grow at their end instead of taking
    5,000 inserts all over their pages in every batch; and it is half the work of uuid4."""
    import os
    import time

    buffer, position = b"", 0

    def new() -> str:
        nonlocal buffer, position
        if position >= len(buffer):
            buffer, position = os.urandom(10 * 1024), 0
        # Written as text directly (half the time of building the 128-bit number first): the
        # millisecond, version 7 and 12 random bits, the variant (binary 10) and 2 random bits
        # in one hex digit, 60 random bits.
        random = buffer[position:position + 10].hex()
        position += 10
        ms = "%012x" % (time.time_ns() // 1_000_000)
        return f"{ms[:8]}-{ms[8:]}-7{random[:3]}-{'89ab'[int(random[3], 16) & 3]}{random[4:7]}-{random[7:19]}"

    return new


# --- framing -----------------------------------------------------------------------------------


def _starts_a_record(frame: bytes, at: int) -> bool:
    """Whether a record whose leader states exactly the rest of the frame starts at `at`."""
    head = frame[at:at + 5]
    return len(head) == 5 and head.isdigit() and int(head) == len(frame) - at and frame[at + 5:at + 24].isascii()


def _split_frame(frame: bytes) -> list[tuple[int, bytes]]:
    """A frame as (offset in it, bytes) parts: the record, and before it any garbage that is
    not blank. A frame whose first bytes state its length is one record; otherwise the first
    place where a leader states exactly the rest is where the record starts; with none, the
    frame is one part (a record with a wrong length, or garbage) for the reader to judge."""
    start = 0
    while start < len(frame) and frame[start] in _BLANK:
        start += 1
    if start == len(frame):
        return []
    if _starts_a_record(frame, start):
        return [(start, frame[start:])]
    at = start + 1
    while True:
        # A leader begins with five digits: look only where digits are.
        found = next((i for i in range(at, len(frame) - 24) if frame[i] in b"0123456789"), -1)
        if found < 0:
            return [(start, frame[start:])]
        if _starts_a_record(frame, found):
            garbage = frame[start:found]
            parts = [] if not garbage.strip(_BLANK) else [(start, garbage)]
            return parts + [(found, frame[found:])]
        at = found + 1


def iso2709_frames(handle: IO[bytes], block: int = 1 << 20) -> Iterator[tuple[int, bytes]]:
    """(offset in the file, bytes) of each record of an ISO 2709 file read from `handle` a block
    at a time (never the whole file at once): cut at record terminators, garbage between
    records a frame of its own, blanks between them dropped, what follows the last terminator
    a frame too (a truncated record)."""
    pending, pending_at = b"", 0
    while True:
        data = handle.read(block)
        if not data:
            break
        pending += data
        cursor = 0
        while True:
            end = pending.find(_RECORD_TERMINATOR, cursor)
            if end < 0:
                break
            frame = pending[cursor:end + 1]
            for at, part in _split_frame(frame):
                yield pending_at + cursor + at, part
            cursor = end + 1
        pending_at += cursor
        pending = pending[cursor:]
    for at, part in _split_frame(pending):
        yield pending_at + at, part


def frame_chunks(frames: Iterator[tuple[int, bytes]], records: int,
                 first: int | None = None) -> Iterator[tuple[int, list[tuple[int, bytes]]]]:
    """(first position, frames) of consecutive runs of `records` frames (the first run
    `first`, so that writing starts sooner)."""
    position, chunk = 1, []
    size = first or records
    for frame in frames:
        chunk.append(frame)
        if len(chunk) == size:
            yield position, chunk
            position += len(chunk)
            chunk, size = [], records
    if chunk:
        yield position, chunk


def xml_records(handle: IO[bytes]) -> Iterator[tuple[int, bytes]]:
    """Each <record> of a MARCXML file as a document of its own, read as a stream (the file is
    never whole in memory); (0, bytes): a record's place is its position."""
    import xml.etree.ElementTree as ElementTree

    try:
        events = ElementTree.iterparse(handle, events=("end",))
        for _, element in events:
            if element.tag.rsplit("}", 1)[-1] == "record":
                yield 0, ElementTree.tostring(element, encoding="utf-8")
                element.clear()
    except ElementTree.ParseError as error:
        raise InvalidInput("marc_not_marc") from error


# --- reading -------------------------------------------------------------------------------


def _read_one(frame: bytes, position: int, encoding: str) -> tuple[Any, str]:
    """(record or None, reason when None) of one frame, read by library.catalog.marc."""
    first = None
    try:
        for _, record, reason in marc.read_marc(frame, encoding, position):
            if record is not None:
                return record, ""
            first = first or reason
    except DomainError as error:
        return None, Note(N_("Not a MARC record: {why}"), why=error.message())
    return None, first or "unreadable record"


def note_json(note: Any) -> dict[str, Any]:
    """A warning or a reason as kept in a batch's rows: its English text, and its message id and
    values when it has them (library.catalog.marc.Note), for a page to show it translated."""
    if isinstance(note, Note):
        return {"text": str(note), "msgid": note.msgid, "params": note.params}
    return {"text": str(note)}


def _leader_fixed(frame: bytes) -> tuple[bytes, str]:
    """A frame whose leader states another length than the frame's, with the length put right
    (the directory decides the rest), and a warning saying so; else the frame as it is."""
    head = frame[:5]
    if len(frame) >= 24 and head.isdigit() and int(head) != len(frame) and len(frame) <= 99999 \
            and frame[-1:] == _RECORD_TERMINATOR:
        return b"%05d" % len(frame) + frame[5:], Note(
            N_("The leader says the record is {stated} bytes long; it is {length} (read up to its end mark)."),
            stated=int(head), length=len(frame))
    return frame, ""


def _agency(record: Any) -> str:
    fields = record.get_fields("003")
    return (fields[0].data or "").strip() if fields else ""


def convert_chunk(frames: list[tuple[int, bytes]], first_position: int, flavour: str, today: dt.date,
                  encoding: str = "auto", source: str = "import") -> ChunkResult:
    """Read and convert a run of frames (position `first_position` on). Pure CPU work, so it runs
    as well in a converter process as in the importing one (small files). Copies name their
    branches by code (see `place_copies`): a converter starts before the importing process has
    asked the database for its branches. `source`: what each record's marc_source begins with
    ("import <batch uuid>"), its position follows."""
    entries: list[Entry] = []
    refusals: list[Refusal] = []
    seen = ""
    new_uuid = _uuid7_factory()
    to_json = json.JSONEncoder(ensure_ascii=False).encode  # what json.dumps(..., ensure_ascii=False) gives
    json_at = [i for i, column in enumerate(ROW_COLUMNS) if column in JSON_COLUMNS]
    xml = bool(frames) and frames[0][1].lstrip()[:1] == b"<"
    for position, (offset, frame) in enumerate(frames, start=first_position):
        length = 0 if xml else len(frame)
        warnings: list[str] = []
        if not xml:
            frame, warning = _leader_fixed(frame)
            if warning:
                warnings.append(warning)
        record, reason = _read_one(frame, position, encoding)
        if record is None:
            refusals.append(Refusal(position, offset, length, "", "", reason or "unreadable record"))
            continue
        record_flavour = marc.detect_flavour(record) if flavour == "auto" else flavour
        seen = seen or record_flavour
        converted = None
        try:
            converted = marc.convert(record, record_flavour, today)
            values = record_values(converted.record, today)
        except InvalidRecord as error:
            refusals.append(Refusal(position, offset, length,
                                    (converted.record.control_number if converted else "") or "",
                                    (converted.record.title if converted else "") or "",
                                    marc.describe_problems(error)))
            continue
        except (DomainError, ValueError, KeyError, IndexError, AttributeError, TypeError) as error:
            refusals.append(Refusal(position, offset, length, "", "", f"{type(error).__name__}: {error}"))
            continue
        warnings += getattr(converted, "warnings", None) or []
        warnings += getattr(record, "notes", None) or []  # what the reader repaired
        values["uuid"] = new_uuid()
        values["marc"] = pack(record, record_flavour)
        values["marc_format"] = record_flavour
        values["marc_source"] = f"{source} #{position}"
        values["control_agency"] = _agency(record)
        keys = keys_of(values)
        row = [values[column] for column in ROW_COLUMNS]
        for i in json_at:
            row[i] = to_json(row[i]) if row[i] else "[]"  # most records have no other ISBN
        holdings = [(new_uuid(), holding.barcode, holding.home_branch or "", holding.current_branch or "",
                     holding.shelf_location[:100], marc.valid_item_type(holding.item_type), holding.status,
                     holding.price_cents, holding.acquired_on) for holding in converted.holdings]
        entries.append(Entry(position, offset, length, keys, tuple(row), holdings, warnings))
    return ChunkResult(entries, refusals, len(frames), seen)


def place_copies(entries: list[Entry], branches: dict[str, int], default_home: int | None) -> list[Entry]:
    """The copies' branches from codes to ids, in place: an unknown home branch is `default_home`,
    or the copy is left out (with a warning) when there is none; an unknown current branch is
    the home one."""
    for entry in entries:
        holdings = entry.holdings
        if holdings:
            placed = []
            for holding in holdings:
                home = branches.get(holding[2]) or default_home
                if home is not None:
                    placed.append((holding[0], holding[1], home, branches.get(holding[3]) or home, *holding[4:]))
                else:
                    entry.warnings.append(Note(N_("The copy {barcode} names no branch of ours ({branch}) and no "
                                                  "branch was chosen for such copies: it is left out."),
                                               barcode=holding[1], branch=holding[2] or "-"))
            holdings[:] = placed
    return entries

"""MARC exchange with pymarc: MARC21 and CNMARC in and out, ISO 2709 and MARCXML, in the
character sets the files come in (UTF-8, MARC-8, GBK/GB18030).

The field mapping, the character sets and every warning are documented in docs/marc.md.
Import reads records one by one; a record that cannot be read, or whose bytes are not clean
text in its character set, is skipped with its position and reason while the rest imports.
A value that cannot be used (a year 0987, an audience note that says nothing usable) is
left empty with a warning (`Converted.warnings`): the record is kept. Holdings travel in 952
(Koha's layout, MARC21) and 905 (CNMARC).
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import re
import unicodedata
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pymarc
from pymarc import Field, Subfield
from pymarc.marc8_mapping import CODESETS as _MARC8_SETS
from pymarc.marc8_mapping import ODD_MAP as _MARC8_ODD

from library.catalog import rules
from library.catalog.isbn import isbns_in
from library.catalog.records import RecordInput
from library.errors import InvalidInput, InvalidRecord
from library.i18n import N_

# Relator terms and codes ($4, $e) -> our roles (rules.ROLES): MARC21 codes, UNIMARC codes,
# and the words Chinese cataloguers put in CNMARC $4. A code not here is a "contributor".
ROLE_FROM_RELATOR = {
    "aut": "author", "author": "author", "著": "author", "文": "author", "编著": "author", "原著": "author",
    "ill": "illustrator", "illustrator": "illustrator", "绘": "illustrator", "图": "illustrator", "绘图": "illustrator",
    "插图": "illustrator", "图文": "author",
    "trl": "translator", "translator": "translator", "译": "translator", "翻译": "translator", "编译": "translator",
    "edt": "editor", "editor": "editor", "编": "editor", "主编": "editor", "编辑": "editor", "选编": "editor",
    "com": "editor", "compiler": "editor",
    "adp": "adapter", "adapter": "adapter", "改编": "adapter", "改写": "adapter",
    "ctb": "contributor", "contributor": "contributor",
    # the abbreviations of older MARC21 records' $e
    "joint author": "author", "writer": "author", "ill": "illustrator", "illus": "illustrator", "artist": "illustrator",
    "tr": "translator", "trans": "translator", "ed": "editor", "joint ed": "editor", "comp": "editor",
    "joint comp": "editor", "editor of compilation": "editor",
    # UNIMARC relator codes (Appendix C)
    "070": "author", "440": "illustrator", "730": "translator", "340": "editor", "220": "editor",
    "010": "adapter", "205": "contributor", "570": "contributor",
}
RELATOR_OF_ROLE = {"author": "aut", "illustrator": "ill", "translator": "trl", "editor": "edt", "adapter": "adp",
                   "contributor": "ctb"}
FORMAT_GENRE = {"picture_book": "Picture books", "board_book": "Board books", "pop_up_book": "Pop-up books",
                "bridge_book": "Early readers", "chapter_book": "Chapter books", "comic": "Comics (Graphic works)",
                "book": "Books", "audio_book": "Audiobooks", "other": "Other"}
GENRE_FORMAT = {genre.casefold(): fmt for fmt, genre in FORMAT_GENRE.items()}
ITEM_STATUSES = ("available", "on_loan", "in_transit", "on_hold_shelf", "in_processing", "missing", "lost",
                 "damaged", "withdrawn")
# The character sets a file can be read in; "auto" decides per record (see `read_marc`).
ENCODINGS = ("auto", "utf-8", "marc-8", "gb18030")
_ENCODING_NAMES = {"auto": "auto", "": "auto", "utf-8": "utf-8", "utf8": "utf-8", "unicode": "utf-8",
                   "marc-8": "marc-8", "marc8": "marc-8", "gb18030": "gb18030", "gbk": "gb18030", "gb2312": "gb18030",
                   "cp936": "gb18030"}
# The non-sort marks: UNIMARC's NSB/NSE (ISO 6630, U+0088/U+0089, or ESC H / ESC I in seven
# bits) and MARC-8's, as LC maps them to Unicode (U+0098/U+009C).
NON_SORT_MARKS = "\x88\x89\x98\x9c"


class Note(str):
    """A warning or a reason, in English, that also carries its message id and values, so that
    a page can show it in the reader's language: `note.translated(gettext)`. It is a str
    everywhere else (stored, compared, joined)."""

    msgid: str
    params: dict[str, Any]

    def __new__(cls, msgid: str, **params: Any) -> Note:
        note = super().__new__(cls, msgid.format(**params))
        note.msgid, note.params = msgid, params
        return note

    def __reduce__(self) -> tuple:  # the converter processes send notes back pickled
        return (_note, (self.msgid, self.params))

    def translated(self, gettext: Callable[[str], str]) -> str:
        return gettext(self.msgid).format(**self.params)


def _note(msgid: str, params: dict[str, Any]) -> Note:
    return Note(msgid, **params)


@dataclass
class Holding:
    barcode: str
    home_branch: str | None = None
    current_branch: str | None = None
    call_number: str = ""
    item_type: str = ""
    shelf_location: str = ""
    price_cents: int | None = None
    acquired_on: dt.date | None = None
    status: str = "available"


@dataclass
class Converted:
    record: RecordInput
    holdings: list[Holding] = field(default_factory=list)
    # What was read but could not be used (a value left empty, a note ignored): the record is kept.
    warnings: list[str] = field(default_factory=list)


@dataclass
class Skipped:
    position: int
    reason: str
    control_number: str = ""


@dataclass
class ImportReport:
    read: int = 0
    created: int = 0
    updated: int = 0
    items_created: int = 0
    items_updated: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    flavour: str = ""


# --- the record as read --------------------------------------------------------------------


class LightField:
    """A field as read: `data` of a control field (None for a data field), `indicators` (two
    characters; "" for a control field) and `subfields` [(code, value)] of a data field. The
    part of pymarc's Field that the conversion and library.catalog.marc_record read."""

    __slots__ = ("tag", "data", "subfields", "indicators")

    def __init__(self, tag: str, data: str | None, subfields: list[tuple[str, str]], indicators: str = "") -> None:
        self.tag, self.data, self.subfields, self.indicators = tag, data, subfields, indicators

    @property
    def control_field(self) -> bool:
        return self.data is not None

    def get_subfields(self, *codes: str) -> list[str]:
        return [value for code, value in self.subfields if code in codes]

    def __repr__(self) -> str:
        if self.data is not None:
            return f"={self.tag}  {self.data}"
        return f"={self.tag}  {self.indicators.replace(' ', '#')}" + "".join(f"${c}{v}" for c, v in self.subfields)


class LightRecord:
    """A record as read: its `leader` (24 characters), every field in file order (`fields`),
    the same fields found by tag (`by_tag`), and the character set it was read in
    (`encoding`: "utf-8", "marc-8", "gb18030", or "xml" for MARCXML, which its parser decodes).
    `notes`: what was odd in reading it (pymarc's warnings), for the record's own report."""

    __slots__ = ("leader", "fields", "by_tag", "encoding", "notes")

    def __init__(self, leader: str, fields: list[LightField], by_tag: dict[str, list[LightField]] | None = None,
                 encoding: str = "") -> None:
        self.leader, self.fields, self.encoding = leader, fields, encoding
        self.notes: list[str] = []
        if by_tag is None:
            by_tag = {}
            for marc_field in fields:
                by_tag.setdefault(marc_field.tag, []).append(marc_field)
        self.by_tag = by_tag

    def get_fields(self, *tags: str) -> list[LightField]:
        if len(tags) == 1:
            return self.by_tag.get(tags[0], [])
        return [marc_field for marc_field in self.fields if marc_field.tag in tags]

    def __getitem__(self, tag: str) -> LightField:
        fields = self.by_tag.get(tag)
        if not fields:
            raise KeyError(tag)
        return fields[0]

    def __repr__(self) -> str:
        return "\n".join([f"=LDR  {self.leader}", *map(repr, self.fields)])


def light(record: pymarc.Record | LightRecord, encoding: str = "") -> LightRecord:
    """What the conversion reads of a record (pymarc's own records, from MARCXML or built in
    code, are copied into the same shape)."""
    if isinstance(record, LightRecord):
        return record
    fields: list[LightField] = []
    for marc_field in record.fields:
        if marc_field.control_field:
            fields.append(LightField(marc_field.tag, marc_field.data or "", [], ""))
        else:
            indicators = "".join((i or " ")[:1] for i in marc_field.indicators) if marc_field.indicators else ""
            fields.append(LightField(marc_field.tag, None, [(s.code, s.value) for s in marc_field.subfields],
                                     indicators.ljust(2)[:2]))
    leader = str(record.leader) if record.leader is not None else ""
    return LightRecord(leader, fields, None, encoding)


# --- character sets -------------------------------------------------------------------------


class _Unclean(ValueError):
    """A field whose bytes are not clean text in the character set tried."""

    def __init__(self, tag: str, problem: str, codec: str = "") -> None:
        super().__init__(f"{tag}: {problem}")
        self.tag, self.problem, self.codec = tag, problem, codec


def encoding_choice(value: str | bool | None) -> str:
    """One of ENCODINGS from what a command line or a form says ("GBK" is read as GB18030, its
    superset). True / False / None are the old `force_utf8` flag: UTF-8, or decide per record."""
    if value is True:
        return "utf-8"
    if value is None or value is False:
        return "auto"
    name = _ENCODING_NAMES.get(str(value).strip().casefold())
    if name is None:
        raise InvalidInput("invalid_choice", field="encoding")
    return name


_MARC8_BASIC, _MARC8_ANSEL, _MARC8_EACC = 0x42, 0x45, 0x31


def _marc8(data: bytes) -> str:
    """MARC-8 to Unicode (NFC), strictly: a byte that no MARC-8 set in force maps is an error.

    pymarc's own decoder (pymarc.marc8) turns what it cannot map into a space and drops the
    C1 controls (the non-sort marks among them) without a word; an import must report such a
    record instead of storing it changed. The tables are pymarc's. Each subfield starts in
    the default sets (basic Latin and ANSEL), as the MARC-8 specification says."""
    if data.isascii() and b"\x1b" not in data:
        return data.decode("ascii")
    if b"\x1f" in data:
        return "\x1f".join(_marc8_run(part) for part in data.split(b"\x1f"))
    return _marc8_run(data)


def _marc8_run(data: bytes) -> str:
    g0, g1 = _MARC8_BASIC, _MARC8_ANSEL
    out: list[str] = []
    combining: list[str] = []
    pos, size = 0, len(data)
    while pos < size:
        byte = data[pos]
        if byte == 0x1B:  # an escape sequence designates a set, or is a non-sort mark
            intermediate = data[pos + 1:pos + 2]
            if intermediate in (b"H", b"I"):  # ISO 6630 NSB / NSE in seven bits (UNIMARC)
                out.append("\x88" if intermediate == b"H" else "\x89")
                pos += 2
                continue
            if intermediate in (b"(", b",", b"$", b")", b"-"):
                step = 2
                if intermediate == b"$" and data[pos + 2:pos + 3] in (b",", b")", b"-"):
                    intermediate += data[pos + 2:pos + 3]
                    step = 3
                final = data[pos + step] if pos + step < size else -1
                if final not in _MARC8_SETS:
                    raise ValueError(f"unknown MARC-8 character set ESC {intermediate.decode()} {final:#x}")
                if intermediate in (b")", b"-", b"$)", b"$-"):
                    g1 = final
                else:
                    g0 = final
                pos += step + 1
                continue
            final = data[pos + 1] if pos + 1 < size else -1
            if final == 0x73:  # ESC s: back to ASCII
                g0 = _MARC8_BASIC
            elif final in (0x62, 0x67, 0x70):  # subscripts, Greek symbols, superscripts
                g0 = final
            else:
                raise ValueError(f"unknown MARC-8 escape sequence at byte {pos}")
            pos += 2
            continue
        if g0 == _MARC8_EACC and 0x21 <= byte <= 0x7E:
            if pos + 3 > size:
                raise ValueError(f"a three-byte EACC character is cut short at byte {pos}")
            code = int.from_bytes(data[pos:pos + 3], "big")
            pos += 3
            mapped = _MARC8_SETS[_MARC8_EACC].get(code)
            if mapped is None:
                odd = _MARC8_ODD.get(code)
                if odd is None:
                    raise ValueError(f"EACC character {code:#08x} has no Unicode mapping")
                mapped = (odd, 0)
        else:
            pos += 1
            if byte < 0x20 or byte == 0x7F:
                out.append(chr(byte))  # a control character stands for itself (pymarc drops it)
                continue
            if byte == 0x20:
                mapped = (0x20, 0)
            elif 0x80 <= byte < 0xA0:  # C1: MARC-8 defines NSB, NSE, ZWJ and ZWNJ there
                mapped = _MARC8_SETS[_MARC8_ANSEL].get(byte)
            else:
                table = _MARC8_SETS[g0 if byte < 0x80 else g1]
                mapped = table.get(byte) or table.get(byte ^ 0x80)
            if mapped is None:
                raise ValueError(f"byte {byte:#04x} is not a character of the MARC-8 set in force")
        character, is_combining = chr(mapped[0]), mapped[1]
        if is_combining:
            combining.append(character)  # MARC-8 puts a diacritic before its letter, Unicode after
        else:
            out.append(character)
            if combining:
                out.extend(combining)
                combining = []
    if combining:
        raise ValueError("a diacritic with no letter after it")
    return unicodedata.normalize("NFC", "".join(out))


# NSB, a few ASCII characters, NSE: a non-sort run in a GBK/GB18030 record written with the
# raw C1 bytes 0x88/0x89. Those bytes are also GBK lead bytes, so they are taken as marks only
# here, at a character boundary, around ASCII text ("\x88The \x89").
_GB_NON_SORT = re.compile(rb"\x88([\x20-\x7e]{1,40})\x89")


def _gb18030(data: bytes) -> str:
    if b"\x88" not in data:
        return data.decode("gb18030")
    parts: list[str] = []
    start = pos = 0
    size = len(data)
    while pos < size:
        byte = data[pos]
        if byte == 0x88:
            match = _GB_NON_SORT.match(data, pos)
            if match:
                parts.append(data[start:pos].decode("gb18030"))
                parts.append("\x88" + match.group(1).decode("ascii") + "\x89")
                start = pos = match.end()
                continue
        if byte < 0x80:
            pos += 1
        elif pos + 1 < size and 0x30 <= data[pos + 1] <= 0x39:
            pos += 4
        else:
            pos += 2
    parts.append(data[start:].decode("gb18030"))
    return "".join(parts)


def _decoded(data: bytes, codec: str) -> str:
    if codec == "utf-8":
        return data.decode("utf-8")
    if codec == "gb18030":
        return _gb18030(data)
    return _marc8(data)


_CODEC_NAMES = {"utf-8": "UTF-8", "gb18030": "GBK/GB18030", "marc-8": "MARC-8"}
_DIRECTORY_ENTRY = re.compile(r"([0-9A-Za-z]{3})(\d{4})(\d{5})")


def _frame(chunk: bytes) -> tuple[str, list[tuple[str, bytes]]] | None:
    """The leader and each field's bytes, sliced by the directory's byte offsets and lengths;
    None when the frame is not one pymarc's decode_marc reads the same way (pymarc then reads
    it, or says why it cannot)."""
    try:
        leader = chunk[:24].decode("ascii")
        base = int(chunk[12:17])
        if len(leader) != 24 or base <= 0 or base >= len(chunk) or len(chunk) < int(leader[:5]):
            return None
        directory = chunk[24:base - 1].decode("ascii")
    except (UnicodeDecodeError, ValueError):
        return None
    entries = _DIRECTORY_ENTRY.findall(directory)
    if not entries or len(entries) * 12 != len(directory):
        return None
    raw = []
    for tag, length, offset in entries:
        start = base + int(offset)
        raw.append((tag, chunk[start:start + int(length) - 1]))
    return leader, raw


class _Collected(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


_PYMARC_LOG = logging.getLogger("pymarc")


def _pymarc_record(chunk: bytes) -> tuple[pymarc.Record, list[str]]:
    """pymarc's reading of a frame, and what it warned about on the way: its log lines ("missing
    indicators") and Python warnings (a bad subfield code). They belong in the record's own
    report, not on the importing terminal between the progress bar's lines."""
    collected = _Collected()
    propagate, _PYMARC_LOG.propagate = _PYMARC_LOG.propagate, False
    _PYMARC_LOG.addHandler(collected)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            record = pymarc.Record(chunk, to_unicode=False)
    finally:
        _PYMARC_LOG.removeHandler(collected)
        _PYMARC_LOG.propagate = propagate
    return record, [*collected.messages, *(f"{type(w.message).__name__}: {w.message}" for w in caught)]


def _pymarc_frame(chunk: bytes) -> tuple[str, list[tuple[str, bytes]], list[str]]:
    """What pymarc reads of a frame ours does not (a tag of other characters, indicators
    missing or too many), as bytes to decode like ours, and pymarc's warnings; pymarc's error
    when it cannot."""
    record, said = _pymarc_record(chunk)
    raw = []
    for marc_field in record.fields:
        if marc_field.control_field:
            raw.append((marc_field.tag, marc_field.data))
        else:
            indicators = "".join((i or " ")[:1] for i in marc_field.indicators).ljust(2)[:2]
            raw.append((marc_field.tag, indicators.encode("ascii", "replace") + b"".join(
                b"\x1f" + s.code.encode("utf-8") + s.value for s in marc_field.subfields)))
    return str(record.leader), raw, said


def _build(leader: str, raw: list[tuple[str, bytes]], codec: str, plain: bool = False) -> LightRecord | None:
    """The record with every field decoded in `codec`; _Unclean when a field is not clean text
    in it; None when its indicators or subfield codes are not ASCII (pymarc decides then).
    `plain`: the record's bytes hold no escape and no U+FFFD (the common case, checked once
    for the whole record by the caller instead of field by field)."""
    fields: list[LightField] = []
    by_tag: dict[str, list[LightField]] = {}
    notes: list[str] = []
    for tag, data in raw:
        try:
            text = data.decode("utf-8") if codec == "utf-8" else _decoded(data, codec)
        except (UnicodeDecodeError, ValueError) as error:
            raise _Unclean(tag, str(error), codec) from None
        if not plain:
            if "\ufffd" in text:
                raise _Unclean(tag, "U+FFFD replacement characters: text was lost before the file was written", codec)
            if "\x1b" in text:  # ISO 6630 NSB / NSE in seven bits, inside UTF-8 or GB18030 text
                text = text.replace("\x1bH", "\x88").replace("\x1bI", "\x89")
        if tag < "010" and tag.isdigit():
            marc_field = LightField(tag, text, [], "")
        else:
            parts = text.split("\x1f")
            head = parts[0]
            if not head.isascii():
                return None
            subfields = [(part[0], part[1:]) for part in parts[1:] if part]
            for code, _ in subfields:
                if not code.isascii():
                    return None
            if len(head) != 2:  # read as pymarc reads it: missing ones blank, extra ones dropped
                notes.append(Note(N_("Field {tag} has {count} indicators instead of two: read as \"{indicators}\"."),
                                  tag=tag, count=len(head), indicators=head[:2].ljust(2)))
            marc_field = LightField(tag, None, subfields, head[:2] if len(head) >= 2 else head.ljust(2))
        fields.append(marc_field)
        if tag in by_tag:
            by_tag[tag].append(marc_field)
        else:
            by_tag[tag] = [marc_field]
    if not fields:
        return None
    record = LightRecord(leader, fields, by_tag, codec)
    record.notes = notes
    return record


# A GB18030 character of more than one byte; group 1 when its second byte is ASCII.
_GB_CHARACTER = re.compile(rb"[\x81-\xfe](?:[\x30-\x39][\x81-\xfe][\x30-\x39]|[\x80-\xfe])|([\x81-\xfe][\x40-\x7e])")


def _looks_like_gb(data: bytes) -> bool:
    """Whether bytes that decode as GB18030 look like Chinese text in it: most of their
    double-byte characters in GB2312's area (both bytes high), as Chinese text is. MARC-8
    diacritics (a high byte before an ASCII letter) decode as GBK's rare characters with a
    low second byte instead."""
    high = low = 0
    for match in _GB_CHARACTER.finditer(data):
        if match.group(1):
            low += 1
        else:
            high += 1
    return high > 0 and high >= 2 * low


def _looks_like_marc8(record: LightRecord) -> bool:
    """Whether a record decoded as MARC-8 reads like text in it: every diacritic sits on a
    letter. GBK's bytes decoded as MARC-8 put diacritics on spaces, signs and other diacritics."""
    for marc_field in record.fields:
        values = [marc_field.data] if marc_field.data is not None else [v for _, v in marc_field.subfields]
        for value in values:
            if value.isascii():
                continue
            previous = " "
            for character in value:
                if unicodedata.combining(character) and not previous.isalpha():
                    return False
                if not unicodedata.combining(character):
                    previous = character
    return True


def _candidates(leader: str, raw: list[tuple[str, bytes]]) -> tuple[str, ...]:
    """The character sets to try, in order, for a record that is not UTF-8 (see docs/marc.md):
    escape sequences say MARC-8; a CNMARC record (200, no 245) is GBK/GB18030 whatever its 100
    $a says, as CALIS, NLC and vendor files are; a MARC21 record MARC-8 first, as leader/09
    blank says, unless its bytes read as GBK."""
    escapes = sum(data.count(b"\x1b") - data.count(b"\x1bH") - data.count(b"\x1bI") for _, data in raw)
    if escapes:
        return ("marc-8", "gb18030")
    tags = {tag for tag, _ in raw}
    if "200" in tags and "245" not in tags:
        return ("gb18030", "marc-8")
    return ("marc-8", "gb18030")


_HIGH = bytes(range(0x80, 0x100))
_UTF8_SEQUENCE = re.compile(rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}")


def _damaged_utf8(data: bytes) -> bool:
    """Whether bytes that are not valid UTF-8 are nevertheless UTF-8 text with a few bytes
    broken: nearly all their high bytes form UTF-8 sequences. Decoded as GB18030 they would
    mostly decode, as nonsense (GBK's pairs fall in the same ranges)."""
    high = len(data) - len(data.translate(None, _HIGH))
    in_sequences = sum(len(match) for match in _UTF8_SEQUENCE.findall(data))
    return high > 0 and in_sequences >= 0.9 * high


def _decode_record(leader: str, raw: list[tuple[str, bytes]], encoding: str, plain: bool = False) -> LightRecord | None:
    """The record in `encoding`, or as detected when it is "auto"; _Unclean when it is not
    clean text in the character set chosen, or in any it may be in."""
    if encoding != "auto":
        return _build(leader, raw, encoding, plain and encoding == "utf-8")
    try:
        return _build(leader, raw, "utf-8", plain)
    except _Unclean as error:
        if error.problem.startswith("U+FFFD") or _damaged_utf8(b"".join(data for _, data in raw)):
            raise
        first_problem = error
    data = b"".join(data for _, data in raw)
    clean: dict[str, LightRecord] = {}
    for codec in _candidates(leader, raw):
        try:
            record = _build(leader, raw, codec)
        except _Unclean:
            continue
        if record is None:
            return None
        if codec == "gb18030" and _looks_like_gb(data):
            return record
        if codec == "marc-8" and _looks_like_marc8(record):
            return record
        clean[codec] = record
    if clean:
        # Clean in a set but not quite like text in it (a few rare characters): the first
        # set tried that reads it.
        return next(iter(clean.values()))
    raise _Unclean(first_problem.tag, "not clean text in UTF-8, GBK/GB18030 or MARC-8")  # no codec: none fits


def _decoded_frame(framed: tuple[str, list[tuple[str, bytes]]], encoding: str,
                   plain: bool = False) -> tuple[LightRecord | None, str]:
    try:
        return _decode_record(*framed, encoding, plain), ""
    except _Unclean as error:
        if not error.codec:
            return None, Note(N_("Field {tag} is not clean text in UTF-8, GBK/GB18030 or MARC-8: the record is left "
                                 "out rather than stored with wrong characters."), tag=error.tag)
        return None, Note(N_("Field {tag} is not clean {encoding} text ({problem}): the record is left out rather "
                             "than stored with wrong characters."),
                          tag=error.tag, encoding=_CODEC_NAMES[error.codec], problem=error.problem)


def _read_record(chunk: bytes, encoding: str) -> tuple[LightRecord | None, str]:
    """One record's frame, read and decoded: (record, "") or (None, the reason)."""
    framed = _frame(chunk)
    if framed is not None:
        record, reason = _decoded_frame(framed, encoding, b"\x1b" not in chunk and b"\xef\xbf\xbd" not in chunk)
        if record is not None or reason:
            return record, reason
    try:
        leader, raw, said = _pymarc_frame(chunk)
    except Exception as error:  # noqa: BLE001 - pymarc's reader reports any error the same way
        return None, f"{type(error).__name__}: {error}".strip()
    record, reason = _decoded_frame((leader, raw), encoding)
    if record is not None:
        record.notes += [Note(N_("Read with a repair: {message}"), message=message) for message in said]
    return record, reason or ("" if record is not None else "unreadable record")


def read_marc(data: bytes, encoding: str | bool | None = "auto",
              first_position: int = 1) -> Iterator[tuple[int, LightRecord | None, str]]:
    """(position from 1, record or None, reason when None), for ISO 2709 or MARCXML.

    `encoding` is one of ENCODINGS: what the file is in, or "auto" to decide per record (valid
    UTF-8 is UTF-8; otherwise see `_candidates`). Each field is sliced by the directory's byte
    offsets, then decoded; a record that is not clean text in the character set chosen (or in
    any, when detecting) is reported, never stored with replacement characters. Every record
    says what it was read in (`LightRecord.encoding`)."""
    encoding = encoding_choice(encoding)
    head = data.lstrip()[:200]
    if head.startswith(b"<"):
        try:
            records = pymarc.parse_xml_to_array(io.BytesIO(data), strict=False)
        except Exception as error:  # noqa: BLE001 - any XML error means the file is unreadable as a whole
            raise InvalidInput("marc_not_marc") from error
        for position, record in enumerate(records, start=first_position):
            yield position, light(record, "xml"), ""
        return
    if len(data) < 24 or not data[:5].isdigit():
        raise InvalidInput("marc_not_marc")
    # Well-formed frames are cut here (and each record decoded as above); from the first one
    # that is not, pymarc's reader goes on, so that what a broken frame means, and where the
    # next record starts, stay its decisions.
    position, cursor, size = first_position, 0, len(data)
    while cursor < size:
        first5 = data[cursor:cursor + 5]
        length = int(first5) if len(first5) == 5 and first5.isdigit() else 0
        chunk = data[cursor:cursor + length] if length >= 24 else b""
        if len(chunk) != length or not chunk or chunk[-1] != 0x1D:
            break
        cursor += length
        record, reason = _read_record(chunk, encoding)
        yield position, record, reason
        position += 1
    if cursor >= size:
        return
    reader = pymarc.MARCReader(io.BytesIO(data[cursor:]), to_unicode=False, permissive=True)
    for position, record in enumerate(reader, start=position):
        if record is None:
            error = reader.current_exception
            yield position, None, f"{type(error).__name__}: {error}".strip() if error else "unreadable record"
        else:
            yield (position, *_read_record(reader.current_chunk, encoding))


def iso2709_chunks(data: bytes, records_per_chunk: int, first_chunk: int | None = None) -> Iterator[tuple[int, bytes]]:
    """(first position, bytes) of consecutive runs of records, cut at record terminators;
    the first run may be shorter (`first_chunk` records), so that writing starts sooner."""
    start, position, count = 0, 1, 0
    cursor = 0
    size = first_chunk or records_per_chunk
    while True:
        end = data.find(b"\x1d", cursor)
        if end < 0:
            break
        count += 1
        cursor = end + 1
        if count == size:
            yield position, data[start:cursor]
            start, position, count = cursor, position + count, 0
            size = records_per_chunk
    if start < len(data) and data[start:].strip():
        yield position, data[start:]


def _looks_like_utf8(data: bytes) -> bool:
    """Whether a whole file is UTF-8 (then `read_marc(data, "utf-8")` is the same as "auto")."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def detect_flavour(record: pymarc.Record | LightRecord) -> str:
    """CNMARC (UNIMARC) puts the title in 200; MARC21 in 245."""
    if record.get_fields("245"):
        return "marc21"
    if record.get_fields("200"):
        return "cnmarc"
    return "marc21"


# --- MARC -> our record -------------------------------------------------------------------


def _first(record: LightRecord, tag: str, code: str) -> str:
    for marc_field in record.by_tag.get(tag, ()):
        for subfield_code, value in marc_field.subfields:
            if subfield_code == code:
                return value.strip()
    return ""


def _all(record: LightRecord, tag: str, code: str) -> list[str]:
    return [value.strip() for marc_field in record.by_tag.get(tag, ()) for subfield_code, value in marc_field.subfields
            if subfield_code == code and value.strip()]


def _trim(text: str) -> str:
    """ISBD punctuation at the end of a MARC21 subfield: 'Title /', 'Publisher,'."""
    # Spaces (anything str.isspace() calls one) and / : ; , = . cut from the end, in any mix,
    # then spaces from the start: str methods, not a regular expression, as this runs on a
    # dozen subfields of every record an import reads.
    text = text or ""
    while True:
        trimmed = text.rstrip().rstrip("/:;,=.")
        if trimmed == text:
            return trimmed.lstrip()
        text = trimmed


_NON_SORT_TABLE = str.maketrans("", "", NON_SORT_MARKS)


def without_non_sort_marks(text: str) -> str:
    """A value as shown and indexed: the non-sort marks gone, the words between them kept
    ("\\x88The \\x89Hobbit" is "The Hobbit"). The kept MARC record keeps the marks."""
    return text.translate(_NON_SORT_TABLE) if text and not text.isascii() else text


def _text(value: str) -> str:
    """A MARC21 value as one of our texts: ISBD punctuation trimmed, non-sort marks gone."""
    text = _trim(value)
    return text if text.isascii() else text.translate(_NON_SORT_TABLE)


_COMMA = re.compile(r"\s*,\s*")


def _name(value: str) -> str:
    """A personal or corporate name: 'Asimov , Isaac ,' is 'Asimov, Isaac'."""
    name = _text(value)
    if "," in name and (" ," in name or name.count(",") != name.count(", ") or ",  " in name):
        name = _COMMA.sub(", ", name)
    if "  " in name or "\t" in name or "\n" in name:
        name = " ".join(name.split())
    return name


_FOUR_DIGITS = re.compile(r"(?<!\d)\d{4}(?!\d)")


def _year(text: str, where: str, today: dt.date, warnings: list[str]) -> int | None:
    """The first plausible year in a date statement ('c1987.', '[2008]', '2019印刷'); a
    four-digit number out of range is a warning, not a year."""
    if not text:
        return None
    bad = ""
    for match in _FOUR_DIGITS.finditer(text):
        year = int(match.group(0))
        if 1400 <= year <= today.year + 1:
            return year
        bad = bad or match.group(0)
    if bad:
        warnings.append(Note(N_("{where}: the year {value} is out of range (1400 to {latest}); left empty."),
                             where=where, value=bad, latest=today.year + 1))
    return None


_PAGES = re.compile(r"(\d+)\s*\]?\s*(?:unnumbered\s+)?(?:pages?\b|p\b|p\.|leaves\b|l\.|页|頁|面)", re.IGNORECASE)
_ONLY_A_NUMBER = re.compile(r"\s*\[?(\d+)\]?\s*")


def _pages(text: str, where: str, warnings: list[str]) -> int | None:
    """Pages from an extent ('32 pages', 'xii, 345 p.', '[32]页'); a number of volumes ('1 v.',
    '2册') is not a number of pages."""
    if not text:
        return None
    match = _PAGES.search(text) or _ONLY_A_NUMBER.fullmatch(text)
    if not match:
        return None
    pages = int(match.group(1))
    if not 1 <= pages <= 10000:
        warnings.append(Note(N_("{where}: {value} pages is out of range (1 to 10000); left empty."),
                             where=where, value=pages))
        return None
    return pages


def _role(marc_field: LightField, default: str, codes: tuple[str, ...] = ("4", "e")) -> str:
    """Our role from the relator codes or terms of a name field; `default` when it has none,
    "contributor" when it has only codes we do not know."""
    seen = False
    for code in codes:
        for value in marc_field.get_subfields(code):
            term = _trim(value).casefold()
            if not term:
                continue
            seen = True
            role = ROLE_FROM_RELATOR.get(term)
            if role:
                return role
    return "contributor" if seen else default


def _price_cents(text: str) -> int | None:
    match = _PRICE.search(text or "")
    return int(round(float(match.group(0)) * 100)) if match else None


_PRICE = re.compile(r"\d+(?:\.\d{1,2})?")


def _date(text: str) -> dt.date | None:
    if not text:
        return None  # most copies carry no date: not worth an exception each
    try:
        return dt.date.fromisoformat(text.strip()[:10])
    except ValueError:
        return None


_DIGIT = re.compile(r"[0-9]")


def _isbns_of(value: str) -> list[str]:
    """isbns_in(value), with the usual 020 $a of a Chinese record ("9787544254588 (精装)": an
    ISBN-13, a space, a qualifier without digits) read as its bare ISBN-13 at once: what
    isbns_in's search finds in it then, at a third of the cost."""
    if len(value) > 14 and value[13] == " ":
        head = value[:13]
        if head.isdigit() and head.isascii() and not _DIGIT.search(value, 14):
            return isbns_in(head)
    return isbns_in(value)


def _isbns(record: LightRecord, tag: str) -> list[str]:
    found: list[str] = []
    for value in _all(record, tag, "a") + _all(record, tag, "z"):
        for isbn13 in _isbns_of(value):
            if isbn13 not in found:
                found.append(isbn13)
    return found


# --- audience notes (MARC21 521, CNMARC 333) ----------------------------------------------------

_RANGE_SEPARATOR = r"\s*(?:-|–|—|~|～|to|through|至|到)\s*"
_AND_UP = r"\s*(?:\+|and\s+up|and\s+older|&\s*up|以上)"
_AGES_WORD = re.compile(rf"\bages?\b\D{{0,12}}?(\d{{1,2}})(?:{_RANGE_SEPARATOR}(\d{{1,2}}))?({_AND_UP})?",
                        re.IGNORECASE)
_YEARS_OLD = re.compile(rf"(\d{{1,2}})(?:{_RANGE_SEPARATOR}(\d{{1,2}}))?\s*(?:years?|yrs?\.?|year-olds?|周岁|岁)"
                        rf"(?:\s*(?:old|of age))?({_AND_UP})?(\s*以下)?", re.IGNORECASE)
_GRADE = r"(pre-?k(?:indergarten)?|pre-?school|k(?:indergarten)?|\d{1,2})"
_GRADES_WORD = re.compile(rf"(?:\b{_GRADE}{_RANGE_SEPARATOR})?\b(?:grades?|gr\.)\s*{_GRADE}"
                          rf"(?:{_RANGE_SEPARATOR}(?:grades?\s*)?{_GRADE})?({_AND_UP})?", re.IGNORECASE)
_PRESCHOOL_ALONE = re.compile(r"\b(?:pre-?school|pre-?k(?:indergarten)?)\b", re.IGNORECASE)
_CHINESE_NUMERALS = {"一": 1, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6}
_CHINESE_GRADES = re.compile(rf"([1-6一二三四五六])(?:\s*年级)?(?:{_RANGE_SEPARATOR}([1-6一二三四五六]))?\s*年级")
_BARE = re.compile(rf"\s*(k|\d{{1,2}})(?:{_RANGE_SEPARATOR}(k|\d{{1,2}}))?({_AND_UP})?\s*\.?\s*", re.IGNORECASE)
# The age a US grade is reached at: grade g from g + 5 to g + 6 (kindergarten, grade 0, at 5;
# preschool and pre-kindergarten 3 to 4). China's primary school starts at 6 too.
PRESCHOOL_AGES = (3, 4)


def _grade_number(text: str) -> int | None:
    """Kindergarten is 0, preschool -1; None for what is no grade."""
    text = text.casefold().replace("-", "")
    if text.startswith(("prek", "preschool")):
        return -1
    if text.startswith("k"):
        return 0
    if text in _CHINESE_NUMERALS:
        return _CHINESE_NUMERALS[text]
    return int(text) if text.isdecimal() else None  # "²" is a digit int() refuses


def _ages_of_grades(low: int | None, high: int | None, and_up: bool) -> tuple[int | None, int | None]:
    if low is None:
        return None, None
    youngest = PRESCHOOL_AGES[0] if low < 0 else low + 5
    if and_up:
        return youngest, None
    high = low if high is None else high
    oldest = PRESCHOOL_AGES[1] if high < 0 else high + 6
    return youngest, oldest


def _ages_of_numbers(low: str, high: str | None, and_up: str | None, under: str | None = None) -> tuple[int | None, int | None]:
    if under:  # "6岁以下": up to 6
        return None, int(low)
    if and_up:
        return int(low), None
    return int(low), int(high) if high else int(low)


def audience_ages(text: str, numbers_are: str = "") -> tuple[int | None, int | None] | None:
    """(youngest, oldest) from an audience note, or None when it gives no ages.

    Ages come from what says ages ("Ages 4-8.", "3 to 6 years", "3-6岁", "3岁以上"); grades
    from what says grades ("Grades K-2", "小学1-2年级"), converted to ages as documented
    (grade g is ages g+5 to g+6, kindergarten 5, preschool 3 to 4); other numbers ("Level 2",
    "Lexile 500L") are not ages. A note that is only a range ("2-6", "K-3") is ages or grades
    as `numbers_are` says ("ages", "grades", or "" for neither)."""
    text = (text or "").strip()
    if not text:
        return None
    match = _BARE.fullmatch(text)  # the common case first: "2-6", as this system writes it
    if match:
        low, high, and_up = match.groups()
        if numbers_are == "grades":
            return _ages_of_grades(_grade_number(low), _grade_number(high) if high else None, bool(and_up))
        if numbers_are == "ages" and low.isdigit() and (high is None or high.isdigit()):
            return _ages_of_numbers(low, high, and_up)
        return None
    match = _AGES_WORD.search(text)
    if match:
        return _ages_of_numbers(match.group(1), match.group(2), match.group(3))
    match = _YEARS_OLD.search(text)
    if match:
        return _ages_of_numbers(match.group(1), match.group(2), match.group(3), match.group(4))
    match = _GRADES_WORD.search(text)
    if match:
        before, low, high, and_up = match.groups()
        if before:  # "Preschool-grade 2": the range starts before the word
            low, high = before, low
        return _ages_of_grades(_grade_number(low), _grade_number(high) if high else None, bool(and_up))
    match = _CHINESE_GRADES.search(text)
    if match:
        low, high = match.groups()
        return _ages_of_grades(_grade_number(low), _grade_number(high) if high else None, False)
    if "学龄前" in text:  # before school age: kindergarten, 3 to 6
        return 3, 6
    if _PRESCHOOL_ALONE.fullmatch(text.rstrip(". ")):
        return PRESCHOOL_AGES
    return None


# MARC21 521 first indicator: what a bare number in the note counts (see docs/marc.md).
_NUMBERS_IN_521 = {"0": "grades", "1": "ages", "2": "grades"}


def _audience(notes: Iterable[tuple[str, str, str]], warnings: list[str]) -> tuple[int | None, int | None]:
    """The ages of the first audience note that gives some; each note that gives none is a
    warning when no note gives any. `notes`: (tag, numbers_are, text)."""
    unread = []
    for tag, numbers_are, text in notes:
        ages = audience_ages(text, numbers_are)
        if ages is not None:
            return ages
        if text.strip():
            unread.append((tag, text.strip()))
    for tag, text in unread:
        warnings.append(Note(N_("{tag} \"{text}\" gives no age range: it is kept in the record, the ages are left "
                                "empty."), tag=tag, text=text[:200]))
    return None, None


def _checked(converted: Converted, today: dt.date) -> Converted:
    """Values out of the ranges a record allows are left empty, each with a warning: a record
    pymarc reads is never refused for them (only for having no title at all)."""
    data, warnings = converted.record, converted.warnings
    for name in ("age_min", "age_max"):
        age = getattr(data, name)
        if age is not None and not 0 <= age <= 18:
            warnings.append(Note(N_("The age {value} is out of range (0 to 18); left empty."), value=age))
            setattr(data, name, None)
    if data.age_min is not None and data.age_max is not None and data.age_min > data.age_max:
        warnings.append(Note(N_("The ages {youngest} to {oldest} are reversed; left empty."),
                             youngest=data.age_min, oldest=data.age_max))
        data.age_min = data.age_max = None
    if data.publication_year is not None and not 1400 <= data.publication_year <= today.year + 1:
        warnings.append(Note(N_("The year {value} is out of range (1400 to {latest}); left empty."),
                             value=data.publication_year, latest=today.year + 1))
        data.publication_year = None
    return converted


def _series(title: str, number: str) -> tuple[str, str]:
    return _text(title), _text(number)


def _linked(marc_field: LightField) -> tuple[str, str]:
    """(title, number) of a UNIMARC linking field (410, 454, ...): $t and $v, or the $a and
    $v of an embedded 200 (`$1200..$a...`)."""
    title = number = ""
    embedded = ""
    for code, value in marc_field.subfields:
        if code == "1":
            embedded = value[:3]
        elif code == "t" and not title:
            title = value
        elif code == "a" and embedded == "200" and not title:
            title = value
        elif code == "v" and not number and embedded in ("", "200", "225"):
            number = value
    return _text(title), _text(number)


def _joined(values: Iterable[str], separator: str) -> str:
    return separator.join(value for value in values if value)


def from_marc21(record: pymarc.Record | LightRecord, today: dt.date | None = None) -> Converted:
    record = light(record)
    today = today or dt.date.today()
    by_tag = record.by_tag
    warnings: list[str] = []
    isbns = _isbns(record, "020")
    contributors = []
    for tag, default in (("100", "author"), ("110", "author"), ("111", "author"), ("700", "author")):
        for marc_field in by_tag.get(tag, ()):
            name = _name(" ".join(marc_field.get_subfields("a")))
            if name:
                contributors.append({"name": name, "role": _role(marc_field, default, ("4", "e", "j"))})
    title = subtitle = ""
    if "245" in by_tag:
        title_parts: dict[str, list[str]] = {"a": [], "b": [], "n": [], "p": []}
        for code, value in by_tag["245"][0].subfields:
            if code in title_parts:
                title_parts[code].append(value)
        title = _text(" ".join(title_parts["a"]))
        subtitle = _text(" ".join(title_parts["b"])) if title_parts["b"] else ""
        if title_parts["n"] or title_parts["p"]:  # the number and name of a part: "Title. Part 2, The return"
            part = ", ".join(filter(None, map(_text, title_parts["n"] + title_parts["p"])))
            title = f"{title}. {part}" if title and part else title or part
    vernacular = ""  # the 245 in its own script (880 linked to 245), as LC gives Chinese titles
    for marc_field in by_tag.get("880", ()):
        if any(link.startswith("245") for link in marc_field.get_subfields("6")):
            vernacular = _text(" ".join(marc_field.get_subfields("a")))
            break
    if not title:
        title = vernacular or _text(_first(record, "245", "k")) or subtitle or _text(_first(record, "246", "a")) \
            or _text(_first(record, "240", "a")) or _text(_first(record, "130", "a"))
        if title:
            warnings.append(Note(N_("245 has no title ($a): the title is taken from another field.")))
    parallel_title = ""
    if "246" in by_tag:  # a parallel title (second indicator 1) before any other form of title
        parallel = next((f for f in by_tag["246"] if f.indicators[1:] == "1"), by_tag["246"][0])
        parallel_title = _text(" ".join(parallel.get_subfields("a")))
    if not parallel_title and vernacular and vernacular != title:
        parallel_title = vernacular
    publisher, date = "", ""
    for marc_field in by_tag.get("264") or by_tag.get("260") or ():
        for code, value in marc_field.subfields:
            if code == "b" and not publisher:
                publisher = _text(value)
            elif code == "c" and not date:
                date = value.strip()
        if publisher and date:
            break
    year = _year(date, "264/260 $c", today, warnings)
    fixed = by_tag.get("008")
    fixed = fixed[0].data if fixed else ""
    if year is None and fixed and not date:
        year = _year(fixed[7:11], "008/07-10", today, warnings)
    language = _first(record, "041", "a")[:3] if "041" in by_tag else ""
    if not language and fixed:
        language = fixed[35:38].strip()
    age_min = age_max = None
    if "521" in by_tag:
        age_min, age_max = _audience(
            (("521", _NUMBERS_IN_521.get(f.indicators[:1], ""), " ".join(f.get_subfields("a")))
             for f in by_tag["521"]), warnings)
    fmt = "book"
    if "655" in by_tag:
        genres = [_trim(g).casefold() for g in _all(record, "655", "a")]
        fmt = next((GENRE_FORMAT[g] for g in genres if g in GENRE_FORMAT), "book")
    clc = next((_trim(f.get_subfields("a")[0]) for f in by_tag.get("084", ())
                if f.get_subfields("a") and "clc" in " ".join(f.get_subfields("2")).casefold()), "")
    series = series_number = ""
    for tag in ("490", "830"):
        if tag in by_tag:
            series, series_number = _text(_first(record, tag, "a")), _text(_first(record, tag, "v"))
            if series:
                break
    subjects = []
    for tag in ("600", "610", "611", "630", "650", "651"):
        if tag in by_tag:
            for value in _all(record, tag, "a"):
                subject = _name(value) if tag in ("600", "610", "611") else _text(value)
                if subject and subject not in subjects:
                    subjects.append(subject)
    converted = Converted(RecordInput(
        title=title,
        isbn=isbns[0] if isbns else None,
        other_isbns=isbns[1:],
        control_number=(by_tag["001"][0].data.strip() if "001" in by_tag else None) or None,
        subtitle=subtitle,
        parallel_title=parallel_title,
        original_title=_text(_first(record, "240", "a")) if "240" in by_tag else "",
        contributors=contributors,
        publisher=publisher,
        publication_year=year,
        language=language or "chi",
        series=series,
        series_number=series_number,
        subjects=subjects,
        age_min=age_min,
        age_max=age_max,
        format=fmt,
        pages=_pages(_first(record, "300", "a"), "300 $a", warnings) if "300" in by_tag else None,
        summary="\n\n".join(_all(record, "520", "a")) if "520" in by_tag else "",
        clc=clc,
        call_number=_trim(_first(record, "090", "a")) if "090" in by_tag else "",
    ), warnings=warnings)
    for marc_field in by_tag.get("952", ()):
        first = {}  # each subfield code's first value
        for code, value in reversed(marc_field.subfields):
            first[code] = value
        barcode = first.get("p", "").strip()
        if not barcode:
            continue
        status = first.get("s", "").strip()
        if status not in ITEM_STATUSES:
            status = "withdrawn" if first.get("0", "0") not in ("", "0") else \
                "lost" if first.get("1", "0") not in ("", "0") else "available"
        converted.holdings.append(Holding(
            barcode=barcode,
            home_branch=first.get("a"),
            current_branch=first["b"] if "b" in first else first.get("a"),
            call_number=first.get("o", ""),
            item_type=first.get("y", ""),
            shelf_location=first.get("c", ""),
            price_cents=_price_cents(first.get("g", "")),
            acquired_on=_date(first.get("d", "")),
            status=status,
        ))
    return _checked(converted, today)


# UNIMARC 7XX: the role of a name that carries no relator code.
CNMARC_NAME_TAGS = (("700", "author"), ("701", "author"), ("702", "contributor"),
                    ("710", "author"), ("711", "author"), ("712", "contributor"))
# Words a 200 $f/$g statement ends with, and the role they give (used only when the record
# has no 7XX names at all).
_STATEMENT_ROLES = (("编著", "author"), ("绘图", "illustrator"), ("图文", "author"), ("主编", "editor"),
                    ("改编", "adapter"), ("翻译", "translator"), ("著", "author"), ("文", "author"),
                    ("绘", "illustrator"), ("图", "illustrator"), ("译", "translator"), ("编", "editor"))


def _unimarc_name(marc_field: LightField) -> str:
    """$a (entry element) and $b (rest of the name): 'Asimov, Isaac'; '梅子涵'."""
    entry = _name(" ".join(marc_field.get_subfields("a")))
    rest = _name(" ".join(marc_field.get_subfields("b")))
    if entry and rest:
        return f"{entry}, {rest}"
    return entry or rest


def _statement_contributors(record: LightRecord) -> list[dict[str, str]]:
    found = []
    for marc_field in record.by_tag.get("200", ())[:1]:
        for code, value in marc_field.subfields:
            if code not in ("f", "g"):
                continue
            name = without_non_sort_marks(value).strip(" ;,")
            role = "author" if code == "f" else "contributor"
            for word, word_role in _STATEMENT_ROLES:
                if name.endswith(word) and len(name) > len(word):
                    name, role = name[:-len(word)].rstrip(" ·"), word_role
                    break
            if name:
                found.append({"name": name, "role": role})
    return found


def from_cnmarc(record: pymarc.Record | LightRecord, today: dt.date | None = None) -> Converted:
    record = light(record)
    today = today or dt.date.today()
    warnings: list[str] = []
    isbns = _isbns(record, "010")
    contributors = []
    for tag, default in CNMARC_NAME_TAGS:
        for marc_field in record.by_tag.get(tag, ()):
            name = _unimarc_name(marc_field)
            if name:
                contributors.append({"name": name, "role": _role(marc_field, default, ("4",))})
    if not contributors:
        contributors = _statement_contributors(record)
    title_field = record.by_tag.get("200", [None])[0]
    title = subtitle = parallel_title = ""
    if title_field is not None:
        # Repeated $a: titles of works by the same author, shown "A ; B" (ISBD).
        title = _joined((_cnmarc_text(v) for v in title_field.get_subfields("a")), " ; ")
        part = _joined((_cnmarc_text(v) for v in title_field.get_subfields("h", "i")), ", ")
        if part:
            title = f"{title}. {part}" if title else part
        subtitle = _joined((_cnmarc_text(v) for v in title_field.get_subfields("e")), " : ")
        parallel_title = _cnmarc_text(" ".join(title_field.get_subfields("d")).lstrip("= "))
    original_title = ""
    for marc_field in record.by_tag.get("454", ()):
        original_title = _linked(marc_field)[0]
        if original_title:
            break
    original_title = original_title or _cnmarc_text(_first(record, "500", "a"))
    if not title:
        title = next((_cnmarc_text(v) for tag in ("517", "510", "500") for v in _all(record, tag, "a")), "") \
            or original_title
        if title:
            warnings.append(Note(N_("200 has no title ($a): the title is taken from another field.")))
    publication = record.by_tag.get("210") or record.by_tag.get("214") or ()
    publisher = next((_cnmarc_text(v) for f in publication for v in f.get_subfields("c") if v.strip()), "")
    date = next((v for f in publication for v in f.get_subfields("d") if v.strip()), "")
    year = _year(date, "210 $d", today, warnings)
    general = _first(record, "100", "a")
    if year is None and not date and len(general) >= 13:
        year = _year(general[9:13], "100 $a/09-12", today, warnings)
    series, series_number = "", ""
    for marc_field in record.by_tag.get("225", ()):
        series = _cnmarc_text(" ".join(marc_field.get_subfields("a")))
        series_number = _cnmarc_text(" ".join(marc_field.get_subfields("v")))
        if series:
            break
    if not series:
        for marc_field in record.by_tag.get("410", ()):
            series, series_number = _linked(marc_field)
            if series:
                break
    subjects = []
    for tag in ("600", "601", "606", "607"):
        for marc_field in record.by_tag.get(tag, ()):
            subject = _unimarc_name(marc_field) if tag in ("600", "601") else \
                _cnmarc_text(" ".join(marc_field.get_subfields("a")))
            if subject and subject not in subjects:
                subjects.append(subject)
    age_min, age_max = _audience(
        (("333", "ages", " ".join(f.get_subfields("a"))) for f in record.by_tag.get("333", ())), warnings)
    converted = Converted(RecordInput(
        title=title,
        isbn=isbns[0] if isbns else None,
        other_isbns=isbns[1:],
        control_number=(record["001"].data.strip() if record.by_tag.get("001") else None) or None,
        subtitle=subtitle,
        parallel_title=parallel_title,
        original_title=original_title,
        contributors=contributors,
        publisher=publisher,
        publication_year=year,
        language=_first(record, "101", "a")[:3] or "chi",
        series=series,
        series_number=series_number,
        subjects=subjects,
        age_min=age_min,
        age_max=age_max,
        format="picture_book" if any(word in s for s in subjects for word in _PICTURE_BOOK_WORDS) else "book",
        pages=_pages(_first(record, "215", "a"), "215 $a", warnings),
        summary=_joined((v.strip() for v in _all(record, "330", "a")), "\n\n"),
        clc=_cnmarc_text(_first(record, "690", "a")),
        call_number="",
    ), warnings=warnings)
    price = _price_cents(_first(record, "010", "d"))
    for marc_field in record.by_tag.get("905", ()):
        holding = _cnmarc_holding(marc_field, price)
        if holding is not None:
            converted.holdings.append(holding)
    return _checked(converted, today)


_PICTURE_BOOK_WORDS = ("绘本", "图画书", "图画故事")


def _cnmarc_text(value: str) -> str:
    """A CNMARC value as one of our texts. CNMARC subfields carry no ISBD punctuation of
    their own (the display adds it), but some systems leave it: it is trimmed the same way."""
    return without_non_sort_marks(_trim(value))


def _cnmarc_holding(marc_field: LightField, price_cents: int | None) -> Holding | None:
    """905, as CALIS and most Chinese systems lay it out: $a holding library (our branch
    code), $b barcode, $c shelf location, $d call number (class / book number), $e call
    number's book number (joined to $d when both are there), $f copy / volume, $s status.
    The price comes from the record's 010 $d."""
    first: dict[str, str] = {}
    for code, value in reversed(marc_field.subfields):
        first[code] = value.strip()
    barcode = first.get("b", "")
    if not barcode:
        return None
    call_number = first.get("d", "")
    if first.get("e") and first["e"] not in call_number:
        call_number = f"{call_number}/{first['e']}" if call_number else first["e"]
    status = first.get("s", "")
    branch = first.get("a") or None
    return Holding(barcode=barcode, home_branch=branch, current_branch=branch, call_number=call_number,
                   shelf_location=first.get("c", ""), price_cents=price_cents,
                   status=status if status in ITEM_STATUSES else "available")


def convert(record: pymarc.Record | LightRecord, flavour: str, today: dt.date | None = None) -> Converted:
    """Our record from a MARC record: never refused for a value (see `_checked`); the record
    input's `record_values` refuses only a record with no title."""
    return from_cnmarc(record, today) if flavour == "cnmarc" else from_marc21(record, today)


# --- our record -> MARC21 ----------------------------------------------------------------


def to_marc21(record: dict[str, Any], items: list[dict[str, Any]]) -> pymarc.Record:
    """One record and its copies as MARC21 (UTF-8, leader/09 = a), holdings in 952."""
    marc = pymarc.Record(force_utf8=True, leader="00000nam a2200000 i 4500")
    marc.add_field(pymarc.Field(tag="001", data=record.get("control_number") or str(record["uuid"])))
    year = record.get("publication_year")
    language = (record.get("language") or "chi")[:3].ljust(3)
    marc.add_field(pymarc.Field(tag="008", data=f"{'000000'}s{year or '    '}    xx            000 1 {language} d"))
    for isbn13 in [record.get("isbn13")] + list(record.get("other_isbns") or []):
        if isbn13:
            marc.add_field(Field(tag="020", indicators=[" ", " "], subfields=[Subfield("a", isbn13)]))
    marc.add_field(Field(tag="041", indicators=["0", " "], subfields=[Subfield("a", language.strip())]))
    if record.get("clc"):
        marc.add_field(Field(tag="084", indicators=[" ", " "], subfields=[Subfield("a", record["clc"]),
                                                                           Subfield("2", "clc")]))
    if record.get("call_number"):
        marc.add_field(Field(tag="090", indicators=[" ", " "], subfields=[Subfield("a", record["call_number"])]))
    contributors = list(record.get("contributors") or [])
    for position, contributor in enumerate(contributors):
        tag = "100" if position == 0 and contributor["role"] == "author" else "700"
        marc.add_field(Field(tag=tag, indicators=["1", " "], subfields=[
            Subfield("a", contributor["name"]), Subfield("4", RELATOR_OF_ROLE.get(contributor["role"], "ctb"))]))
    if record.get("original_title"):
        marc.add_field(Field(tag="240", indicators=["1", "0"], subfields=[Subfield("a", record["original_title"])]))
    title = [Subfield("a", record["title"])]
    if record.get("subtitle"):
        title.append(Subfield("b", record["subtitle"]))
    marc.add_field(Field(tag="245", indicators=["1" if contributors else "0", "0"], subfields=title))
    if record.get("parallel_title"):
        marc.add_field(Field(tag="246", indicators=["3", "1"], subfields=[Subfield("a", record["parallel_title"])]))
    publication = []
    if record.get("publisher"):
        publication.append(Subfield("b", record["publisher"]))
    if year:
        publication.append(Subfield("c", str(year)))
    if publication:
        marc.add_field(Field(tag="264", indicators=[" ", "1"], subfields=publication))
    if record.get("pages"):
        marc.add_field(Field(tag="300", indicators=[" ", " "], subfields=[Subfield("a", f"{record['pages']} p.")]))
    if record.get("series"):
        series = [Subfield("a", record["series"])]
        if record.get("series_number"):
            series.append(Subfield("v", record["series_number"]))
        marc.add_field(Field(tag="490", indicators=["0", " "], subfields=series))
    if record.get("summary"):
        marc.add_field(Field(tag="520", indicators=[" ", " "], subfields=[Subfield("a", record["summary"])]))
    if record.get("age_min") is not None or record.get("age_max") is not None:
        # Interest age level (first indicator 1): numbers in it are ages (see `audience_ages`).
        ages = f"{record.get('age_min') if record.get('age_min') is not None else 0}-" \
               f"{record.get('age_max') if record.get('age_max') is not None else 18}"
        marc.add_field(Field(tag="521", indicators=["1", " "], subfields=[Subfield("a", ages)]))
    for subject in record.get("subjects") or []:
        marc.add_field(Field(tag="650", indicators=[" ", "4"], subfields=[Subfield("a", subject)]))
    marc.add_field(Field(tag="655", indicators=[" ", "7"], subfields=[
        Subfield("a", FORMAT_GENRE.get(record.get("format") or "book", "Books")), Subfield("2", "local")]))
    for item in items:
        subfields = [Subfield("a", item["home_branch"]), Subfield("b", item["current_branch"]),
                     Subfield("p", item["barcode"]), Subfield("y", item["item_type"]),
                     Subfield("s", item["status"])]
        if item.get("shelf_location"):
            subfields.append(Subfield("c", item["shelf_location"]))
        if record.get("call_number"):
            subfields.append(Subfield("o", record["call_number"]))
        if item.get("price_cents") is not None:
            subfields.append(Subfield("g", f"{item['price_cents'] / 100:.2f}"))
        if item.get("acquired_on"):
            subfields.append(Subfield("d", item["acquired_on"].isoformat()))
        if item["status"] == "withdrawn":
            subfields.append(Subfield("0", "1"))
        marc.add_field(Field(tag="952", indicators=[" ", " "], subfields=subfields))
    return marc


# --- writing ISO 2709 ---------------------------------------------------------------------------

FIELD_BYTES = 9999  # the longest field a four-digit directory length can state
RECORD_BYTES = 99999  # the longest record a five-digit leader length can state
# CNMARC 100 $a/26-29, the character sets: ISO 10646 (Unicode), or ISO 646 + the Chinese
# national set, as GB2312/GBK/GB18030 files from Chinese systems say it.
CNMARC_CHARSETS = {"utf-8": "50  ", "gb18030": "0120"}


class RecordTooLong(ValueError):
    """A record longer than ISO 2709 can state (99,999 bytes): write it as MARCXML."""


def _subfield_bytes(code: str, value: str, codec: str) -> bytes:
    return ("\x1f" + code + value).encode(codec)


def _data_field_bytes(indicators: str, subfields: list[tuple[str, str]], codec: str) -> list[bytes]:
    """A data field's bytes, as one field, or as several of the same tag when it is longer than
    a directory entry can state: a value too long for one field continues in the next. Nothing
    is cut."""
    head = (indicators or "  ").ljust(2)[:2].encode("ascii", "replace")
    parts = [_subfield_bytes(code, value, codec) for code, value in subfields]
    if len(head) + sum(map(len, parts)) + 1 <= FIELD_BYTES:
        return [head + b"".join(parts) + b"\x1e"]
    room = FIELD_BYTES - len(head) - 1
    fields, current = [], b""
    for (code, value), part in zip(subfields, parts):
        pieces = [part]
        if len(part) > room:  # one value longer than a field: in pieces, cut between characters
            pieces, piece = [], ""
            for character in value:
                if len(_subfield_bytes(code, piece + character, codec)) > room:
                    pieces.append(_subfield_bytes(code, piece, codec))
                    piece = ""
                piece += character
            pieces.append(_subfield_bytes(code, piece, codec))
        for piece_bytes in pieces:
            if current and len(current) + len(piece_bytes) > room:
                fields.append(head + current + b"\x1e")
                current = b""
            current += piece_bytes
    fields.append(head + current + b"\x1e")
    return fields


def _text_for(text: str, codec: str) -> str:
    # GB18030 is an eight-bit set whose high bytes are all taken: the C1 non-sort marks go in
    # their seven-bit form (ISO 6630: ESC H, ESC I), which `read_marc` reads back as the marks.
    if codec == "gb18030" and ("\x88" in text or "\x89" in text):
        return text.replace("\x88", "\x1bH").replace("\x89", "\x1bI")
    return text


def iso2709_record(record: pymarc.Record | LightRecord, encoding: str = "utf-8") -> bytes:
    """One record in ISO 2709, in UTF-8 or GB18030: lengths and offsets in bytes of that
    encoding; leader/09 `a` for UTF-8 (blank for GB18030, which MARC has no code for); a CNMARC
    record's 100 $a/26-29 set to the character set written (CNMARC_CHARSETS)."""
    codec = encoding_choice(encoding)
    if codec not in CNMARC_CHARSETS:
        raise InvalidInput("invalid_choice", field="encoding")
    record = light(record)
    is_cnmarc = "200" in record.by_tag and "245" not in record.by_tag
    directory, body, offset = [], [], 0
    for marc_field in record.fields:
        if marc_field.data is not None:
            encoded = [(_text_for(marc_field.data, codec) + "\x1e").encode(codec)]
            if len(encoded[0]) > FIELD_BYTES:
                raise RecordTooLong(f"control field {marc_field.tag} is longer than {FIELD_BYTES} bytes")
        else:
            subfields = [(code, _text_for(value, codec)) for code, value in marc_field.subfields]
            if is_cnmarc and marc_field.tag == "100":
                subfields = [(code, _with_charset(value, codec) if code == "a" else value) for code, value in subfields]
            encoded = _data_field_bytes(marc_field.indicators, subfields, codec)
        tag = marc_field.tag.rjust(3, "0")[:3]
        for data in encoded:
            directory.append(f"{tag}{len(data):04d}{offset:05d}")
            body.append(data)
            offset += len(data)
    directory_bytes = "".join(directory).encode("ascii") + b"\x1e"
    base = 24 + len(directory_bytes)
    length = base + offset + 1
    if length > RECORD_BYTES or offset > RECORD_BYTES:
        raise RecordTooLong(f"the record is {length} bytes, longer than ISO 2709 can state ({RECORD_BYTES})")
    leader = (record.leader or "").ljust(24)[:24]
    leader = f"{length:05d}{leader[5:9]}{'a' if codec == 'utf-8' else ' '}{leader[10:12]}{base:05d}{leader[17:]}"
    return leader.encode("ascii", "replace") + directory_bytes + b"".join(body) + b"\x1d"


def _with_charset(general: str, codec: str) -> str:
    general = general.ljust(36) if len(general) < 30 else general
    return general[:26] + CNMARC_CHARSETS[codec] + general[30:]


def write_iso2709(records: Iterable[pymarc.Record | LightRecord], encoding: str = "utf-8") -> bytes:
    """Records as ISO 2709 in UTF-8 or GB18030 (see `iso2709_record`)."""
    return b"".join(iso2709_record(record, encoding) for record in records)


def write_marc21(records: list[pymarc.Record]) -> bytes:
    return write_iso2709(records, "utf-8")


def write_marcxml(records: list[pymarc.Record]) -> bytes:
    buffer = io.BytesIO()
    writer = pymarc.XMLWriter(buffer)
    for record in records:
        writer.write(record)
    writer.close(close_fh=False)
    return buffer.getvalue()


def describe_problems(error: InvalidRecord) -> str:
    return "; ".join(f"{problem.field}: {problem.code}" for problem in error.problems)


def valid_item_type(value: str) -> str:
    return value if value in rules.ITEM_TYPES else "book"

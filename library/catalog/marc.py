"""MARC exchange with pymarc: MARC21 and CNMARC in, MARC21 out, ISO 2709 and MARCXML.

The field mapping is documented in docs/marc.md. Import reads records one by one;
a broken record is skipped with its position and reason while the rest imports.
Records are matched on any of their ISBNs, then on the control number (001), so
importing the same file twice updates and never duplicates. Holdings travel in
952 (Koha's layout, MARC21) and 905 (CNMARC).
"""

from __future__ import annotations

import datetime as dt
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pymarc
from pymarc import Field, Subfield

from library.catalog import rules
from library.catalog.isbn import isbns_in
from library.catalog.records import RecordInput
from library.errors import InvalidInput, InvalidRecord

ROLE_FROM_RELATOR = {
    "aut": "author", "author": "author", "著": "author", "文": "author", "ill": "illustrator",
    "illustrator": "illustrator", "绘": "illustrator", "图": "illustrator", "trl": "translator",
    "translator": "translator", "译": "translator", "edt": "editor", "editor": "editor", "编": "editor",
    "adp": "adapter", "adapter": "adapter", "改编": "adapter",
    # UNIMARC relator codes
    "070": "author", "440": "illustrator", "730": "translator", "340": "editor", "010": "adapter",
}
RELATOR_OF_ROLE = {"author": "aut", "illustrator": "ill", "translator": "trl", "editor": "edt", "adapter": "adp"}
FORMAT_GENRE = {"picture_book": "Picture books", "board_book": "Board books", "pop_up_book": "Pop-up books",
                "bridge_book": "Early readers", "chapter_book": "Chapter books", "comic": "Comics (Graphic works)",
                "book": "Books", "audio_book": "Audiobooks", "other": "Other"}
GENRE_FORMAT = {genre.casefold(): fmt for fmt, genre in FORMAT_GENRE.items()}
ITEM_STATUSES = ("available", "on_loan", "in_transit", "on_hold_shelf", "in_processing", "missing", "lost",
                 "damaged", "withdrawn")


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


# --- reading ----------------------------------------------------------------------------


def _looks_like_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def read_marc(data: bytes, force_utf8: bool | None = None,
              first_position: int = 1) -> Iterator[tuple[int, pymarc.Record | None, str]]:
    """(position from 1, record or None, reason when None), for ISO 2709 or MARCXML."""
    head = data.lstrip()[:200]
    if head.startswith(b"<"):
        try:
            records = pymarc.parse_xml_to_array(io.BytesIO(data), strict=False)
        except Exception as error:  # noqa: BLE001 - any XML error means the file is unreadable as a whole
            raise InvalidInput("marc_not_marc") from error
        for position, record in enumerate(records, start=first_position):
            yield position, record, ""
        return
    if len(data) < 24 or not data[:5].isdigit():
        raise InvalidInput("marc_not_marc")
    # Files from Chinese systems are often UTF-8 without saying so in leader/09; MARC-8
    # files are (almost never) valid UTF-8, so the bytes themselves decide.
    if force_utf8 is None:
        force_utf8 = _looks_like_utf8(data)
    # The common case (well-formed UTF-8 records) is read here without building pymarc's
    # objects; anything else goes to pymarc, so the result and every reason stay its own.
    position, cursor, size = first_position, 0, len(data)
    while cursor < size:
        first5 = data[cursor:cursor + 5]
        length = int(first5) if len(first5) == 5 and first5.isdigit() else 0
        chunk = data[cursor:cursor + length] if length >= 24 else b""
        if len(chunk) != length or not chunk or chunk[-1] != 0x1D:
            break  # pymarc decides what a truncated or broken frame means, and when to stop
        cursor += length
        try:
            record = _read_utf8(chunk) if force_utf8 or chunk[9] == 0x61 else None
        except (ValueError, IndexError):
            record = None
        if record is None:
            try:
                record = pymarc.Record(chunk, to_unicode=True, force_utf8=force_utf8, hide_utf8_warnings=True,
                                       utf8_handling="replace")
            except Exception as error:  # noqa: BLE001 - pymarc's reader reports any error the same way
                yield position, None, f"{type(error).__name__}: {error}".strip()
                position += 1
                continue
        yield position, record, ""
        position += 1
    if cursor >= size:
        return
    reader = pymarc.MARCReader(io.BytesIO(data[cursor:]), to_unicode=True, force_utf8=force_utf8,
                               utf8_handling="replace", permissive=True, hide_utf8_warnings=True)
    for position, record in enumerate(reader, start=position):
        if record is None:
            error = reader.current_exception
            yield position, None, f"{type(error).__name__}: {error}".strip() if error else "unreadable record"
        else:
            yield position, record, ""


class LightField:
    """The part of pymarc's Field that the conversion reads: `data` of a control field,
    `get_subfields` of a data field."""

    __slots__ = ("tag", "data", "subfields")

    def __init__(self, tag: str, data: str | None, subfields: list[tuple[str, str]]) -> None:
        self.tag, self.data, self.subfields = tag, data, subfields

    def get_subfields(self, *codes: str) -> list[str]:
        return [value for code, value in self.subfields if code in codes]


class LightRecord:
    """The part of pymarc's Record that the conversion reads, with fields found by tag."""

    __slots__ = ("by_tag",)

    def __init__(self, by_tag: dict[str, list[LightField]]) -> None:
        self.by_tag = by_tag

    def get_fields(self, tag: str) -> list[LightField]:
        return self.by_tag.get(tag, [])

    def __getitem__(self, tag: str) -> LightField:
        fields = self.by_tag.get(tag)
        if not fields:
            raise KeyError(tag)
        return fields[0]


_DIRECTORY_ENTRY = re.compile(r"(\d\d\d)(\d{4})(\d{5})")


def _read_utf8(chunk: bytes) -> LightRecord | None:
    """One well-formed UTF-8 record, read as pymarc's decode_marc reads it; None (or ValueError)
    when pymarc itself should look at it (bad UTF-8, missing parts, odd tags or subfield codes)."""
    leader = chunk[:24].decode("ascii")
    base = int(chunk[12:17])
    if len(leader) != 24 or base <= 0 or base >= len(chunk) or len(chunk) < int(leader[:5]):
        return None
    directory = chunk[24:base - 1].decode("ascii")
    entries = _DIRECTORY_ENTRY.findall(directory)
    if not entries or len(entries) * 12 != len(directory):
        return None
    by_tag: dict[str, list[LightField]] = {}
    for tag, length, offset in entries:
        start = base + int(offset)
        text = chunk[start:start + int(length) - 1].decode("utf-8")
        if tag < "010":
            field_ = LightField(tag, text, [])
        else:
            parts = text.split("\x1f")
            if not parts[0].isascii():
                return None
            subfields = [(part[0], part[1:]) for part in parts[1:] if part]
            for code, _ in subfields:
                if not code.isascii():
                    return None
            field_ = LightField(tag, None, subfields)
        if tag in by_tag:
            by_tag[tag].append(field_)
        else:
            by_tag[tag] = [field_]
    return LightRecord(by_tag)


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


def detect_flavour(record: pymarc.Record) -> str:
    """CNMARC (UNIMARC) puts the title in 200; MARC21 in 245."""
    if record.get_fields("245"):
        return "marc21"
    if record.get_fields("200"):
        return "cnmarc"
    return "marc21"


# --- MARC -> our record -------------------------------------------------------------------


def light(record: pymarc.Record | LightRecord) -> LightRecord:
    """What the conversion reads of a record, fields found by tag (pymarc's own records,
    from MARCXML or MARC-8, are copied into the same shape)."""
    if isinstance(record, LightRecord):
        return record
    by_tag: dict[str, list[LightField]] = {}
    for marc_field in record.fields:
        subfields = [] if marc_field.control_field else [(s.code, s.value) for s in marc_field.subfields]
        by_tag.setdefault(marc_field.tag, []).append(LightField(marc_field.tag, marc_field.data, subfields))
    return LightRecord(by_tag)


def _first(record: LightRecord, tag: str, code: str) -> str:
    for marc_field in record.by_tag.get(tag, ()):
        for subfield_code, value in marc_field.subfields:
            if subfield_code == code:
                return value.strip()
    return ""


def _all(record: LightRecord, tag: str, code: str) -> list[str]:
    return [value.strip() for marc_field in record.by_tag.get(tag, ()) for subfield_code, value in marc_field.subfields
            if subfield_code == code and value.strip()]


_YEAR = re.compile(r"(1[4-9]|20)\d\d")
_DIGITS = re.compile(r"\d+")
_PRICE = re.compile(r"\d+(?:\.\d{1,2})?")


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


def _year(text: str) -> int | None:
    match = _YEAR.search(text or "")
    return int(match.group(0)) if match else None


def _number(text: str) -> int | None:
    match = _DIGITS.search(text or "")
    return int(match.group(0)) if match else None


def _ages(text: str) -> tuple[int | None, int | None]:
    numbers = [int(n) for n in _DIGITS.findall(text or "")][:2]
    if len(numbers) == 2:
        return numbers[0], numbers[1]
    if len(numbers) == 1:
        return numbers[0], None
    return None, None


def _role(marc_field: Field, default: str) -> str:
    for code in ("4", "e"):
        for value in marc_field.get_subfields(code):
            role = ROLE_FROM_RELATOR.get(_trim(value).casefold())
            if role:
                return role
    return default


def _price_cents(text: str) -> int | None:
    match = _PRICE.search(text or "")
    return int(round(float(match.group(0)) * 100)) if match else None


def _date(text: str) -> dt.date | None:
    if not text:
        return None  # most copies carry no date: not worth an exception each
    try:
        return dt.date.fromisoformat(text.strip()[:10])
    except ValueError:
        return None


def _isbns(record: LightRecord, tag: str) -> list[str]:
    found: list[str] = []
    for value in _all(record, tag, "a") + _all(record, tag, "z"):
        for isbn13 in isbns_in(value):
            if isbn13 not in found:
                found.append(isbn13)
    return found


def from_marc21(record: pymarc.Record | LightRecord) -> Converted:
    record = light(record)
    isbns = _isbns(record, "020")
    contributors = []
    for tag, default in (("100", "author"), ("700", "author")):
        for marc_field in record.get_fields(tag):
            name = _trim(" ".join(marc_field.get_subfields("a")))
            if name:
                contributors.append({"name": name, "role": _role(marc_field, default)})
    publisher = _trim(_first(record, "264", "b") or _first(record, "260", "b"))
    year = _year(_first(record, "264", "c") or _first(record, "260", "c"))
    if year is None and record.get_fields("008"):
        year = _year(record["008"].data[7:11])
    language = _first(record, "041", "a")[:3]
    if not language and record.get_fields("008"):
        language = record["008"].data[35:38].strip()
    age_min, age_max = _ages(_first(record, "521", "a"))
    genres = [_trim(g).casefold() for g in _all(record, "655", "a")]
    fmt = next((GENRE_FORMAT[g] for g in genres if g in GENRE_FORMAT), "book")
    clc = next((_trim(f.get_subfields("a")[0]) for f in record.get_fields("084")
                if f.get_subfields("a") and "clc" in " ".join(f.get_subfields("2")).casefold()), "")
    converted = Converted(RecordInput(
        title=_trim(_first(record, "245", "a")),
        isbn=isbns[0] if isbns else None,
        other_isbns=isbns[1:],
        control_number=(record["001"].data.strip() if record.get_fields("001") else None) or None,
        subtitle=_trim(_first(record, "245", "b")),
        parallel_title=_trim(_first(record, "246", "a")),
        original_title=_trim(_first(record, "240", "a")),
        contributors=contributors,
        publisher=publisher,
        publication_year=year,
        language=language or "chi",
        series=_trim(_first(record, "490", "a")),
        series_number=_trim(_first(record, "490", "v")),
        subjects=[_trim(s) for s in _all(record, "650", "a")],
        age_min=age_min,
        age_max=age_max,
        format=fmt,
        pages=_number(_first(record, "300", "a")),
        summary=_first(record, "520", "a"),
        clc=clc,
        call_number=_trim(_first(record, "090", "a")),
    ))
    for marc_field in record.get_fields("952"):
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
    return converted


def from_cnmarc(record: pymarc.Record | LightRecord) -> Converted:
    record = light(record)
    isbns = _isbns(record, "010")
    contributors = []
    for tag, default in (("701", "author"), ("700", "author"), ("702", "translator"), ("711", "author")):
        for marc_field in record.get_fields(tag):
            name = " ".join(marc_field.get_subfields("a") + marc_field.get_subfields("b")).strip()
            if name:
                contributors.append({"name": name, "role": _role(marc_field, default)})
    age_min, age_max = _ages(_first(record, "333", "a"))
    converted = Converted(RecordInput(
        title=_first(record, "200", "a"),
        isbn=isbns[0] if isbns else None,
        other_isbns=isbns[1:],
        control_number=(record["001"].data.strip() if record.get_fields("001") else None) or None,
        subtitle=_first(record, "200", "e"),
        parallel_title=_first(record, "200", "d").lstrip("= ").strip(),
        original_title=_first(record, "454", "t") or _first(record, "500", "a"),
        contributors=contributors,
        publisher=_first(record, "210", "c"),
        publication_year=_year(_first(record, "210", "d")),
        language=_first(record, "101", "a")[:3] or "chi",
        series=_first(record, "225", "a"),
        series_number=_first(record, "225", "v"),
        subjects=_all(record, "606", "a"),
        age_min=age_min,
        age_max=age_max,
        format="picture_book" if any("绘本" in s or "图画书" in s for s in _all(record, "606", "a")) else "book",
        pages=_number(_first(record, "215", "a")),
        summary=_first(record, "330", "a"),
        clc=_first(record, "690", "a"),
        call_number="",
    ))
    for marc_field in record.get_fields("905"):
        barcode = (marc_field.get_subfields("b") or [""])[0].strip()
        if barcode:
            branch = (marc_field.get_subfields("a") or [None])[0]
            converted.holdings.append(Holding(
                barcode=barcode, home_branch=branch, current_branch=branch,
                call_number=(marc_field.get_subfields("d") or [""])[0],
                shelf_location=(marc_field.get_subfields("c") or [""])[0],
                price_cents=_price_cents(_first(record, "010", "d"))))
    return converted


def convert(record: pymarc.Record | LightRecord, flavour: str) -> Converted:
    return from_cnmarc(record) if flavour == "cnmarc" else from_marc21(record)


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
            Subfield("a", contributor["name"]), Subfield("4", RELATOR_OF_ROLE.get(contributor["role"], "aut"))]))
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


def write_marc21(records: list[pymarc.Record]) -> bytes:
    return b"".join(record.as_marc() for record in records)


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

"""The MARC record kept whole beside the columns the service indexes, and what "our changes
applied" means when it goes out again.

A record that came in as MARC keeps every field and subfield of it (`pack`, in the `marc`
column, with its format). Its columns are what the conversion read from it, and what a
librarian then edits. On export the kept record is the starting point: each *field group*
(`GROUPS`) whose columns still say what the kept record says is written exactly as it came;
a group whose columns differ — edited here, merged, or changed by sync — is written from the
columns instead. Holdings are always written from the copies as they are now.

Re-importing a record (an overlay) takes the incoming record and its values, except for the
groups a librarian edited here since it came in (`local_edits`): those keep the local values,
so a correction made at the desk is not undone by the next vendor file. See docs/marc.md.

Pure: no database. Packing runs in the converter processes for every imported record.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from typing import Any

import msgspec
import pymarc
from pymarc import Field, Indicators, Subfield

from library.catalog import marc
from library.catalog.records import record_values
from library.errors import DomainError

# A group: the record columns it covers, and the MARC21 and CNMARC tags they come from.
GROUPS: dict[str, dict[str, tuple[str, ...]]] = {
    "title": {"columns": ("title", "subtitle", "parallel_title", "original_title"),
              "marc21": ("240", "245", "246"), "cnmarc": ("200", "454", "500", "510")},
    "contributors": {"columns": ("contributors",),
                     "marc21": ("100", "110", "111", "700", "710", "711"),
                     "cnmarc": ("700", "701", "702", "710", "711", "712")},
    "identifiers": {"columns": ("isbn13", "other_isbns"), "marc21": ("020",), "cnmarc": ("010",)},
    "publication": {"columns": ("publisher", "publication_year"), "marc21": ("260", "264"), "cnmarc": ("210", "214")},
    "series": {"columns": ("series", "series_number"), "marc21": ("490", "830"), "cnmarc": ("225", "410")},
    "subjects": {"columns": ("subjects",), "marc21": ("600", "610", "611", "630", "650", "651"),
                 "cnmarc": ("600", "601", "606", "607")},
    "audience": {"columns": ("age_min", "age_max"), "marc21": ("521",), "cnmarc": ("333",)},
    "description": {"columns": ("pages", "summary", "language"), "marc21": ("041", "300", "520"),
                    "cnmarc": ("101", "215", "330")},
    "format": {"columns": ("format",), "marc21": ("655",), "cnmarc": ()},
    "classification": {"columns": ("clc", "call_number"), "marc21": ("084", "090"), "cnmarc": ("690", "905")},
}
# Where copies travel: written from the copies as they are, never from the kept record.
HOLDINGS_TAG = {"marc21": "952", "cnmarc": "905"}
FORMATS = ("marc21", "cnmarc")


# --- keeping ------------------------------------------------------------------------------


def _light_fields(record: Any) -> Iterable[list]:
    for marc_field in record.fields:
        if marc_field.data is not None:
            yield [marc_field.tag, marc_field.data or ""]
        else:
            # (code, value) pairs: JSON arrays as they are, no need to copy them into lists
            yield [marc_field.tag, marc_field.indicators or "  ", marc_field.subfields]


def _pymarc_fields(record: pymarc.Record) -> Iterable[list]:
    for marc_field in record.fields:
        if marc_field.control_field:
            yield [marc_field.tag, marc_field.data or ""]
        else:
            indicators = "".join((i or " ")[:1] for i in marc_field.indicators) if marc_field.indicators else "  "
            yield [marc_field.tag, indicators.ljust(2)[:2],
                   [[subfield.code, subfield.value] for subfield in marc_field.subfields]]


def _encode(packed: dict[str, Any]) -> str:
    # msgspec writes what json.dumps(..., ensure_ascii=False, separators=(",", ":")) writes, in a
    # fifth of the time: packing was a tenth of a MARC import's conversion.
    return msgspec.json.encode(packed).decode("utf-8")


def pack(record: Any, flavour: str) -> str:
    """The whole record (leader, every field in order, indicators, subfields) as compact JSON
    text: a pymarc Record or the converter's LightRecord (library.catalog.marc)."""
    fields = list(_pymarc_fields(record) if isinstance(record, pymarc.Record) else _light_fields(record))
    leader = str(record.leader) if record.leader is not None else ""
    return _encode({"format": flavour, "leader": leader, "fields": fields})


def unpacked_fields(text: str) -> tuple[str, str, list[list]]:
    """(format, leader, fields) of a packed record."""
    data = json.loads(text)
    return data.get("format", ""), data.get("leader", ""), data.get("fields", [])


def _field(packed: list) -> Field:
    if len(packed) == 2:
        return Field(tag=packed[0], data=packed[1])
    indicators = (packed[1] or "  ").ljust(2)
    return Field(tag=packed[0], indicators=Indicators(indicators[0], indicators[1]),
                 subfields=[Subfield(code, value) for code, value in packed[2]])


def unpack(text: str) -> pymarc.Record:
    """The kept record as a pymarc Record (UTF-8)."""
    _, leader, fields = unpacked_fields(text)
    record = pymarc.Record(force_utf8=True, leader=leader or None)
    for packed in fields:
        record.add_field(_field(packed))
    return record


def kept_values(kept: str, today: dt.date) -> dict[str, Any] | None:
    """The column values the kept record converts to (as an import of it would make them), or
    None when it no longer converts (the rules changed since)."""
    flavour = unpacked_fields(kept)[0] or "marc21"
    try:
        return record_values(marc.convert(marc.light(unpack(kept)), flavour).record, today)
    except (DomainError, ValueError, KeyError, IndexError):
        return None


# --- local edits and overlays -----------------------------------------------------------------


def _same(a: Any, b: Any) -> bool:
    return (a if a not in (None, "") else None) == (b if b not in (None, "") else None) or \
        (a in (None, "", []) and b in (None, "", []))


def changed_groups(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """The groups in which some column differs between two sets of record values."""
    return [name for name, group in GROUPS.items()
            if any(not _same(before.get(column), after.get(column)) for column in group["columns"])]


def with_local_edits(local_edits: Iterable[str], before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """A record's local edits once a librarian has changed `before` into `after`."""
    edits = list(local_edits or [])
    for name in changed_groups(before, after):
        if name not in edits:
            edits.append(name)
    return [name for name in GROUPS if name in edits]


def overlay_values(existing: dict[str, Any], incoming: dict[str, Any]) -> dict[str, Any]:
    """The values a record gets when an incoming record overlays it: the incoming ones, except
    for the groups edited here since it came in (existing["local_edits"]), which stay."""
    values = dict(incoming)
    for name in existing.get("local_edits") or []:
        for column in GROUPS.get(name, {}).get("columns", ()):
            if column in existing:
                values[column] = existing[column]
    values["local_edits"] = [name for name in GROUPS if name in (existing.get("local_edits") or [])]
    return values


# --- our changes applied ---------------------------------------------------------------------------


def merged_record(kept: str, generated: pymarc.Record, differing: Iterable[str], flavour: str) -> pymarc.Record:
    """The kept record with the fields of the `differing` groups (and the holdings) taken from
    `generated`, the record as written from the columns; every other field as it came, in its
    place. A group's generated fields go where its first kept field was (or in tag order)."""
    _, leader, fields = unpacked_fields(kept)
    replaced = {tag for name in differing for tag in GROUPS[name][flavour]}
    replaced.add(HOLDINGS_TAG[flavour])
    fresh: dict[str, list[Field]] = {}
    for marc_field in generated.fields:
        if marc_field.tag in replaced:
            fresh.setdefault(marc_field.tag, []).append(marc_field)
    out = pymarc.Record(force_utf8=True, leader=leader or None)
    placed: set[str] = set()
    result: list[Field] = []
    for packed in fields:
        tag = packed[0]
        if tag in replaced:
            if tag not in placed:
                placed.add(tag)
                result.extend(fresh.get(tag, []))
            continue
        result.append(_field(packed))
    for tag in sorted(set(fresh) - placed):
        at = next((i for i, marc_field in enumerate(result) if marc_field.tag > tag), len(result))
        result[at:at] = fresh[tag]
    for marc_field in result:
        out.add_field(marc_field)
    return out

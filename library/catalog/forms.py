"""Turning the record and copies forms into service inputs, with every problem at once."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from library.catalog.service import NewCopies, RecordInput
from library.errors import InvalidRecord

RECORD_TEXT_FIELDS = ("title", "isbn", "subtitle", "parallel_title", "original_title", "publisher", "language",
                      "series", "series_number", "format", "summary", "clc", "call_number")
# The form shows at least this many contributor rows, and one empty row more than a record has:
# an imported record with more names than rows lost the rest on its first edit.
CONTRIBUTOR_ROWS = 4
CONTRIBUTOR_ROWS_LIMIT = 200


def _int(values: dict[str, str], name: str, problems: list) -> int | None:
    raw = (values.get(name) or "").strip()
    if not raw:
        return None
    if not re.fullmatch(r"-?\d{1,6}", raw):
        problems.append((name, "not_a_number", {}))
        return None
    return int(raw)


def record_input(form: Any) -> tuple[RecordInput, dict[str, Any]]:
    """The RecordInput of a submitted form, and the raw values to re-show it with."""
    values: dict[str, Any] = {name: form.get(name, "") for name in RECORD_TEXT_FIELDS}
    for name in ("publication_year", "age_min", "age_max", "pages", "other_isbns", "subjects"):
        values[name] = form.get(name, "")
    contributors = []
    rows = next((row for row in range(CONTRIBUTOR_ROWS_LIMIT) if f"contributor_{row}_name" not in form),
                CONTRIBUTOR_ROWS_LIMIT)
    values["contributor_rows"] = max(CONTRIBUTOR_ROWS, rows)
    for row in range(rows):
        name, role = form.get(f"contributor_{row}_name", ""), form.get(f"contributor_{row}_role", "author")
        values[f"contributor_{row}_name"], values[f"contributor_{row}_role"] = name, role
        if name.strip():
            contributors.append({"name": name, "role": role})
    problems: list = []
    numbers = {name: _int(values, name, problems) for name in ("publication_year", "age_min", "age_max", "pages")}
    data = RecordInput(
        title=values["title"], isbn=values["isbn"] or None,
        other_isbns=[part for part in re.split(r"[,;\n]", values["other_isbns"]) if part.strip()],
        subtitle=values["subtitle"], parallel_title=values["parallel_title"],
        original_title=values["original_title"], contributors=contributors, publisher=values["publisher"],
        language=values["language"] or "chi", series=values["series"], series_number=values["series_number"],
        subjects=[part for part in re.split(r"[,，;；\n]", values["subjects"]) if part.strip()],
        format=values["format"] or "picture_book", summary=values["summary"], clc=values["clc"],
        call_number=values["call_number"], **numbers)
    if problems:
        raise InvalidRecord(problems)
    return data, values


def form_values_of(record: dict[str, Any]) -> dict[str, Any]:
    """A record (or provider metadata) as form values."""
    values: dict[str, Any] = {name: record.get(name) or "" for name in RECORD_TEXT_FIELDS}
    values["isbn"] = record.get("isbn_hyphenated") or record.get("isbn") or ""
    for name in ("publication_year", "age_min", "age_max", "pages"):
        values[name] = "" if record.get(name) is None else str(record[name])
    values["other_isbns"] = ", ".join(record.get("other_isbns") or [])
    values["subjects"] = ", ".join(record.get("subjects") or [])
    contributors = record.get("contributors") or []
    values["contributor_rows"] = max(CONTRIBUTOR_ROWS, len(contributors) + 1)
    for row, contributor in enumerate(contributors):
        values[f"contributor_{row}_name"] = contributor.get("name", "")
        values[f"contributor_{row}_role"] = contributor.get("role", "author")
    return values


def copies_input(form: Any) -> NewCopies:
    problems: list = []
    count = _int(form, "count", problems)
    price_raw = (form.get("price") or "").strip()
    price_cents = None
    if price_raw:
        if re.fullmatch(r"\d{1,6}(\.\d{1,2})?", price_raw):
            price_cents = int(round(float(price_raw) * 100))
        else:
            problems.append(("price", "not_a_price", {}))
    acquired_raw = (form.get("acquired_on") or "").strip()
    acquired_on = None
    if acquired_raw:
        try:
            acquired_on = dt.date.fromisoformat(acquired_raw)
        except ValueError:
            problems.append(("acquired_on", "invalid_date", {}))
    if problems:
        raise InvalidRecord(problems)
    return NewCopies(
        branch_code=form.get("branch", ""),
        count=count or 1,
        barcodes=[part for part in re.split(r"[\s,;]+", form.get("barcodes", "")) if part],
        shelf_location=form.get("shelf_location", ""),
        item_type=form.get("item_type", "picture_book") or "picture_book",
        price_cents=price_cents,
        acquired_on=acquired_on,
    )

"""What a record is before it is stored: what is said about an edition, cleaned and checked
into column values, with the text the full-text index holds for it.

Pure (no database, no Piccolo), so that the processes converting a big MARC file
(library.catalog.conversion) can use it without loading the rest of the service.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

from library.catalog import rules
from library.catalog.isbn import Isbn, IsbnRefusal, parse_isbn
from library.catalog.search_text import class_tokens, index_sections
from library.errors import InvalidRecord


@dataclass
class RecordInput:
    """What a librarian (or an import, or the API) says about an edition."""

    title: str
    isbn: str | None = None
    other_isbns: list[str] = field(default_factory=list)
    control_number: str | None = None
    subtitle: str = ""
    parallel_title: str = ""
    original_title: str = ""
    contributors: list[dict[str, str]] = field(default_factory=list)
    publisher: str = ""
    publication_year: int | None = None
    language: str = "chi"
    series: str = ""
    series_number: str = ""
    subjects: list[str] = field(default_factory=list)
    age_min: int | None = None
    age_max: int | None = None
    format: str = "picture_book"
    pages: int | None = None
    summary: str = ""
    clc: str = ""
    call_number: str = ""
    cover: str = ""


def _clean(data: RecordInput) -> RecordInput:
    text_fields = ("title", "subtitle", "parallel_title", "original_title", "publisher", "series", "series_number",
                   "summary", "clc", "call_number", "language")
    for name in text_fields:
        setattr(data, name, (getattr(data, name) or "").strip())
    data.contributors = [
        {"name": c.get("name", "").strip(), "role": (c.get("role") or "author").strip()}
        for c in data.contributors if (c.get("name") or "").strip()
    ]
    data.subjects = [s.strip() for s in data.subjects if s and s.strip()]
    data.control_number = (data.control_number or "").strip() or None
    return data


def search_text_of(values: dict[str, Any]) -> str:
    """The record's search text (library.catalog.search_text): title, authors, subjects, and the
    rest — publisher, every ISBN in both forms, the class number."""
    isbn_tokens = []
    for isbn13 in filter(None, [values.get("isbn13"), *(values.get("other_isbns") or [])]):
        isbn_tokens.append(isbn13)
        isbn10 = Isbn(isbn13).isbn10
        if isbn10:
            isbn_tokens.append(isbn10)
    return index_sections(
        title=(values.get("title"), values.get("subtitle"), values.get("parallel_title"),
               values.get("original_title"), values.get("series")),
        author=[c.get("name") for c in values.get("contributors") or []],
        subject=values.get("subjects") or (),
        other=(values.get("publisher"), " ".join(isbn_tokens), *class_tokens(values.get("clc"))),
    )


def record_values(data: RecordInput, today: dt.date) -> dict[str, Any]:
    """Validated column values of a record (every problem reported at once)."""
    data = _clean(data)
    problems = rules.record_problems(vars(data), today.year)
    isbn13 = None
    if data.isbn:
        parsed = parse_isbn(data.isbn)
        if isinstance(parsed, IsbnRefusal):
            problems.insert(0, ("isbn", parsed.code, {"expected": parsed.expected_check_digit,
                                                      "length": parsed.length}))
        else:
            isbn13 = parsed.isbn13
    others = []
    for other in data.other_isbns:
        parsed = parse_isbn(other)
        if isinstance(parsed, Isbn) and parsed.isbn13 != isbn13 and parsed.isbn13 not in others:
            others.append(parsed.isbn13)
    if problems:
        raise InvalidRecord(problems)
    values = {
        "isbn13": isbn13,
        "other_isbns": others,
        "control_number": data.control_number,
        "title": data.title,
        "subtitle": data.subtitle,
        "parallel_title": data.parallel_title,
        "original_title": data.original_title,
        "contributors": data.contributors,
        "publisher": data.publisher,
        "publication_year": data.publication_year,
        "language": data.language or "chi",
        "series": data.series,
        "series_number": data.series_number,
        "subjects": data.subjects,
        "age_min": data.age_min,
        "age_max": data.age_max,
        "format": data.format or "picture_book",
        "pages": data.pages,
        "summary": data.summary,
        "clc": data.clc,
        "call_number": data.call_number or rules.default_call_number(data.clc, data.contributors),
        "cover": data.cover,
    }
    values["search_text"] = search_text_of(values)
    return values


JSON_COLUMNS = ("other_isbns", "contributors", "subjects")
# The record columns `record_values` fills, in the order an import writes them.
VALUE_COLUMNS = ("isbn13", "other_isbns", "control_number", "title", "subtitle", "parallel_title", "original_title",
                 "contributors", "publisher", "publication_year", "language", "series", "series_number", "subjects",
                 "age_min", "age_max", "format", "pages", "summary", "cover", "clc", "call_number", "search_text")


def row_values(values: dict[str, Any]) -> dict[str, Any]:
    """JSON columns go in as text, the same on both drivers."""
    return {key: json.dumps(value, ensure_ascii=False) if key in JSON_COLUMNS else value
            for key, value in values.items()}

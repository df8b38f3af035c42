"""Pure cataloguing decisions: barcodes, call numbers, what a valid record is."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

from library.catalog.search_text import CJK_RUNS, pinyin_of


BARCODE_PATTERN = re.compile(r"^[A-Z0-9][A-Z0-9\-]{2,31}$")
# A contributor is a secondary responsibility with no role of its own (a CNMARC 702, a MARC21
# 700 whose relator code we do not know): not a translator, not an author.
ROLES = ("author", "illustrator", "translator", "editor", "adapter", "contributor")
FORMATS = ("picture_book", "board_book", "pop_up_book", "bridge_book", "chapter_book", "comic", "book",
           "audio_book", "other")
ITEM_TYPES = ("picture_book", "board_book", "book", "reference", "audio_visual", "periodical")
# A copy in any of these states can leave the catalogue; one out with a reader cannot.
WITHDRAWABLE = ("available", "in_processing", "missing", "lost", "damaged", "in_transit")
MAX_COPIES_AT_ONCE = 50
# A copy's price, as the form takes it (999999.99 at most): the column is a 32-bit integer on
# PostgreSQL, and a larger number from the API was a 500 there (and past 2**63 on SQLite).
MAX_PRICE_CENTS = 99_999_999


def luhn_digit(digits: str) -> str:
    """The Luhn (mod 10) check digit: catches every single mistyped digit and most swaps."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 0:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return str((10 - total % 10) % 10)


def generated_barcode(prefix: str, number: int) -> str:
    """Branch prefix + 8-digit number + check digit, e.g. ZX000001235."""
    digits = f"{number:08d}"
    return f"{prefix}{digits}{luhn_digit(digits)}"


def barcode_problem(barcode: str, known_prefixes: Iterable[str] = ()) -> str | None:
    """A reason code when a barcode cannot be a copy's barcode, else None.

    Any scanned label of 3 to 32 letters, digits or hyphens is accepted (other systems
    have their own formats); one in our own generated format must carry a right check digit.
    """
    if not BARCODE_PATTERN.match(barcode):
        return "barcode_format"
    for prefix in known_prefixes:
        rest = barcode[len(prefix):]
        if barcode.startswith(prefix) and len(rest) == 9 and rest.isdigit():
            if luhn_digit(rest[:8]) != rest[8]:
                return "barcode_check_digit"
    return None


def author_mark(contributors: list[dict[str, str]]) -> str:
    """Initials of the first author's name in pinyin (or Latin), upper case: 艾瑞·卡尔 -> ARKE."""
    for contributor in contributors:
        if contributor.get("role", "author") == "author" and contributor.get("name"):
            return _name_mark(contributor["name"])
    return ""


@lru_cache(maxsize=65536)
def _name_mark(name: str) -> str:
    """Cached: authors repeat across a catalogue, and a big import meets each many times."""
    mark = "".join(s[0] for run in CJK_RUNS.findall(name) for s in pinyin_of(run) if s).upper()
    if not mark:
        mark = "".join(word[0] for word in name.split() if word[:1].isalpha()).upper()
    return mark[:4]


def default_call_number(clc: str, contributors: list[dict[str, str]]) -> str:
    """Class number / author mark, as Chinese public libraries shelve: I712.85/ARKE."""
    clc = (clc or "").strip()
    if not clc:
        return ""
    mark = author_mark(contributors)
    return f"{clc}/{mark}" if mark else clc


@dataclass
class RecordProblems:
    problems: list[tuple[str, str, dict]] = field(default_factory=list)  # (field, code, params)

    def add(self, field_name: str, code: str, **params) -> None:
        self.problems.append((field_name, code, params))


# The longest text a librarian (the record form) or a client of the API may send: limits that
# protect the service (the search text, the pages), not the database, whose columns take any
# length. Each is at least what one ISO 2709 field can hold (9,999 bytes), so a value an
# import stored can be saved again from the form. An import checks none of them: a record is
# stored as long as it came (`record_problems(..., limits=None)`, docs/marc.md).
FIELD_LIMIT = 10_000
LIMITS = {"title": FIELD_LIMIT, "subtitle": FIELD_LIMIT, "parallel_title": FIELD_LIMIT,
          "original_title": FIELD_LIMIT, "publisher": FIELD_LIMIT, "series": FIELD_LIMIT,
          "series_number": FIELD_LIMIT, "clc": FIELD_LIMIT, "call_number": FIELD_LIMIT, "summary": 20_000}


def record_problems(values: dict, this_year: int, limits: dict[str, int] | None = LIMITS) -> list[tuple[str, str, dict]]:
    """Every reason a record cannot be saved as it is (not only the first). `limits`: the
    longest texts allowed (LIMITS for what staff and the API send; None for an import)."""
    found = RecordProblems()
    if not (values.get("title") or "").strip():
        found.add("title", "required")
    for name, limit in (limits or {}).items():
        if len(values.get(name) or "") > limit:
            found.add(name, "too_long", limit=limit)
    year = values.get("publication_year")
    if year is not None and not 1400 <= year <= this_year + 1:
        found.add("publication_year", "year_out_of_range", latest=this_year + 1)
    for name in ("age_min", "age_max"):
        age = values.get(name)
        if age is not None and not 0 <= age <= 18:
            found.add(name, "age_out_of_range")
    if values.get("age_min") is not None and values.get("age_max") is not None \
            and values["age_min"] > values["age_max"]:
        found.add("age_max", "age_range_reversed")
    pages = values.get("pages")
    if pages is not None and not 1 <= pages <= 10000:
        found.add("pages", "pages_out_of_range")
    if values.get("format") and values["format"] not in FORMATS:
        found.add("format", "invalid_choice")
    for contributor in values.get("contributors") or []:
        if contributor.get("role") not in ROLES:
            found.add("contributors", "invalid_role_of_contributor", role=contributor.get("role", ""))
    return found.problems
